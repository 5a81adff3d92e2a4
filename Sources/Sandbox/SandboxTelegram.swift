import Curl
import FAL
public import Foundation
import Hummingbird
import Imaging
public import JSON
import Signing
public import RateLimit
import Synchronization

/// A stand-in for the Telegram Bot API (external-apis §5) with simulated users.
///
/// It answers the methods the bot uses with Telegram's response shapes and error texts, keeps
/// every private chat's history (ids, edits, deletions, keyboards), stores the files users
/// "send" and serves them through `getFile` and `/file/bot<token>/…`, enforces flood limits with
/// 429 + `retry_after`, and delivers each user action to the configured webhook with the secret
/// header. What happened is kept as a transcript for tests and the demo.
public final class SandboxTelegram: Sendable {
    public struct Configuration: Sendable {
        public var token: String
        public var botID: Int64
        public var botUsername: String
        /// Per private chat. Telegram's tolerance is unpublished (§5.6): 1/s with short bursts.
        public var perChatLimit: RateLimit
        /// For the whole bot (about 30 messages a second).
        public var globalLimit: RateLimit

        public init(
            token: String = "123456789:SANDBOX-token_AAAAAAAAAAAAAAAAAAAAAAAAA", botID: Int64 = 123_456_789, botUsername: String = "aisha_sandbox_bot",
            perChatLimit: RateLimit = RateLimit(count: 1, per: 1, burst: 5), globalLimit: RateLimit = RateLimit(count: 30, per: 1, burst: 30)
        ) {
            self.token = token
            self.botID = botID
            self.botUsername = botUsername
            self.perChatLimit = perChatLimit
            self.globalLimit = globalLimit
        }
    }

    /// One message in a chat, as the sandbox remembers it.
    public struct ChatMessage: Sendable, Equatable {
        public var id: Int64
        public var fromBot: Bool
        public var date: Date
        public var text: String?
        public var caption: String?
        /// The file ids of a photo (largest last) or a document.
        public var fileIDs: [String] = []
        public var mediaGroupID: String?
        /// Inline keyboard rows as (text, callback data or url).
        public var keyboard: [[Button]] = []
        public var editCount = 0
        public var deleted = false

        public struct Button: Sendable, Equatable {
            public var text: String
            public var callbackData: String?
            public var url: String?
        }
    }

    /// The webhook Telegram would call (setWebhook's arguments).
    public struct Webhook: Sendable, Equatable {
        public var url: String
        public var secretToken: String?
        public var allowedUpdates: [String]?
        public var maxConnections: Int

        public init(url: String, secretToken: String?, allowedUpdates: [String]? = nil, maxConnections: Int = 40) {
            self.url = url
            self.secretToken = secretToken
            self.allowedUpdates = allowedUpdates
            self.maxConnections = maxConnections
        }
    }

    struct StoredFile: Sendable {
        var uniqueID: String
        var path: String
        var bytes: [UInt8]
        var width: Int?
        var height: Int?
    }

    struct Chat: Sendable {
        var user: SandboxUser
        var messages: [ChatMessage] = []
        var nextMessageID: Int64 = 1
        var blocked = false
        var rateTAT: Date?
    }

    struct State: Sendable {
        var chats: [Int64: Chat] = [:]
        var files: [String: StoredFile] = [:]  // file_id →
        var filePaths: [String: String] = [:]  // file_path → file_id
        var nextUpdateID: Int64 = 700_000_001
        var nextFile = 1
        var webhook: Webhook?
        var commands: [String: [String]] = [:]  // language ("" = default) → commands
        var globalTAT: Date?
        var answeredCallbacks: [String: String?] = [:]  // callback id → text
        var pendingCallbacks: Set<String> = []
        var lastDeliveryError: String?
        var rejectedSends = 0
    }

    public let configuration: Configuration
    public let transcript: Transcript
    let state = Mutex(State())
    let http = CurlClient()

    public init(configuration: Configuration = .init(), transcript: Transcript) {
        self.configuration = configuration
        self.transcript = transcript
    }

    // MARK: - What tests and the demo inspect

    /// The chat's messages in order (deleted ones included, marked).
    public func messages(inChat chatID: Int64) -> [ChatMessage] { state.withLock { $0.chats[chatID]?.messages ?? [] } }

    /// The bot's last visible message in the chat.
    public func lastBotMessage(inChat chatID: Int64) -> ChatMessage? {
        messages(inChat: chatID).last { $0.fromBot && !$0.deleted }
    }

    /// The webhook as last set.
    public var webhook: Webhook? { state.withLock { $0.webhook } }

    /// Commands registered by setMyCommands, per language code ("" for the default list).
    public var commands: [String: [String]] { state.withLock { $0.commands } }

    /// The text an answered callback query showed (nil: answered without text), or nothing if unanswered.
    public func callbackAnswer(_ id: String) -> String?? { state.withLock { $0.answeredCallbacks[id] } }

    /// How many bot calls were refused by the flood limit (429).
    public var floodRejections: Int { state.withLock { $0.rejectedSends } }

    /// The bytes behind a file id (what a user sent, or what the bot uploaded).
    public func fileBytes(_ fileID: String) -> [UInt8]? { state.withLock { $0.files[fileID]?.bytes } }

    /// Marks the user as having blocked the bot: sends to them answer 403.
    public func block(chatID: Int64, _ blocked: Bool = true) { state.withLock { $0.chats[chatID]?.blocked = blocked } }

    /// Sets the webhook directly (what `setWebhook` does), for tests that skip that call.
    public func setWebhook(_ webhook: Webhook) { state.withLock { $0.webhook = webhook } }

    // MARK: - Simulated users

    /// Starts (or returns) the private chat of a simulated user. The chat id equals the user id.
    @discardableResult
    public func user(id: Int64, firstName: String = "Test", languageCode: String? = "en") -> SandboxUser {
        let user = SandboxUser(id: id, firstName: firstName, languageCode: languageCode, sandbox: self)
        state.withLock { state in
            if state.chats[id] == nil { state.chats[id] = Chat(user: user) }
        }
        return user
    }

    /// Stores a file a user sends and returns its ids, as Telegram would assign them.
    func storeFile(_ bytes: [UInt8], folder: String, fileExtension: String) -> (fileID: String, uniqueID: String, header: ImageHeader?) {
        let header = ImageHeader.parse(bytes.prefix(1 << 20))
        return state.withLock { state in
            let n = state.nextFile
            state.nextFile += 1
            let digest = Hex.encode(SHA256.hash(bytes).prefix(8))
            let fileID = "AgAC\(folder.prefix(2).uppercased())\(n)_\(digest)"
            let uniqueID = "AQAD\(digest)"
            let path = "\(folder)/file_\(n).\(fileExtension)"
            state.files[fileID] = StoredFile(uniqueID: uniqueID, path: path, bytes: bytes, width: header?.width, height: header?.height)
            state.filePaths[path] = fileID
            return (fileID, uniqueID, header)
        }
    }

    /// Records the user's message in the chat and returns its id.
    func appendUserMessage(chatID: Int64, _ make: (Int64) -> ChatMessage) -> ChatMessage {
        state.withLock { state in
            let id = state.chats[chatID]!.nextMessageID
            state.chats[chatID]!.nextMessageID += 1
            let message = make(id)
            state.chats[chatID]!.messages.append(message)
            return message
        }
    }

    func nextUpdateID() -> Int64 {
        state.withLock { state in
            defer { state.nextUpdateID += 1 }
            return state.nextUpdateID
        }
    }

    func registerCallback(_ id: String) { _ = state.withLock { $0.pendingCallbacks.insert(id) } }

    /// Delivers one update to the webhook as Telegram does: POST, JSON, the secret header.
    /// Returns the HTTP status (0 when the server could not be reached). Like Telegram it retries
    /// a failed delivery a few times, quickly; `retries: 0` shows a single attempt's answer.
    public func deliver(_ update: JSONValue, retries: Int = 5) async -> Int {
        guard let webhook = self.webhook else { return 0 }
        let body = Data(update.jsonBytes)
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let secret = webhook.secretToken { headers.append(("X-Telegram-Bot-Api-Secret-Token", secret)) }
        var status = 0
        for attempt in 0...retries {
            if attempt > 0 { try? await Task.sleep(for: .milliseconds(100 << min(attempt, 5))) }
            do {
                let response = try await http.execute(CurlRequest(.post, url: webhook.url, headers: headers, body: .bytes(body), timeout: .seconds(10)))
                status = response.status
                if response.isSuccess {
                    state.withLock { $0.lastDeliveryError = nil }
                    return status
                }
                state.withLock { $0.lastDeliveryError = "Wrong response from the webhook: \(response.status)" }
            } catch {
                status = 0
                state.withLock { $0.lastDeliveryError = "Connection refused" }
            }
        }
        return status
    }

    // MARK: - The Bot API

    /// An answer of the Bot API stand-in, whichever HTTP server carries it.
    struct Answer: Sendable {
        var status: Int
        var contentType = "application/json"
        var body: [UInt8]

        static func json(_ status: Int, _ value: JSONValue) -> Answer { Answer(status: status, body: value.jsonBytes) }
    }

    /// `POST /bot<token>/<method>`: the parameters from a JSON, form or multipart body and the query.
    func answer(token: String, method: String, contentType: String, query: [(String, String)], body: [UInt8]) async -> Answer {
        guard token == configuration.token else {
            return Answer(status: 401, body: Array(#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#.utf8))
        }
        guard let parameters = BotParameters(contentType: contentType, query: query, body: body) else {
            return Self.error(400, "Bad Request: can't parse request body")
        }
        do {
            return Answer.json(200, .object(["ok": .bool(true), "result": try await handle(method: method, parameters)]))
        } catch let failure as BotFailure {
            return failure.answer
        } catch {
            return Self.error(500, "Internal Server Error: \(error)")
        }
    }

    /// `GET /file/bot<token>/<path>`: a file's bytes, as `getFile`'s `file_path` names it.
    func file(token: String, path: String) -> Answer {
        guard token == configuration.token else { return Answer(status: 404, contentType: "text/plain", body: []) }
        guard let bytes = state.withLock({ state in state.filePaths[path].flatMap { state.files[$0]?.bytes } }) else {
            return Self.error(404, "Not Found")
        }
        return Answer(status: 200, contentType: "application/octet-stream", body: bytes)
    }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("bot{token}/{method}") { request, context -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 60 << 20)
            let query = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
            return await self.answer(token: context.parameters.get("token") ?? "", method: context.parameters.get("method") ?? "",
                                     contentType: request.headers[.contentType] ?? "", query: query, body: Array(body.readableBytesView)).response
        }
        router.get("file/bot{token}/**") { _, context -> Response in
            self.file(token: context.parameters.get("token") ?? "", path: context.parameters.getCatchAll().joined(separator: "/")).response
        }
    }

    struct BotFailure: Error {
        var answer: Answer
    }

    static func error(_ code: Int, _ description: String, parameters: JSONValue? = nil) -> Answer {
        var object: [String: JSONValue] = ["ok": .bool(false), "error_code": .number(Double(code)), "description": .string(description)]
        if let parameters { object["parameters"] = parameters }
        return Answer.json(code, JSONValue.object(object))
    }

    static func fail(_ code: Int, _ description: String) -> BotFailure { BotFailure(answer: error(code, description)) }

    private func handle(method: String, _ p: BotParameters) async throws -> JSONValue {
        switch method {
        case "getMe":
            return .object(["id": .number(Double(configuration.botID)), "is_bot": .bool(true), "first_name": .string("Aisha"), "username": .string(configuration.botUsername)])
        case "sendMessage":
            let text = try requireText(p.string("text"), limit: 4096, empty: "Bad Request: message text is empty", long: "Bad Request: message is too long")
            let chatID = try p.requireChat()
            let keyboard = try Self.keyboard(p.json("reply_markup"))
            let message = try send(chatID: chatID, kind: "text") { ChatMessage(id: $0, fromBot: true, date: Date(), text: text, keyboard: keyboard) }
            return messageJSON(message, chatID: chatID)
        case "sendPhoto", "sendDocument":
            let field = method == "sendPhoto" ? "photo" : "document"
            let chatID = try p.requireChat()
            let caption = try optionalCaption(p.string("caption"))
            let keyboard = try Self.keyboard(p.json("reply_markup"))
            let fileID = try await resolveMedia(p, field: field, isPhoto: method == "sendPhoto")
            let message = try send(chatID: chatID, kind: field) { ChatMessage(id: $0, fromBot: true, date: Date(), caption: caption, fileIDs: [fileID], keyboard: keyboard) }
            return messageJSON(message, chatID: chatID)
        case "sendMediaGroup":
            let chatID = try p.requireChat()
            guard case .array(let media)? = p.json("media"), (2...10).contains(media.count) else {
                throw Self.fail(400, "Bad Request: wrong number of media specified; must be 2-10")
            }
            var fileIDs: [(String, String?)] = []
            for item in media {
                guard let reference = item["media"]?.stringValue else { throw Self.fail(400, "Bad Request: media not found") }
                let caption = try optionalCaption(item["caption"]?.stringValue)
                fileIDs.append((try await resolveMediaReference(reference, p, isPhoto: item["type"]?.stringValue == "photo"), caption))
            }
            let group = "\(Int64.random(in: 10_000_000_000_000...99_999_999_999_999))"
            var messages: [JSONValue] = []
            for (index, (fileID, caption)) in fileIDs.enumerated() {
                // The album is one send as far as flood control goes.
                let message = try send(chatID: chatID, kind: "photo", countsTowardsLimit: index == 0) {
                    ChatMessage(id: $0, fromBot: true, date: Date(), caption: caption, fileIDs: [fileID], mediaGroupID: group)
                }
                messages.append(messageJSON(message, chatID: chatID))
            }
            return .array(messages)
        case "editMessageText", "editMessageCaption", "editMessageReplyMarkup":
            let chatID = try p.requireChat()
            guard let messageID = p.int64("message_id") else { throw Self.fail(400, "Bad Request: message identifier is not specified") }
            let keyboard = try Self.keyboard(p.json("reply_markup"))
            let text = method == "editMessageText" ? try requireText(p.string("text"), limit: 4096, empty: "Bad Request: text must be non-empty", long: "Bad Request: MESSAGE_TOO_LONG") : nil
            let caption = method == "editMessageCaption" ? try optionalCaption(p.string("caption")) : nil
            let message = try edit(chatID: chatID, messageID: messageID) { message throws(BotFailure) in
                var edited = message
                switch method {
                case "editMessageText":
                    guard message.text != nil else { throw Self.fail(400, "Bad Request: there is no text in the message to edit") }
                    edited.text = text
                case "editMessageCaption":
                    guard !message.fileIDs.isEmpty else { throw Self.fail(400, "Bad Request: there is no caption in the message to edit") }
                    edited.caption = caption
                default: break
                }
                edited.keyboard = keyboard
                if edited.text == message.text, edited.caption == message.caption, edited.keyboard == message.keyboard {
                    throw Self.fail(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
                }
                return edited
            }
            return messageJSON(message, chatID: chatID)
        case "deleteMessage":
            let chatID = try p.requireChat()
            let messageID = p.int64("message_id") ?? 0
            try state.withLock { state throws(BotFailure) in
                guard let index = state.chats[chatID]?.messages.firstIndex(where: { $0.id == messageID && !$0.deleted }) else {
                    throw Self.fail(400, "Bad Request: message to delete not found")
                }
                state.chats[chatID]!.messages[index].deleted = true
            }
            transcript.record(chatID: chatID, .bot, "delete", messageID: messageID, text: "")
            return .bool(true)
        case "answerCallbackQuery":
            let id = p.string("callback_query_id") ?? ""
            let text = p.string("text")
            if let text, text.count > 200 { throw Self.fail(400, "Bad Request: MESSAGE_TOO_LONG") }
            let known = state.withLock { state -> Bool in
                guard state.pendingCallbacks.remove(id) != nil else { return false }
                state.answeredCallbacks[id] = text
                return true
            }
            guard known else { throw Self.fail(400, "Bad Request: query is too old and response timeout expired or query ID is invalid") }
            if let text, let chat = SandboxUser.chatID(ofCallback: id) { transcript.record(chatID: chat, .bot, "toast", text: text) }
            return .bool(true)
        case "sendChatAction":
            let chatID = try p.requireChat()
            try checkReachable(chatID)
            transcript.record(chatID: chatID, .bot, "action", text: p.string("action") ?? "")
            return .bool(true)
        case "getFile":
            let fileID = p.string("file_id") ?? ""
            guard let file = state.withLock({ $0.files[fileID] }) else { throw Self.fail(400, "Bad Request: invalid file_id") }
            guard file.bytes.count <= 20_000_000 else { throw Self.fail(400, "Bad Request: file is too big") }
            return .object(["file_id": .string(fileID), "file_unique_id": .string(file.uniqueID), "file_size": .number(Double(file.bytes.count)), "file_path": .string(file.path)])
        case "setWebhook":
            guard let url = p.string("url"), !url.isEmpty else { throw Self.fail(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook") }
            let webhook = Webhook(url: url, secretToken: p.string("secret_token"), allowedUpdates: p.json("allowed_updates").flatMap(Self.strings), maxConnections: Int(p.int64("max_connections") ?? 40))
            state.withLock { $0.webhook = webhook }
            return .bool(true)
        case "deleteWebhook":
            state.withLock { $0.webhook = nil }
            return .bool(true)
        case "getWebhookInfo":
            let (webhook, error) = state.withLock { ($0.webhook, $0.lastDeliveryError) }
            var info: [String: JSONValue] = ["url": .string(webhook?.url ?? ""), "has_custom_certificate": .bool(false), "pending_update_count": .number(0)]
            if let webhook {
                info["max_connections"] = .number(Double(webhook.maxConnections))
                if let allowed = webhook.allowedUpdates { info["allowed_updates"] = .array(allowed.map(JSONValue.string)) }
            }
            if let error { info["last_error_message"] = .string(error); info["last_error_date"] = .number(Date().timeIntervalSince1970.rounded()) }
            return .object(info)
        case "setMyCommands":
            guard let commands = p.json("commands"), case .array(let list) = commands, !list.isEmpty else { throw Self.fail(400, "Bad Request: commands must be non-empty") }
            let names = list.compactMap { $0["command"]?.stringValue }
            state.withLock { $0.commands[p.string("language_code") ?? ""] = names }
            return .bool(true)
        default:
            throw Self.fail(404, "Not Found: method not found")
        }
    }

    private func requireText(_ text: String?, limit: Int, empty: String, long: String) throws(BotFailure) -> String {
        // White_Space is the set `CharacterSet.whitespacesAndNewlines` holds, without its cost.
        guard let text, text.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) else { throw Self.fail(400, empty) }
        guard text.utf16.count <= limit else { throw Self.fail(400, long) }
        return text
    }

    private func optionalCaption(_ caption: String?) throws(BotFailure) -> String? {
        guard let caption else { return nil }
        guard caption.utf16.count <= 1024 else { throw Self.fail(400, "Bad Request: message caption is too long") }
        return caption
    }

    static func strings(_ value: JSONValue) -> [String]? {
        guard case .array(let items) = value else { return nil }
        return items.compactMap(\.stringValue)
    }

    /// Parses `reply_markup`; a `callback_data` over 64 bytes is Telegram's BUTTON_DATA_INVALID.
    static func keyboard(_ markup: JSONValue?) throws(BotFailure) -> [[ChatMessage.Button]] {
        guard let markup, case .array(let rows)? = markup["inline_keyboard"] else { return [] }
        var result: [[ChatMessage.Button]] = []
        for row in rows {
            guard case .array(let buttons) = row else { throw fail(400, "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays") }
            var parsed: [ChatMessage.Button] = []
            for button in buttons {
                guard let text = button["text"]?.stringValue, !text.isEmpty else { throw fail(400, "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard") }
                let data = button["callback_data"]?.stringValue, url = button["url"]?.stringValue
                if let data, data.utf8.isEmpty || data.utf8.count > 64 { throw fail(400, "Bad Request: BUTTON_DATA_INVALID") }
                guard data != nil || url != nil else { throw fail(400, "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must have exactly one optional field") }
                parsed.append(.init(text: text, callbackData: data, url: url))
            }
            result.append(parsed)
        }
        return result
    }

    private func checkReachable(_ chatID: Int64) throws(BotFailure) {
        let chat = state.withLock { $0.chats[chatID] }
        guard let chat else { throw Self.fail(400, "Bad Request: chat not found") }
        if chat.blocked { throw Self.fail(403, "Forbidden: bot was blocked by the user") }
    }

    /// Applies flood control, then appends the bot's message to the chat.
    private func send(chatID: Int64, kind: String, countsTowardsLimit: Bool = true, _ make: (Int64) -> ChatMessage) throws(BotFailure) -> ChatMessage {
        try checkReachable(chatID)
        if countsTowardsLimit { try takeFloodAllowance(chatID: chatID) }
        let message = state.withLock { state in
            let id = state.chats[chatID]!.nextMessageID
            state.chats[chatID]!.nextMessageID += 1
            let message = make(id)
            state.chats[chatID]!.messages.append(message)
            return message
        }
        transcript.record(chatID: chatID, .bot, kind, messageID: message.id, text: message.text ?? message.caption ?? "", buttons: message.keyboard)
        return message
    }

    private func edit(chatID: Int64, messageID: Int64, _ change: (ChatMessage) throws(BotFailure) -> ChatMessage) throws(BotFailure) -> ChatMessage {
        try checkReachable(chatID)
        let message = try state.withLock { state throws(BotFailure) -> ChatMessage in
            guard let index = state.chats[chatID]?.messages.firstIndex(where: { $0.id == messageID && !$0.deleted && $0.fromBot }) else {
                throw Self.fail(400, "Bad Request: message to edit not found")
            }
            var edited = try change(state.chats[chatID]!.messages[index])
            edited.editCount += 1
            state.chats[chatID]!.messages[index] = edited
            return edited
        }
        try takeFloodAllowance(chatID: chatID)  // "pace edits like sends" (§5.6)
        transcript.record(chatID: chatID, .bot, "edit", messageID: messageID, text: message.text ?? message.caption ?? "", buttons: message.keyboard)
        return message
    }

    /// GCRA per chat and for the whole bot; a refusal is 429 with `retry_after` in whole seconds.
    private func takeFloodAllowance(chatID: Int64) throws(BotFailure) {
        let now = Date()
        let retryAfter = state.withLock { state -> Int? in
            let chat = configuration.perChatLimit.decide(tat: state.chats[chatID]?.rateTAT, now: now)
            let global = configuration.globalLimit.decide(tat: state.globalTAT, now: now)
            switch (chat, global) {
            case (.allow(let chatTAT), .allow(let globalTAT)):
                state.chats[chatID]?.rateTAT = chatTAT
                state.globalTAT = globalTAT
                return nil
            case (.deny(let at), _), (_, .deny(let at)):
                state.rejectedSends += 1
                return max(1, Int(at.timeIntervalSince(now).rounded(.up)))
            }
        }
        if let retryAfter {
            throw BotFailure(answer: Self.error(429, "Too Many Requests: retry after \(retryAfter)", parameters: .object(["retry_after": .number(Double(retryAfter))])))
        }
    }

    private func resolveMedia(_ p: BotParameters, field: String, isPhoto: Bool) async throws -> String {
        if let upload = p.files[field] { return try storeUpload(upload, isPhoto: isPhoto) }
        guard let reference = p.string(field), !reference.isEmpty else { throw Self.fail(400, "Bad Request: there is no \(field) in the request") }
        return try await resolveMediaReference(reference, p, isPhoto: isPhoto)
    }

    /// A `file_id`, an HTTP URL (fetched, as Telegram does, ≤ 5 MB for photos) or `attach://name`.
    private func resolveMediaReference(_ reference: String, _ p: BotParameters, isPhoto: Bool) async throws -> String {
        if reference.hasPrefix("attach://") {
            guard let upload = p.files[String(reference.dropFirst("attach://".count))] else { throw Self.fail(400, "Bad Request: wrong file identifier/HTTP URL specified") }
            return try storeUpload(upload, isPhoto: isPhoto)
        }
        if reference.hasPrefix("http://") || reference.hasPrefix("https://") {
            let limit = isPhoto ? 5 << 20 : 20 << 20
            guard let response = try? await http.execute(CurlRequest(.get, url: reference, destination: .memory(limit: limit), timeout: .seconds(20))), response.isSuccess else {
                throw Self.fail(400, "Bad Request: wrong file identifier/HTTP URL specified")
            }
            return try storeUpload(MultipartPart(name: "url", filename: nil, contentType: nil, body: Array(response.body)), isPhoto: isPhoto)
        }
        guard state.withLock({ $0.files[reference] != nil }) else { throw Self.fail(400, "Bad Request: wrong file identifier/HTTP URL specified") }
        return reference
    }

    private func storeUpload(_ part: MultipartPart, isPhoto: Bool) throws(BotFailure) -> String {
        if isPhoto {
            guard part.body.count <= 10 << 20 else { throw Self.fail(400, "Bad Request: file is too big") }
            guard let header = ImageHeader.parse(part.body) else { throw Self.fail(400, "Bad Request: IMAGE_PROCESS_FAILED") }
            guard header.width + header.height <= 10_000 else { throw Self.fail(400, "Bad Request: PHOTO_INVALID_DIMENSIONS") }
        } else if part.body.count > 50 << 20 {
            throw Self.fail(413, "Request Entity Too Large")
        }
        return storeFile(part.body, folder: isPhoto ? "photos" : "documents", fileExtension: isPhoto ? "jpg" : "bin").fileID
    }

    // MARK: - JSON shapes

    func userJSON(_ user: SandboxUser) -> JSONValue {
        var object: [String: JSONValue] = ["id": .number(Double(user.id)), "is_bot": .bool(false), "first_name": .string(user.firstName)]
        if let language = user.languageCode { object["language_code"] = .string(language) }
        return .object(object)
    }

    func chatJSON(_ chatID: Int64) -> JSONValue {
        let name = state.withLock { $0.chats[chatID]?.user.firstName } ?? "Test"
        return .object(["id": .number(Double(chatID)), "type": .string("private"), "first_name": .string(name)])
    }

    func photoSizes(_ fileID: String) -> JSONValue {
        guard let file = state.withLock({ $0.files[fileID] }) else { return .array([]) }
        let width = file.width ?? 0, height = file.height ?? 0
        // Telegram offers scaled copies plus the original; the thumbnail ids differ from the original's.
        let scale = min(1.0, 320.0 / Double(max(width, height, 1)))
        return .array([
            .object(["file_id": .string(fileID + "_s"), "file_unique_id": .string(file.uniqueID + "_s"), "file_size": .number(Double(file.bytes.count / 20)),
                     "width": .number((Double(width) * scale).rounded()), "height": .number((Double(height) * scale).rounded())]),
            .object(["file_id": .string(fileID), "file_unique_id": .string(file.uniqueID), "file_size": .number(Double(file.bytes.count)),
                     "width": .number(Double(width)), "height": .number(Double(height))]),
        ])
    }

    func messageJSON(_ message: ChatMessage, chatID: Int64) -> JSONValue {
        var object: [String: JSONValue] = [
            "message_id": .number(Double(message.id)), "date": .number(message.date.timeIntervalSince1970.rounded(.down)), "chat": chatJSON(chatID),
        ]
        if message.fromBot {
            object["from"] = .object(["id": .number(Double(configuration.botID)), "is_bot": .bool(true), "first_name": .string("Aisha"), "username": .string(configuration.botUsername)])
        } else if let user = state.withLock({ $0.chats[chatID]?.user }) {
            object["from"] = userJSON(user)
        }
        if let text = message.text { object["text"] = .string(text) }
        if let caption = message.caption { object["caption"] = .string(caption) }
        if let group = message.mediaGroupID { object["media_group_id"] = .string(group) }
        if let fileID = message.fileIDs.first {
            let file = state.withLock { $0.files[fileID] }
            if file?.path.hasPrefix("documents/") == true {
                object["document"] = .object(["file_id": .string(fileID), "file_unique_id": .string(file?.uniqueID ?? ""), "file_size": .number(Double(file?.bytes.count ?? 0)),
                                              "file_name": .string(message.caption ?? "file"), "mime_type": .string(ImageHeader.parse(file?.bytes ?? [])?.contentType ?? "application/octet-stream")])
            } else {
                object["photo"] = photoSizes(fileID)
            }
        }
        if !message.keyboard.isEmpty {
            object["reply_markup"] = .object(["inline_keyboard": .array(message.keyboard.map { row in
                .array(row.map { button in
                    var b: [String: JSONValue] = ["text": .string(button.text)]
                    if let data = button.callbackData { b["callback_data"] = .string(data) }
                    if let url = button.url { b["url"] = .string(url) }
                    return .object(b)
                })
            })])
        }
        return .object(object)
    }
}

/// A request's parameters, from a JSON body, a multipart form or a URL-encoded form.
struct BotParameters {
    var values: [String: JSONValue] = [:]
    var files: [String: MultipartPart] = [:]

    init?(contentType: String, query: [(String, String)], body: [UInt8]) {
        if let boundary = Multipart.boundary(fromContentType: contentType) {
            guard let parts = Multipart.parse(body, boundary: boundary) else { return nil }
            for part in parts {
                if part.filename != nil { files[part.name] = part } else { values[part.name] = .string(String(decoding: part.body, as: UTF8.self)) }
            }
        } else if contentType.hasPrefix("application/json") {
            guard case .object(let object)? = try? JSONValue(parsing: body) else { return nil }
            values = object
        } else if !body.isEmpty {
            for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
                values[kv[0]] = .string(kv.count > 1 ? kv[1] : "")
            }
        }
        for (key, value) in query { values[key] = .string(value) }
    }

    func string(_ key: String) -> String? {
        switch values[key] {
        case .string(let s): s
        case .number(let n): n == n.rounded() ? String(Int64(n)) : String(n)
        case .bool(let b): String(b)
        default: nil
        }
    }

    func int64(_ key: String) -> Int64? {
        if case .string(let text) = values[key] { Int64(text) } else { values[key]?.integerValue }
    }

    /// A structured field: an object in JSON bodies, a JSON-encoded string in forms (§5.4).
    func json(_ key: String) -> JSONValue? {
        if case .string(let s) = values[key] { return try? JSONValue(parsing: s.utf8) }
        return values[key]
    }

    func requireChat() throws(SandboxTelegram.BotFailure) -> Int64 {
        guard let chatID = int64("chat_id") else { throw SandboxTelegram.fail(400, "Bad Request: chat_id is empty") }
        return chatID
    }
}
