import FAL
import Foundation
import Imaging
import JSON

/// A simulated Telegram user in a private chat with the bot. Each action is recorded in the
/// chat, turned into the `Update` Telegram would send, and delivered to the webhook; the
/// returned status is the webhook's answer.
public struct SandboxUser: Sendable {
    public let id: Int64
    public let firstName: String
    public let languageCode: String?
    let sandbox: SandboxTelegram

    init(id: Int64, firstName: String, languageCode: String?, sandbox: SandboxTelegram) {
        self.id = id
        self.firstName = firstName
        self.languageCode = languageCode
        self.sandbox = sandbox
    }

    /// Sends a text message (a leading `/command` gets its `bot_command` entity, as Telegram adds).
    @discardableResult
    public func send(_ text: String) async -> Int {
        let message = sandbox.appendUserMessage(chatID: id) { .init(id: $0, fromBot: false, date: Date(), text: text) }
        sandbox.transcript.record(chatID: id, .user, "text", messageID: message.id, text: text)
        var json = messageObject(message)
        if text.hasPrefix("/") {
            let command = text.prefix { !$0.isWhitespace }
            json["entities"] = .array([.object(["type": .string("bot_command"), "offset": .number(0), "length": .number(Double(command.utf16.count))])])
        }
        return await deliver(["message": .object(json)])
    }

    /// Sends image bytes as a compressed photo (or, with `asDocument`, as an uncompressed file).
    /// Photos of one album share `mediaGroupID` and arrive as separate updates, as in Telegram.
    @discardableResult
    public func sendPhoto(_ bytes: [UInt8], caption: String? = nil, mediaGroupID: String? = nil, asDocument fileName: String? = nil) async -> Int {
        let stored = sandbox.storeFile(bytes, folder: fileName == nil ? "photos" : "documents", fileExtension: fileName == nil ? "jpg" : "bin")
        let message = sandbox.appendUserMessage(chatID: id) {
            .init(id: $0, fromBot: false, date: Date(), caption: fileName ?? caption, fileIDs: [stored.fileID], mediaGroupID: mediaGroupID)
        }
        sandbox.transcript.record(chatID: id, .user, fileName == nil ? "photo" : "document", messageID: message.id, text: fileName ?? caption ?? "")
        var json = messageObject(message)
        if let fileName {
            json["caption"] = caption.map(JSONValue.string)
            json["document"] = .object([
                "file_id": .string(stored.fileID), "file_unique_id": .string(stored.uniqueID), "file_name": .string(fileName),
                "mime_type": .string(stored.header?.contentType ?? "application/octet-stream"), "file_size": .number(Double(bytes.count)),
            ])
        } else {
            json["photo"] = sandbox.photoSizes(stored.fileID)
        }
        return await deliver(["message": .object(json)])
    }

    /// Sends several photos as one album: concurrent updates sharing a `media_group_id`.
    public func sendAlbum(_ photos: [[UInt8]]) async -> [Int] {
        let group = "\(Int64.random(in: 10_000_000_000_000...99_999_999_999_999))"
        return await withTaskGroup(of: (Int, Int).self) { tasks in
            for (index, bytes) in photos.enumerated() {
                tasks.addTask { (index, await self.sendPhoto(bytes, mediaGroupID: group)) }
            }
            var statuses = Array(repeating: 0, count: photos.count)
            for await (index, status) in tasks { statuses[index] = status }
            return statuses
        }
    }

    /// Presses an inline button on one of the bot's messages, found by its label (exact, or a
    /// prefix) — on the latest message showing it unless `messageID` says which. Returns nil when no
    /// visible message has such a button (a real client could not press it either).
    @discardableResult
    public func press(_ label: String, messageID: Int64? = nil) async -> Int? {
        let messages = sandbox.messages(inChat: id).filter { $0.fromBot && !$0.deleted && (messageID == nil || $0.id == messageID) }
        for message in messages.reversed() {
            let buttons = message.keyboard.joined()
            if let button = buttons.first(where: { $0.text == label }) ?? buttons.first(where: { $0.text.hasPrefix(label) }), let data = button.callbackData {
                sandbox.transcript.record(chatID: id, .user, "press", messageID: message.id, text: button.text)
                return await sendCallback(data: data, on: message)
            }
        }
        return nil
    }

    /// A callback query with arbitrary data on a message of the chat — what a crafted client can
    /// send. For tests of forged buttons.
    @discardableResult
    public func forgeCallback(data: String, messageID: Int64) async -> Int {
        let message = sandbox.messages(inChat: id).first { $0.id == messageID } ?? .init(id: messageID, fromBot: true, date: Date(), text: "?")
        sandbox.transcript.record(chatID: id, .user, "forged", messageID: messageID, text: data)
        return await sendCallback(data: data, on: message)
    }

    /// Edits one of the user's own messages (an `edited_message` update).
    @discardableResult
    public func editMessage(_ messageID: Int64, to text: String) async -> Int {
        var json = messageObject(.init(id: messageID, fromBot: false, date: Date(), text: text))
        json["edit_date"] = .number(Date().timeIntervalSince1970.rounded(.down))
        return await deliver(["edited_message": .object(json)])
    }

    /// The user blocks the bot: Telegram sends `my_chat_member` and refuses further messages with 403.
    @discardableResult
    public func blockBot() async -> Int {
        sandbox.block(chatID: id)
        sandbox.transcript.record(chatID: id, .user, "block", text: "blocked the bot")
        let bot: JSONValue = .object(["id": .number(Double(sandbox.configuration.botID)), "is_bot": .bool(true), "first_name": .string("Aisha")])
        return await deliver(["my_chat_member": .object([
            "chat": sandbox.chatJSON(id), "from": sandbox.userJSON(self), "date": .number(Date().timeIntervalSince1970.rounded(.down)),
            "old_chat_member": .object(["status": .string("member"), "user": bot]),
            "new_chat_member": .object(["status": .string("kicked"), "user": bot, "until_date": .number(0)]),
        ])])
    }

    static func chatID(ofCallback id: String) -> Int64? { id.split(separator: "-").first.flatMap { Int64($0) } }

    private func sendCallback(data: String, on message: SandboxTelegram.ChatMessage) async -> Int {
        let callbackID = "\(id)-\(UInt64.random(in: 1...UInt64.max))"
        sandbox.registerCallback(callbackID)
        return await deliver(["callback_query": .object([
            "id": .string(callbackID), "from": sandbox.userJSON(self), "message": sandbox.messageJSON(message, chatID: id),
            "chat_instance": .string("-\(id)1"), "data": .string(data),
        ])])
    }

    private func messageObject(_ message: SandboxTelegram.ChatMessage) -> [String: JSONValue] {
        guard case .object(var json) = sandbox.messageJSON(message, chatID: id) else { return [:] }
        json["photo"] = nil
        json["document"] = nil
        return json
    }

    private func deliver(_ content: [String: JSONValue]) async -> Int {
        var update = content
        update["update_id"] = .number(Double(sandbox.nextUpdateID()))
        return await sandbox.deliver(.object(update))
    }
}
