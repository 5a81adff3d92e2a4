import Foundation
import Hummingbird
import Synchronization
import Telegram
import TestSupport
import Testing

/// A loopback stand-in for the Bot API with Telegram's response shapes (external-apis §5),
/// recording every call. The full Sandbox (issue 5) will grow from the same idea.
final class FakeBotAPI: Sendable {
    static let token = "123456:TEST-token_value"
    let calls = Mutex<[(method: String, body: String, contentType: String)]>([])
    let texts = Mutex<[Int64: String]>([:])  // message id → text
    let nextID = Atomic<Int64>(100)

    func run<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        router.post("bot{token}/{method}") { request, context -> Response in
            var request = request
            let bytes = try await request.collectBody(upTo: 20 << 20)
            let method = context.parameters.get("method") ?? ""
            let text = String(buffer: bytes)
            self.calls.withLock { $0.append((method, text, request.headers[.contentType] ?? "")) }
            guard context.parameters.get("token") == Self.token else { return Self.reply(401, #"{"ok":false,"error_code":401,"description":"Unauthorized"}"#) }
            let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            switch method {
            case "sendMessage", "sendPhoto":
                let id = self.nextID.add(1, ordering: .relaxed).newValue
                self.texts.withLock { $0[id] = json["text"] as? String ?? "" }
                return Self.reply(200, #"{"ok":true,"result":{"message_id":\#(id),"date":1764060000,"chat":{"id":42,"type":"private"},"text":"ok"}}"#)
            case "editMessageText":
                let id = (json["message_id"] as? NSNumber)?.int64Value ?? 0
                let newText = json["text"] as? String ?? ""
                let same = self.texts.withLock { state -> Bool in
                    defer { state[id] = newText }
                    return state[id] == newText
                }
                if same { return Self.reply(400, #"{"ok":false,"error_code":400,"description":"Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"}"#) }
                return Self.reply(200, #"{"ok":true,"result":{"message_id":\#(id),"date":1764060000,"chat":{"id":42,"type":"private"},"text":"edited"}}"#)
            case "deleteMessage":
                let id = (json["message_id"] as? NSNumber)?.int64Value ?? 0
                let existed = self.texts.withLock { $0.removeValue(forKey: id) != nil }
                return existed ? Self.reply(200, #"{"ok":true,"result":true}"#) : Self.reply(400, #"{"ok":false,"error_code":400,"description":"Bad Request: message to delete not found"}"#)
            case "answerCallbackQuery":
                if json["callback_query_id"] as? String == "old" {
                    return Self.reply(400, #"{"ok":false,"error_code":400,"description":"Bad Request: query is too old and response timeout expired or query ID is invalid"}"#)
                }
                return Self.reply(200, #"{"ok":true,"result":true}"#)
            case "sendChatAction":
                if (json["chat_id"] as? NSNumber)?.int64Value == 13 { return Self.reply(403, #"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#) }
                if (json["chat_id"] as? NSNumber)?.int64Value == 14 { return Self.reply(429, #"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#) }
                return Self.reply(200, #"{"ok":true,"result":true}"#)
            case "sendMediaGroup":
                let id = self.nextID.add(2, ordering: .relaxed).newValue
                return Self.reply(200, #"{"ok":true,"result":[{"message_id":\#(id - 1),"date":1764060000,"chat":{"id":42,"type":"private"}},{"message_id":\#(id),"date":1764060000,"chat":{"id":42,"type":"private"}}]}"#)
            case "sendDocument", "editMessageCaption":
                return Self.reply(200, #"{"ok":true,"result":{"message_id":7,"date":1764060000,"chat":{"id":42,"type":"private"}}}"#)
            case "getFile":
                return Self.reply(200, #"{"ok":true,"result":{"file_id":"\#(json["file_id"] as? String ?? "")","file_unique_id":"u1","file_size":5,"file_path":"photos/file_1.jpg"}}"#)
            case "setWebhook", "deleteWebhook", "setMyCommands":
                return Self.reply(200, #"{"ok":true,"result":true,"description":"Webhook was set"}"#)
            case "getWebhookInfo":
                return Self.reply(200, #"{"ok":true,"result":{"url":"https://bot.example.com/telegram/webhook","has_custom_certificate":false,"pending_update_count":3,"max_connections":40}}"#)
            default:
                return Self.reply(404, #"{"ok":false,"error_code":404,"description":"Not Found: method not found"}"#)
            }
        }
        router.get("file/bot{token}/photos/{name}") { _, context -> Response in
            guard context.parameters.get("token") == Self.token else { return Response(status: .notFound) }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "JPEG!")))
        }
        return try await LoopbackHTTPServer.run(router, body)
    }

    static func reply(_ status: Int, _ json: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}

@Suite struct TelegramClientTests {
    @Test func messagesEditsDeletesAndNoOps() async throws {
        let api = FakeBotAPI()
        try await api.run { base in
            let client = TelegramClient(token: FakeBotAPI.token, apiBaseURL: base)
            let keyboard = InlineKeyboardMarkup([[try .callback("Yes", data: "train:ok:42")]])
            let sent = try await client.sendMessage(chatID: 42, text: "Start training?", replyMarkup: keyboard)
            try await client.editMessageText(chatID: 42, messageID: sent.messageID, text: "Training started")
            try await client.editMessageText(chatID: 42, messageID: sent.messageID, text: "Training started")  // not modified: fine
            try await client.deleteMessage(chatID: 42, messageID: sent.messageID)
            try await client.deleteMessage(chatID: 42, messageID: sent.messageID)  // already gone: fine
            try await client.answerCallbackQuery(id: "fresh", text: "OK")
            try await client.answerCallbackQuery(id: "old")  // too old: ignored
            let calls = api.calls.withLock { $0 }
            #expect(calls.map(\.method) == ["sendMessage", "editMessageText", "editMessageText", "deleteMessage", "deleteMessage", "answerCallbackQuery", "answerCallbackQuery"])
            #expect(calls[0].contentType == "application/json")
            #expect(calls[0].body.contains(#""reply_markup":{"inline_keyboard":[[{"callback_data":"train:ok:42","text":"Yes"}]]}"#)
                    || calls[0].body.contains(#""inline_keyboard":[[{"text":"Yes","callback_data":"train:ok:42"}]]"#))
        }
    }

    @Test func errorsCarryTheirAction() async throws {
        let api = FakeBotAPI()
        try await api.run { base in
            let client = TelegramClient(token: FakeBotAPI.token, apiBaseURL: base)
            await #expect { try await client.sendChatAction(chatID: 13, action: "typing") } throws: { ($0 as? TelegramError)?.kind == .blockedByUser }
            await #expect { try await client.sendChatAction(chatID: 14, action: "typing") } throws: { ($0 as? TelegramError)?.kind == .tooManyRequests(retryAfter: 7) }
            let wrong = TelegramClient(token: "999:wrong", apiBaseURL: base)
            do {
                try await wrong.sendChatAction(chatID: 1, action: "typing")
                Issue.record("a wrong token was accepted")
            } catch let error as TelegramError {
                #expect(error.kind == .unauthorized)
                #expect(!"\(error)".contains("999:wrong") && !"\(error)".contains(FakeBotAPI.token))
            }
        }
    }

    @Test func photosFilesAndWebhookManagement() async throws {
        let api = FakeBotAPI()
        try await api.run { base in
            let client = TelegramClient(token: FakeBotAPI.token, apiBaseURL: base)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("tg-\(UUID()).jpg").path
            try Data([0xFF, 0xD8, 0xFF, 0xD9]).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            try await client.sendPhoto(chatID: 42, photo: .upload(path: path, filename: "portrait.jpg"), caption: "Your portrait #1",
                                       replyMarkup: InlineKeyboardMarkup([[try .callback("More", data: "gen:more:42")]]))
            let upload = try #require(api.calls.withLock { $0.last })
            #expect(upload.method == "sendPhoto" && upload.contentType.hasPrefix("multipart/form-data"))
            #expect(upload.body.contains(#"name="photo"; filename="portrait.jpg""#) && upload.body.contains("Your portrait #1") && upload.body.contains("gen:more:42"))
            try await client.sendPhoto(chatID: 42, photo: .fileID("AgACAgIAAxkB"))
            let album = try await client.sendMediaGroup(chatID: 42, photos: [.init(.upload(path: path, filename: "1.jpg"), caption: "two portraits"), .init(.fileID("AgACAgIAAxkB"))])
            #expect(album.count == 2)
            let albumCall = try #require(api.calls.withLock { $0.last })
            #expect(albumCall.body.contains(#""media":"attach://p0""#))
            #expect(albumCall.body.contains(#"name="p0"; filename="1.jpg""#))
            await #expect(throws: TelegramError.self, "an album needs 2–10 photos") { try await client.sendMediaGroup(chatID: 42, photos: [.init(.fileID("x"))]) }
            try await client.sendDocument(chatID: 42, path: path, filename: "original.jpg", contentType: "image/jpeg", caption: "the original")
            #expect(api.calls.withLock { $0.last?.body.contains(#"name="document"; filename="original.jpg""#) } == true)
            try await client.editMessageCaption(chatID: 42, messageID: 7, caption: "new caption")

            let file = try await client.getFile(fileID: "AgACAgIAAxkB")
            let target = path + ".download"
            defer { try? FileManager.default.removeItem(atPath: target) }
            try await client.download(file, to: target)
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "JPEG!")
            var big = file
            big.fileSize = 25_000_000
            await #expect(throws: TelegramError.self, "over 20 MB is refused before downloading") { try await client.download(big, to: target + "2") }

            try await client.setWebhook(url: "https://bot.example.com/telegram/webhook", secretToken: "s3cr3t_AZ-09", allowedUpdates: ["message", "callback_query"], dropPendingUpdates: true)
            #expect(api.calls.withLock { $0.last?.body.contains(#""secret_token":"s3cr3t_AZ-09""#) } == true)
            await #expect(throws: TelegramError.self, "bad secret alphabet") { try await client.setWebhook(url: "https://x", secretToken: "no spaces!") }
            await #expect(throws: TelegramError.self) { try await client.setWebhook(url: "https://x", secretToken: "ok", maxConnections: 101) }
            let info = try await client.getWebhookInfo()
            #expect(info.pendingUpdateCount == 3 && info.maxConnections == 40)
            try await client.setMyCommands([.init("start", "Start"), .init("avatars", "My avatars")], languageCode: "en")
            try await client.deleteWebhook()
        }
    }
}
