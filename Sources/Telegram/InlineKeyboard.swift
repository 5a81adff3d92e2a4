public import JSON

/// An inline keyboard (rows of buttons).
public struct InlineKeyboardMarkup: Codable, Sendable, Equatable {
    public var inlineKeyboard: [[InlineKeyboardButton]]

    enum CodingKeys: String, CodingKey { case inlineKeyboard = "inline_keyboard" }

    /// A keyboard from rows.
    public init(_ rows: [[InlineKeyboardButton]]) { inlineKeyboard = rows }

    /// As `JSONEncoder` writes it, without Codable (it goes with every reply).
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.key("inline_keyboard")
            json.array(inlineKeyboard) { json, row in
                json.array(row) { json, button in
                    json.object { json in
                        json.member("text", button.text)
                        json.member("callback_data", button.callbackData)
                        json.member("url", button.url)
                    }
                }
            }
        }
    }
}

/// One inline button: a callback or a URL.
public struct InlineKeyboardButton: Codable, Sendable, Equatable {
    public var text: String
    public var callbackData: String?
    public var url: String?

    enum CodingKeys: String, CodingKey { case text, callbackData = "callback_data", url }

    /// Telegram: `callback_data` is 1–64 bytes of UTF-8 (BUTTON_DATA_INVALID otherwise).
    public static let maximumCallbackDataBytes = 64

    /// A callback button.
    /// - Throws: `TelegramError` (`.invalidRequest`) when `data` is empty or over 64 bytes.
    public static func callback(_ text: String, data: String) throws(TelegramError) -> InlineKeyboardButton {
        guard (1...maximumCallbackDataBytes).contains(data.utf8.count) else {
            throw TelegramError(kind: .invalidRequest, errorCode: 0, description: "callback_data must be 1–64 bytes, got \(data.utf8.count)")
        }
        return InlineKeyboardButton(text: text, callbackData: data, url: nil)
    }

    /// A URL button.
    public static func link(_ text: String, url: String) -> InlineKeyboardButton { InlineKeyboardButton(text: text, callbackData: nil, url: url) }
}
