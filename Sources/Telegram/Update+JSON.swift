public import Foundation
public import JSON

// Updates read with `JSONValue` instead of `JSONDecoder`: the worker reads one per reply, and
// Codable's generic containers made that a twentieth of its CPU. The rules are the Codable
// conformances' (tested on every recorded update): a missing required member or a member of the
// wrong type fails, an absent or null optional member is nil, unknown members are ignored.

/// Why an update could not be read.
public struct UpdateShapeError: Error, CustomStringConvertible {
    public let description: String
}

extension Update {
    /// Reads an update from its JSON text.
    public static func decode(_ data: Data) throws -> Update { try Update(json: try JSONValue(parsing: data)) }

    public init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "update")
        updateID = try object.int64("update_id")
        if let message = try object.optional("message", Message.init(json:)) { kind = .message(message) }
        else if let message = try object.optional("edited_message", Message.init(json:)) { kind = .editedMessage(message) }
        else if let query = try object.optional("callback_query", CallbackQuery.init(json:)) { kind = .callbackQuery(query) }
        else if let member = try object.optional("my_chat_member", ChatMemberUpdated.init(json:)) { kind = .myChatMember(member) }
        else if let query = try object.optional("pre_checkout_query", PreCheckoutQuery.init(json:)) { kind = .preCheckoutQuery(query) }
        else { kind = .unknown(object.keys.filter { $0 != "update_id" }.min() ?? "") }
    }
}

extension User {
    init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "user")
        self.init(id: try object.int64("id"), isBot: try object.bool("is_bot"), firstName: try object.string("first_name"),
                  lastName: try object.optional("last_name", JSONReader.string), username: try object.optional("username", JSONReader.string),
                  languageCode: try object.optional("language_code", JSONReader.string))
    }
}

extension Chat {
    init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "chat")
        self.init(id: try object.int64("id"), type: try object.string("type"), title: try object.optional("title", JSONReader.string),
                  username: try object.optional("username", JSONReader.string))
    }
}

extension PhotoSize {
    init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "photo size")
        self.init(fileID: try object.string("file_id"), fileUniqueID: try object.string("file_unique_id"), width: try object.int("width"),
                  height: try object.int("height"), fileSize: try object.optional("file_size", JSONReader.int))
    }
}

extension Document {
    init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "document")
        self.init(fileID: try object.string("file_id"), fileUniqueID: try object.string("file_unique_id"),
                  fileName: try object.optional("file_name", JSONReader.string), mimeType: try object.optional("mime_type", JSONReader.string),
                  fileSize: try object.optional("file_size", JSONReader.int))
    }
}

extension InlineKeyboardMarkup {
    init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "reply markup")
        self.init(try object.array("inline_keyboard") { row throws(UpdateShapeError) in
            try JSONReader.array(row) { button throws(UpdateShapeError) in
                let object = try JSONReader(button, "button")
                return InlineKeyboardButton(text: try object.string("text"), callbackData: try object.optional("callback_data", JSONReader.string),
                                            url: try object.optional("url", JSONReader.string))
            }
        })
    }
}

extension Message {
    init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "message")
        self.init(messageID: try object.int64("message_id"), date: try object.int64("date"), chat: try Chat(json: try object.required("chat")),
                  from: try object.optional("from", User.init(json:)), text: try object.optional("text", JSONReader.string),
                  caption: try object.optional("caption", JSONReader.string),
                  photo: try object.optional("photo") { value throws(UpdateShapeError) in try JSONReader.array(value, PhotoSize.init(json:)) },
                  document: try object.optional("document", Document.init(json:)), mediaGroupID: try object.optional("media_group_id", JSONReader.string),
                  replyMarkup: try object.optional("reply_markup", InlineKeyboardMarkup.init(json:)))
    }
}

extension CallbackQuery {
    init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "callback query")
        self.init(id: try object.string("id"), from: try User(json: try object.required("from")), message: try object.optional("message", Message.init(json:)),
                  chatInstance: try object.string("chat_instance"), data: try object.optional("data", JSONReader.string))
    }
}

extension ChatMemberUpdated {
    init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "chat member update")
        let member = try JSONReader(try object.required("new_chat_member"), "chat member")
        self.init(chat: try Chat(json: try object.required("chat")), from: try User(json: try object.required("from")), date: try object.int64("date"),
                  newChatMember: Member(status: try member.string("status")))
    }
}

extension PreCheckoutQuery {
    init(json: JSONValue) throws(UpdateShapeError) {
        let object = try JSONReader(json, "pre-checkout query")
        self.init(id: try object.string("id"), from: try User(json: try object.required("from")), currency: try object.string("currency"),
                  totalAmount: try object.int("total_amount"), invoicePayload: try object.string("invoice_payload"))
    }
}

/// Typed reads from one JSON object, failing as `JSONDecoder` fails.
private struct JSONReader {
    let members: [String: JSONValue]
    let name: String

    init(_ value: JSONValue, _ name: String) throws(UpdateShapeError) {
        guard case .object(let members) = value else { throw UpdateShapeError(description: "\(name) is not an object") }
        self.members = members
        self.name = name
    }

    var keys: Dictionary<String, JSONValue>.Keys { members.keys }

    func required(_ key: String) throws(UpdateShapeError) -> JSONValue {
        guard let value = members[key], value != .null else { throw UpdateShapeError(description: "\(name).\(key) is missing") }
        return value
    }

    /// nil when absent or null; a present value must read.
    func optional<T>(_ key: String, _ read: (JSONValue) throws(UpdateShapeError) -> T) throws(UpdateShapeError) -> T? {
        guard let value = members[key], value != .null else { return nil }
        return try read(value)
    }

    func string(_ key: String) throws(UpdateShapeError) -> String { try Self.string(try required(key)) }
    func bool(_ key: String) throws(UpdateShapeError) -> Bool {
        guard let value = try required(key).boolValue else { throw UpdateShapeError(description: "\(name).\(key) is not a boolean") }
        return value
    }
    func int64(_ key: String) throws(UpdateShapeError) -> Int64 { try Self.int64(try required(key)) }
    func int(_ key: String) throws(UpdateShapeError) -> Int { try Self.int(try required(key)) }
    func array<T>(_ key: String, _ element: (JSONValue) throws(UpdateShapeError) -> T) throws(UpdateShapeError) -> [T] { try Self.array(try required(key), element) }

    static func string(_ value: JSONValue) throws(UpdateShapeError) -> String {
        guard case .string(let text) = value else { throw UpdateShapeError(description: "expected a string") }
        return text
    }

    /// Telegram's integers fit in 53 bits, so a JSON number holds them exactly.
    static func int64(_ value: JSONValue) throws(UpdateShapeError) -> Int64 {
        guard let integer = value.integerValue else { throw UpdateShapeError(description: "expected an integer") }
        return integer
    }

    static func int(_ value: JSONValue) throws(UpdateShapeError) -> Int { Int(try int64(value)) }

    static func array<T>(_ value: JSONValue, _ element: (JSONValue) throws(UpdateShapeError) -> T) throws(UpdateShapeError) -> [T] {
        guard case .array(let values) = value else { throw UpdateShapeError(description: "expected an array") }
        var result: [T] = []
        result.reserveCapacity(values.count)
        for value in values { result.append(try element(value)) }
        return result
    }
}
