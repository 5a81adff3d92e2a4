import Foundation

/// One incoming update (Bot API `Update`). Decoding tolerates unknown fields, and update kinds
/// we do not handle decode as `.unknown` instead of failing: Telegram adds kinds over time, and
/// an update we cannot decode must still be acknowledged, stored and ignored.
public struct Update: Decodable, Sendable, Equatable {
    /// What the update carries.
    public enum Kind: Sendable, Equatable {
        case message(Message)
        case editedMessage(Message)
        case callbackQuery(CallbackQuery)
        case myChatMember(ChatMemberUpdated)
        case preCheckoutQuery(PreCheckoutQuery)
        /// A kind we do not model, by its field name (e.g. `message_reaction`).
        case unknown(String)
    }

    /// The update's id; Telegram redelivers with the same id, so it is the dedup key.
    public var updateID: Int64
    /// Its content.
    public var kind: Kind

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        updateID = try container.decode(Int64.self, forKey: AnyKey(stringValue: "update_id"))
        func decode<T: Decodable>(_ key: String) throws -> T? { try container.decodeIfPresent(T.self, forKey: AnyKey(stringValue: key)) }
        if let message: Message = try decode("message") { kind = .message(message) }
        else if let message: Message = try decode("edited_message") { kind = .editedMessage(message) }
        else if let query: CallbackQuery = try decode("callback_query") { kind = .callbackQuery(query) }
        else if let member: ChatMemberUpdated = try decode("my_chat_member") { kind = .myChatMember(member) }
        else if let query: PreCheckoutQuery = try decode("pre_checkout_query") { kind = .preCheckoutQuery(query) }
        else { kind = .unknown(container.allKeys.map(\.stringValue).first { $0 != "update_id" } ?? "") }
    }

    /// The user who caused the update, when there is one.
    public var userID: Int64? {
        switch kind {
        case .message(let m), .editedMessage(let m): m.from?.id
        case .callbackQuery(let q): q.from.id
        case .myChatMember(let m): m.from.id
        case .preCheckoutQuery(let q): q.from.id
        case .unknown: nil
        }
    }

    /// The chat the update belongs to, when there is one.
    public var chatID: Int64? {
        switch kind {
        case .message(let m), .editedMessage(let m): m.chat.id
        case .callbackQuery(let q): q.message?.chat.id
        case .myChatMember(let m): m.chat.id
        case .preCheckoutQuery, .unknown: nil
        }
    }

    /// The job queue's serial key: one chat's (or else one user's) updates run in order.
    public var serialKey: String? {
        if let chatID { return "tg:chat:\(chatID)" }
        if let userID { return "tg:user:\(userID)" }
        return nil
    }
}

/// A Telegram user.
public struct User: Codable, Sendable, Equatable {
    public var id: Int64
    public var isBot: Bool
    public var firstName: String
    public var lastName: String?
    public var username: String?
    /// IETF tag of the user's client language (`ru`, `en-US` …).
    public var languageCode: String?

    enum CodingKeys: String, CodingKey {
        case id, isBot = "is_bot", firstName = "first_name", lastName = "last_name", username, languageCode = "language_code"
    }
}

/// A chat.
public struct Chat: Codable, Sendable, Equatable {
    public var id: Int64
    /// `private`, `group`, `supergroup` or `channel`.
    public var type: String
    public var title: String?
    public var username: String?
}

/// One resolution of a photo.
public struct PhotoSize: Codable, Sendable, Equatable {
    public var fileID: String
    /// Stable across bots and time: the dedup key for a photo.
    public var fileUniqueID: String
    public var width: Int
    public var height: Int
    public var fileSize: Int?

    enum CodingKeys: String, CodingKey { case fileID = "file_id", fileUniqueID = "file_unique_id", width, height, fileSize = "file_size" }
}

/// A general file (a photo sent "as file" arrives as one).
public struct Document: Codable, Sendable, Equatable {
    public var fileID: String
    public var fileUniqueID: String
    public var fileName: String?
    public var mimeType: String?
    public var fileSize: Int?

    enum CodingKeys: String, CodingKey { case fileID = "file_id", fileUniqueID = "file_unique_id", fileName = "file_name", mimeType = "mime_type", fileSize = "file_size" }
}

/// A message (only the fields the bot uses).
public struct Message: Codable, Sendable, Equatable {
    public var messageID: Int64
    /// Unix time; 0 marks an `InaccessibleMessage` (inside a callback query).
    public var date: Int64
    public var chat: Chat
    public var from: User?
    public var text: String?
    public var caption: String?
    /// The same photo in several resolutions.
    public var photo: [PhotoSize]?
    public var document: Document?
    /// Shared by every item of an album (each item is its own update).
    public var mediaGroupID: String?
    public var replyMarkup: InlineKeyboardMarkup?

    enum CodingKeys: String, CodingKey {
        case messageID = "message_id", date, chat, from, text, caption, photo, document, mediaGroupID = "media_group_id", replyMarkup = "reply_markup"
    }

    /// The largest resolution of `photo` (by pixels).
    public var largestPhoto: PhotoSize? { photo?.max { $0.width * $0.height < $1.width * $1.height } }

    /// Whether this is an `InaccessibleMessage` (too old for the bot to see).
    public var isInaccessible: Bool { date == 0 }
}

/// A press on an inline button.
public struct CallbackQuery: Codable, Sendable, Equatable {
    public var id: String
    public var from: User
    /// The message with the button (possibly inaccessible: `date == 0`).
    public var message: Message?
    public var chatInstance: String
    /// The button's `callback_data` (untrusted: re-check everything it names).
    public var data: String?

    enum CodingKeys: String, CodingKey { case id, from, message, chatInstance = "chat_instance", data }
}

/// The bot's own membership changed (e.g. the user blocked or unblocked it).
public struct ChatMemberUpdated: Codable, Sendable, Equatable {
    public struct Member: Codable, Sendable, Equatable {
        /// `member`, `kicked` (blocked the bot), `left` …
        public var status: String
    }
    public var chat: Chat
    public var from: User
    public var date: Int64
    public var newChatMember: Member

    enum CodingKeys: String, CodingKey { case chat, from, date, newChatMember = "new_chat_member" }
}

/// A payment about to be made (answered with answerPreCheckoutQuery).
public struct PreCheckoutQuery: Codable, Sendable, Equatable {
    public var id: String
    public var from: User
    public var currency: String
    public var totalAmount: Int
    public var invoicePayload: String

    enum CodingKeys: String, CodingKey { case id, from, currency, totalAmount = "total_amount", invoicePayload = "invoice_payload" }
}
