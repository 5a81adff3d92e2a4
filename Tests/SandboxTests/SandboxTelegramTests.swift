import Curl
import FAL
import Foundation
import JSON
import RateLimit
import Sandbox
import Synchronization
import Telegram
import Testing

/// Our Telegram client against the Sandbox's Bot API, and the Sandbox's updates against our
/// `Update` decoder: both sides built from external-apis §5, checked against each other.
@Suite struct SandboxTelegramTests {
    let sandbox = Sandbox()
    var token: String { sandbox.telegram.configuration.token }

    @Test func sendEditDeleteWithTelegramsShapesAndErrors() async throws {
        try await sandbox.run { endpoints in
            let client = TelegramClient(token: token, apiBaseURL: endpoints.telegramAPI)
            sandbox.telegram.user(id: 501, firstName: "Ann")
            let keyboard = InlineKeyboardMarkup([[try .callback("Create avatar", data: "av:new")], [try .callback("Help", data: "help")]])
            // The whole Message the Sandbox answers, as the real API does (the client keeps only its id).
            struct SendMessage: Encodable { var chat_id: Int64, text: String, reply_markup: InlineKeyboardMarkup }
            let sent = try await client.call("sendMessage", SendMessage(chat_id: 501, text: "Welcome!", reply_markup: keyboard), as: Message.self)
            #expect(sent.messageID == 1 && sent.chat.id == 501 && sent.text == "Welcome!" && sent.replyMarkup == keyboard)

            // Same content again: Telegram's 400 "message is not modified", which the client treats as done.
            try await client.editMessageText(chatID: 501, messageID: sent.messageID, text: "Welcome!", replyMarkup: keyboard)
            try await client.editMessageText(chatID: 501, messageID: sent.messageID, text: "Welcome back!", replyMarkup: nil)
            #expect(sandbox.telegram.lastBotMessage(inChat: 501)?.text == "Welcome back!")
            #expect(sandbox.telegram.lastBotMessage(inChat: 501)?.keyboard.isEmpty == true, "an edit without reply_markup removes the keyboard")
            #expect(sandbox.telegram.lastBotMessage(inChat: 501)?.editCount == 1, "the no-op edit changed nothing")

            try await client.deleteMessage(chatID: 501, messageID: sent.messageID)
            try await client.deleteMessage(chatID: 501, messageID: sent.messageID)  // "not found": a no-op
            #expect(sandbox.telegram.messages(inChat: 501).first?.deleted == true)

            // sendMessage writes its parameters without Codable and reads back only the id.
            let tricky = "Hi \"again\" \\ ✓\n\u{1}\ttab"
            #expect(try await client.sendMessage(chatID: 501, text: tricky, replyMarkup: keyboard).messageID == 2)
            #expect(sandbox.telegram.lastBotMessage(inChat: 501)?.text == tricky)
            #expect(sandbox.telegram.lastBotMessage(inChat: 501)?.keyboard.flatMap { $0.map(\.callbackData) } == ["av:new", "help"])

            await #expect(throws: TelegramError.self) { try await client.editMessageText(chatID: 501, messageID: 99, text: "x") }
            do {
                _ = try await client.sendMessage(chatID: 777, text: "nobody here")
                Issue.record("a chat nobody opened accepted a message")
            } catch let error as TelegramError {
                #expect(error.errorCode == 400 && error.description.contains("chat not found"))
            }
            // A user who blocked the bot: 403, its own kind.
            sandbox.telegram.block(chatID: 501)
            do {
                _ = try await client.sendMessage(chatID: 501, text: "still there?")
                Issue.record("a blocked user received a message")
            } catch let error as TelegramError {
                #expect(error.kind == .blockedByUser && error.errorCode == 403)
            }
            let wrongToken = TelegramClient(token: "1:wrong", apiBaseURL: endpoints.telegramAPI)
            await #expect(throws: TelegramError.self) { _ = try await wrongToken.sendMessage(chatID: 501, text: "x") }
        }
    }

    /// A Telegram whose per-chat allowance refills once a minute, so flood tests do not depend
    /// on how fast a loaded machine sends.
    static func slowRefill() -> Sandbox { Sandbox(telegram: .init(perChatLimit: RateLimit(count: 1, per: 60, burst: 5))) }

    @Test func floodLimitAnswers429WithRetryAfter() async throws {
        let sandbox = Self.slowRefill()
        try await sandbox.run { endpoints in
            let client = TelegramClient(token: token, apiBaseURL: endpoints.telegramAPI)
            sandbox.telegram.user(id: 502)
            var limited: TelegramError?
            for index in 0..<10 {
                do { _ = try await client.sendMessage(chatID: 502, text: "message \(index)") } catch let error as TelegramError { limited = error; break }
            }
            guard case .tooManyRequests(let retryAfter)? = limited?.kind else { Issue.record("no 429 after a burst: \(String(describing: limited))"); return }
            #expect(retryAfter >= 1 && retryAfter <= 60 && limited?.errorCode == 429)
            #expect(sandbox.telegram.messages(inChat: 502).count == 5, "the burst passed, nothing more")
            #expect(sandbox.telegram.floodRejections == 1)
        }
    }

    @Test func photosByUploadURLAndFileIDAlbumsDocumentsAndFiles() async throws {
        try await sandbox.run { endpoints in
            let client = TelegramClient(token: token, apiBaseURL: endpoints.telegramAPI)
            let receiver = WebhookReceiver()
            try await receiver.run { webhookBase in
                sandbox.telegram.setWebhook(.init(url: webhookBase + "/telegram/webhook", secretToken: "s3cret", allowedUpdates: nil, maxConnections: 40))
                let user = sandbox.telegram.user(id: 503, firstName: "Bo", languageCode: "ru")
                let original = Samples.jpeg(width: 1280, height: 960)
                #expect(await user.sendPhoto(original, caption: "me") == 200)
                let delivery = try #require(await receiver.waitFor(count: 1).first)
                #expect(delivery.headers["x-telegram-bot-api-secret-token"] == "s3cret")
                let update = try JSONDecoder().decode(Update.self, from: Data(delivery.body))
                guard case .message(let message) = update.kind, let largest = message.largestPhoto else { Issue.record("not a photo message"); return }
                #expect(largest.width == 1280 && largest.height == 960 && message.from?.languageCode == "ru" && message.caption == "me")
                #expect(update.serialKey == "tg:chat:503")

                // The bot fetches what the user sent: getFile, then the download link.
                let file = try await client.getFile(fileID: largest.fileID)
                let path = Samples.temporaryPath(".jpg")
                defer { try? FileManager.default.removeItem(atPath: path) }
                try await client.download(file, to: path)
                #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(original))

                // Upload, file_id and URL (the Sandbox fetches the URL as Telegram does).
                let uploaded = try await client.sendPhoto(chatID: 503, photo: .upload(path: path, filename: "p.jpg"), caption: "Your portrait")
                let uploadedID = try #require(uploaded.largestPhoto?.fileID)
                #expect(sandbox.telegram.fileBytes(uploadedID) == original)
                _ = try await client.sendPhoto(chatID: 503, photo: .fileID(uploadedID))
                let byURL = try await client.sendPhoto(chatID: 503, photo: .url(endpoints.baseURL + "/file/bot\(token)/\(file.filePath!)"))
                #expect(byURL.largestPhoto?.width == 1280)
                await #expect(throws: TelegramError.self) { _ = try await client.sendPhoto(chatID: 503, photo: .fileID("no-such-file")) }

                try await Task.sleep(for: .seconds(3))  // let the flood allowance refill
                let album = try await client.sendMediaGroup(chatID: 503, photos: [.init(.upload(path: path, filename: "a.jpg"), caption: "1"), .init(.fileID(uploadedID))])
                #expect(album.count == 2 && album[0].mediaGroupID != nil && album[0].mediaGroupID == album[1].mediaGroupID)
                let document = try await client.sendDocument(chatID: 503, path: path, filename: "original.jpg", contentType: "image/jpeg")
                #expect(document.document?.fileSize == original.count)

                // An album from the user: separate updates sharing a media_group_id; a document photo.
                let statuses = await user.sendAlbum([Samples.jpeg(seed: 7), Samples.jpeg(seed: 8), Samples.jpeg(seed: 9)])
                #expect(statuses == [200, 200, 200])
                #expect(await user.sendPhoto(Samples.jpeg(seed: 10), asDocument: "IMG_0001.JPG") == 200)
                let updates = try await receiver.waitFor(count: 5).dropFirst().map { try JSONDecoder().decode(Update.self, from: Data($0.body)) }
                let groups = Set(updates.compactMap { if case .message(let m) = $0.kind { m.mediaGroupID } else { nil } })
                #expect(groups.count == 1)
                let documents = updates.compactMap { if case .message(let m) = $0.kind { m.document } else { nil } }
                #expect(documents.count == 1 && documents.first?.mimeType == "image/jpeg" && documents.first?.fileName == "IMG_0001.JPG")
                #expect(Set(updates.map(\.updateID)).count == 4, "every update has its own id")
            }
        }
    }

    @Test func buttonsCallbacksAndWebhookManagement() async throws {
        try await sandbox.run { endpoints in
            let client = TelegramClient(token: token, apiBaseURL: endpoints.telegramAPI)
            let receiver = WebhookReceiver()
            try await receiver.run { webhookBase in
                try await client.setWebhook(url: webhookBase + "/telegram/webhook", secretToken: "abc_DEF-1", allowedUpdates: ["message", "callback_query"], maxConnections: 40)
                let info = try await client.getWebhookInfo()
                #expect(info.url == webhookBase + "/telegram/webhook" && info.maxConnections == 40)
                try await client.setMyCommands([.init("start", "Start"), .init("help", "Help")], languageCode: "en")
                #expect(sandbox.telegram.commands["en"] == ["start", "help"])

                let user = sandbox.telegram.user(id: 504)
                #expect(await user.send("/start hello") == 200)
                let message = try await client.sendMessage(chatID: 504, text: "Pick one", replyMarkup: InlineKeyboardMarkup([[try .callback("Portrait", data: "kind:portrait")]]))
                #expect(await user.press("Portrait") == 200)
                #expect(await user.press("No such button") == nil, "a client cannot press a button that is not shown")
                let deliveries = await receiver.waitFor(count: 2)
                let start = try JSONDecoder().decode(Update.self, from: Data(deliveries[0].body))
                guard case .message(let command) = start.kind else { Issue.record("no message"); return }
                #expect(command.text == "/start hello")
                let press = try JSONDecoder().decode(Update.self, from: Data(deliveries[1].body))
                guard case .callbackQuery(let query) = press.kind else { Issue.record("no callback"); return }
                #expect(query.data == "kind:portrait" && query.message?.messageID == message.messageID && query.from.id == 504)

                try await client.answerCallbackQuery(id: query.id, text: "Noted")
                #expect(sandbox.telegram.callbackAnswer(query.id) == .some("Noted"))
                // Answering twice, or an id Telegram never issued: "query is too old".
                do {
                    try await client.answerCallbackQuery(id: "12345")
                } catch let error as TelegramError {
                    #expect(error.kind == .callbackQueryTooOld)
                }

                // A failing webhook: Telegram retries and reports the last error.
                receiver.answer.store(500, ordering: .relaxed)
                #expect(await sandbox.telegram.deliver(.object(["update_id": .number(1), "message": .null]), retries: 0) == 500)
                #expect(try await client.getWebhookInfo().lastErrorMessage?.contains("500") == true)
                try await client.deleteWebhook()
                #expect(sandbox.telegram.webhook == nil)
            }
        }
    }

    @Test func rawRequestsGetTelegramsErrorTexts() async throws {
        try await sandbox.run { endpoints in
            sandbox.telegram.user(id: 505)
            let http = CurlClient()
            func call(_ method: String, _ json: String) async throws -> (Int, String) {
                let response = try await http.execute(.init(.post, url: "\(endpoints.telegramAPI)/bot\(token)/\(method)", headers: [("Content-Type", "application/json")], body: .bytes(Data(json.utf8))))
                return (response.status, String(decoding: response.body, as: UTF8.self))
            }
            let longData = String(repeating: "x", count: 65)
            let (status, body) = try await call("sendMessage", #"{"chat_id":505,"text":"hi","reply_markup":{"inline_keyboard":[[{"text":"b","callback_data":"\#(longData)"}]]}}"#)
            #expect(status == 400 && body.contains("BUTTON_DATA_INVALID") && body.contains(#""ok":false"#) && body.contains(#""error_code":400"#))
            #expect(try await call("sendMessage", #"{"chat_id":505,"text":"   "}"#).1.contains("message text is empty"))
            #expect(try await call("sendMessage", #"{"chat_id":505,"text":"\#(String(repeating: "я", count: 4097))"}"#).1.contains("message is too long"))
            #expect(try await call("noSuchMethod", "{}").0 == 404)
            // Form-encoded parameters work too, as with the real API.
            let form = try await http.execute(.init(.post, url: "\(endpoints.telegramAPI)/bot\(token)/sendMessage", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: .bytes(Data("chat_id=505&text=hello+there".utf8))))
            #expect(form.status == 200 && sandbox.telegram.lastBotMessage(inChat: 505)?.text == "hello there")
        }
    }

    /// The Bot API's own port (`SandboxTelegramFront`, on `HTTPServer`) and the main port
    /// (Hummingbird) give the same answers.
    @Test func bothPortsAnswerAlike() async throws {
        try await sandbox.run { endpoints in
            #expect(endpoints.telegramAPI != endpoints.baseURL)
            sandbox.telegram.user(id: 506)
            let http = CurlClient()
            func call(_ base: String, _ path: String, method: CurlRequest.Method = .post, type: String = "application/json", _ body: String = "") async throws -> (Int, String) {
                let response = try await http.execute(.init(method, url: base + path, headers: [("Content-Type", type)], body: method == .post ? .bytes(Data(body.utf8)) : .empty))
                return (response.status, String(decoding: response.body, as: UTF8.self))
            }
            let requests: [(String, CurlRequest.Method, String, String)] = [
                ("/bot\(token)/getMe", .post, "application/json", "{}"),
                ("/bot1:wrong/getMe", .post, "application/json", "{}"),
                ("/bot\(token)/sendMessage", .post, "application/json", #"{"chat_id":506,"text":""}"#),
                ("/bot\(token)/sendMessage", .post, "application/json", "{not json"),
                ("/bot\(token)/sendMessage?chat_id=777", .post, "application/x-www-form-urlencoded", "text=hi%21"),
                ("/bot\(token)/noSuchMethod", .post, "application/json", "{}"),
                ("/file/bot\(token)/photos/none.jpg", .get, "", ""),
            ]
            for (path, method, type, body) in requests {
                let viaFront = try await call(endpoints.telegramAPI, path, method: method, type: type, body)
                let viaMain = try await call(endpoints.baseURL, path, method: method, type: type, body)
                #expect(viaFront.0 == viaMain.0 && (try? JSONValue(parsing: viaFront.1.utf8)) == (try? JSONValue(parsing: viaMain.1.utf8)), "\(path): \(viaFront) vs \(viaMain)")
            }
            #expect(try await call(endpoints.telegramAPI, "/bot\(token)/sendMessage", type: "application/x-www-form-urlencoded", "chat_id=506&text=hello+there%21").0 == 200)
            #expect(sandbox.telegram.lastBotMessage(inChat: 506)?.text == "hello there!")
        }
    }

    /// The Sandbox's error bodies are the reference's recorded ones (Tests/Fixtures/telegram).
    @Test func errorBodiesMatchTheRecordedFixtures() async throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/telegram")
        let recorded = try ["error-not-modified.json", "error-429.json", "error-blocked.json"].map {
            try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: fixtures.appendingPathComponent($0)))
        }
        let sandbox = Self.slowRefill()
        try await sandbox.run { endpoints in
            let http = CurlClient()
            func call(_ method: String, _ json: String) async throws -> (Int, JSONValue) {
                let response = try await http.execute(.init(.post, url: "\(endpoints.telegramAPI)/bot\(token)/\(method)", headers: [("Content-Type", "application/json")], body: .bytes(Data(json.utf8))))
                return (response.status, try JSONDecoder().decode(JSONValue.self, from: response.body))
            }
            sandbox.telegram.user(id: 506)
            let sent = try await call("sendMessage", #"{"chat_id":506,"text":"same"}"#)
            guard case .number(let number)? = sent.1["result"]?["message_id"] else { Issue.record("no message id"); return }
            let id = Int(number)
            let notModified = try await call("editMessageText", #"{"chat_id":506,"message_id":\#(id),"text":"same"}"#)
            #expect(notModified.0 == 400 && notModified.1 == recorded[0])
            var last = (0, JSONValue.null)
            for _ in 0..<8 { last = try await call("sendMessage", #"{"chat_id":506,"text":"flood"}"#); if last.0 == 429 { break } }
            #expect(last.0 == 429 && last.1["ok"] == recorded[1]["ok"] && last.1["error_code"] == recorded[1]["error_code"])
            #expect(last.1["description"]?.stringValue?.hasPrefix("Too Many Requests: retry after ") == true && last.1["parameters"]?["retry_after"] != nil)
            sandbox.telegram.block(chatID: 506)
            let blocked = try await call("sendMessage", #"{"chat_id":506,"text":"x"}"#)
            #expect(blocked.0 == 403 && blocked.1 == recorded[2])
        }
    }
}
