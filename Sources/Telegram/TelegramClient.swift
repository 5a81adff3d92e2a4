import Curl
import Foundation
import JSON

/// The Bot API client (external-apis §5). Every call has a deadline; errors come back as
/// `TelegramError` mapped to an action, or `CurlError` for transport failures. The token only
/// ever appears in request URLs, which no error or log prints.
public struct TelegramClient: Sendable {
    private let token: String
    private let apiBaseURL: String
    private let timeout: Duration
    private let http = CurlClient()

    /// A client for `token`; `apiBaseURL` points at the Sandbox in tests and the demo.
    public init(token: String, apiBaseURL: String = "https://api.telegram.org", timeout: Duration = .seconds(15)) {
        self.token = token
        self.apiBaseURL = apiBaseURL.hasSuffix("/") ? String(apiBaseURL.dropLast()) : apiBaseURL
        self.timeout = timeout
    }

    /// Calls `method` with JSON parameters and decodes `result`.
    public func call<Result: Decodable & Sendable>(_ method: String, _ parameters: some Encodable, as: Result.Type = Result.self) async throws -> Result {
        let request = try CurlRequest.json(.post, url: "\(apiBaseURL)/bot\(token)/\(method)", value: parameters, timeout: timeout)
        return try decode(try await http.execute(request))
    }

    /// Calls `method` with a body `write` makes and returns its `result` as parsed JSON: the calls
    /// made for every reply (sendMessage, answerCallbackQuery) skip `JSONEncoder` and
    /// `JSONDecoder`, which were a fifth of the worker's CPU at 1,000 replies/s.
    private func call(_ method: String, writing write: (inout JSONWriter) -> Void) async throws -> JSONValue {
        var json = JSONWriter()
        json.object(write)
        let request = CurlRequest(.post, url: "\(apiBaseURL)/bot\(token)/\(method)", headers: [("Content-Type", "application/json")], body: .bytes(Data(json.bytes)), timeout: timeout)
        let response = try await http.execute(request)
        return try TelegramResponse<JSONValue>.shallowResult(of: response.body, status: response.status)
    }

    private func decode<Result: Decodable & Sendable>(_ response: CurlResponse) throws -> Result {
        let envelope: TelegramResponse<Result>
        do {
            envelope = try TelegramResponse<Result>.decode(response.body)
        } catch {
            throw TelegramError(errorCode: response.status, description: "unreadable Bot API response (HTTP \(response.status))")
        }
        return try envelope.get()
    }

    // MARK: Messages

    /// Text formatting modes.
    public enum ParseMode: String, Codable, Sendable { case html = "HTML", markdownV2 = "MarkdownV2" }

    /// Sends a text message (1–4096 characters).
    @discardableResult
    public func sendMessage(chatID: Int64, text: String, parseMode: ParseMode? = nil, replyMarkup: InlineKeyboardMarkup? = nil) async throws -> SentMessage {
        let result = try await call("sendMessage") { json in
            json.member("chat_id", chatID)
            json.member("text", text)
            json.member("parse_mode", parseMode?.rawValue)
            if let replyMarkup { json.key("reply_markup"); replyMarkup.write(to: &json) }
        }
        guard let messageID = result["message_id"]?.integerValue else {
            throw TelegramError(errorCode: 0, description: "unreadable Bot API response: sendMessage returned no message_id")
        }
        return SentMessage(messageID: messageID)
    }

    private struct EditText: Encodable {
        var chat_id: Int64, message_id: Int64, text: String, parse_mode: ParseMode?, reply_markup: InlineKeyboardMarkup?
    }

    /// Edits a message's text; "message is not modified" counts as success.
    public func editMessageText(chatID: Int64, messageID: Int64, text: String, parseMode: ParseMode? = nil, replyMarkup: InlineKeyboardMarkup? = nil) async throws {
        try await ignoringNoOp { let _: Message = try await call("editMessageText", EditText(chat_id: chatID, message_id: messageID, text: text, parse_mode: parseMode, reply_markup: replyMarkup)) }
    }

    private struct EditMarkup: Encodable { var chat_id: Int64, message_id: Int64, reply_markup: InlineKeyboardMarkup? }

    /// Replaces (or, with nil, removes) a message's keyboard; "not modified" counts as success.
    public func editMessageReplyMarkup(chatID: Int64, messageID: Int64, replyMarkup: InlineKeyboardMarkup?) async throws {
        try await ignoringNoOp { let _: Message = try await call("editMessageReplyMarkup", EditMarkup(chat_id: chatID, message_id: messageID, reply_markup: replyMarkup)) }
    }

    private struct MessageRef: Encodable { var chat_id: Int64, message_id: Int64 }

    /// Deletes a message; "message to delete not found" counts as success.
    public func deleteMessage(chatID: Int64, messageID: Int64) async throws {
        try await ignoringNoOp { let _: Bool = try await call("deleteMessage", MessageRef(chat_id: chatID, message_id: messageID)) }
    }

    /// Answers a button press (always do: the client shows a spinner until then). A query that
    /// is too old is ignored.
    public func answerCallbackQuery(id: String, text: String? = nil, showAlert: Bool = false) async throws {
        do {
            _ = try await call("answerCallbackQuery") { json in
                json.member("callback_query_id", id)
                json.member("text", text)
                json.member("show_alert", showAlert ? true : nil)
            }
        } catch let error as TelegramError where error.kind == .callbackQueryTooOld {
            return
        }
    }

    /// Shows "typing…" / "sending photo…" (`typing`, `upload_photo` …).
    public func sendChatAction(chatID: Int64, action: String) async throws {
        _ = try await call("sendChatAction") { json in
            json.member("chat_id", chatID)
            json.member("action", action)
        }
    }

    /// A photo to send.
    public enum Photo: Sendable {
        /// Telegram's id of a photo it already has.
        case fileID(String)
        /// A public URL Telegram fetches (≤ 5 MB).
        case url(String)
        /// A file uploaded from disk (≤ 10 MB), streamed.
        case upload(path: String, filename: String)
    }

    /// Sends a photo with an optional caption and keyboard.
    @discardableResult
    public func sendPhoto(chatID: Int64, photo: Photo, caption: String? = nil, replyMarkup: InlineKeyboardMarkup? = nil) async throws -> Message {
        var form = MultipartForm()
        form.append(name: "chat_id", value: String(chatID))
        if let caption { form.append(name: "caption", value: caption) }
        if let replyMarkup { form.append(name: "reply_markup", value: String(decoding: try JSONEncoder().encode(replyMarkup), as: UTF8.self)) }
        switch photo {
        case .fileID(let id): form.append(name: "photo", value: id)
        case .url(let url): form.append(name: "photo", value: url)
        case .upload(let path, let filename): form.append(name: "photo", filePath: path, filename: filename, contentType: "image/jpeg")
        }
        let request = CurlRequest(.post, url: "\(apiBaseURL)/bot\(token)/sendPhoto", body: .multipart(form), timeout: .seconds(60))
        return try decode(try await http.execute(request))
    }

    /// One photo of an album: the `media` is a file_id, a URL or an uploaded file.
    public struct AlbumPhoto: Sendable {
        public var photo: Photo
        public var caption: String?
        public init(_ photo: Photo, caption: String? = nil) { self.photo = photo; self.caption = caption }
    }

    /// Sends 2–10 photos as one album. Telegram: an album takes no keyboard, so send buttons
    /// in a message of their own.
    @discardableResult
    public func sendMediaGroup(chatID: Int64, photos: [AlbumPhoto]) async throws -> [Message] {
        guard (2...10).contains(photos.count) else { throw TelegramError(kind: .invalidRequest, errorCode: 0, description: "an album holds 2–10 items, got \(photos.count)") }
        var form = MultipartForm()
        form.append(name: "chat_id", value: String(chatID))
        var media: [[String: String]] = []
        for (index, item) in photos.enumerated() {
            var entry = ["type": "photo"]
            switch item.photo {
            case .fileID(let id): entry["media"] = id
            case .url(let url): entry["media"] = url
            case .upload(let path, let filename):
                entry["media"] = "attach://p\(index)"  // the part named p<index> below
                form.append(name: "p\(index)", filePath: path, filename: filename, contentType: "image/jpeg")
            }
            if let caption = item.caption { entry["caption"] = caption }
            media.append(entry)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        form.parts.insert(.init(name: "media", content: .text(String(decoding: try encoder.encode(media), as: UTF8.self))), at: 1)
        return try decode(try await http.execute(CurlRequest(.post, url: "\(apiBaseURL)/bot\(token)/sendMediaGroup", body: .multipart(form), timeout: .seconds(120))))
    }

    /// Sends a file as a document (uncompressed, ≤ 50 MB by upload).
    @discardableResult
    public func sendDocument(chatID: Int64, path: String, filename: String, contentType: String, caption: String? = nil) async throws -> Message {
        var form = MultipartForm()
        form.append(name: "chat_id", value: String(chatID))
        if let caption { form.append(name: "caption", value: caption) }
        form.append(name: "document", filePath: path, filename: filename, contentType: contentType)
        return try decode(try await http.execute(CurlRequest(.post, url: "\(apiBaseURL)/bot\(token)/sendDocument", body: .multipart(form), timeout: .seconds(120))))
    }

    private struct EditCaption: Encodable { var chat_id: Int64, message_id: Int64, caption: String?, reply_markup: InlineKeyboardMarkup? }

    /// Edits a media message's caption (and keyboard); "not modified" counts as success.
    public func editMessageCaption(chatID: Int64, messageID: Int64, caption: String?, replyMarkup: InlineKeyboardMarkup? = nil) async throws {
        try await ignoringNoOp { let _: Message = try await call("editMessageCaption", EditCaption(chat_id: chatID, message_id: messageID, caption: caption, reply_markup: replyMarkup)) }
    }

    // MARK: Files

    /// `getFile`'s result.
    public struct File: Decodable, Sendable, Equatable {
        public var fileID: String
        public var fileUniqueID: String
        public var fileSize: Int?
        /// Where to download it from; valid for at least an hour.
        public var filePath: String?
        enum CodingKeys: String, CodingKey { case fileID = "file_id", fileUniqueID = "file_unique_id", fileSize = "file_size", filePath = "file_path" }
    }

    private struct FileRef: Encodable { var file_id: String }

    /// Prepares a file for download.
    public func getFile(fileID: String) async throws -> File { try await call("getFile", FileRef(file_id: fileID)) }

    /// Bots may download files of at most 20 MB.
    public static let maximumDownloadBytes = 20 * 1000 * 1000

    /// Downloads `file` into `path` (streamed). Refuses files over 20 MB before and during the transfer.
    public func download(_ file: File, to path: String) async throws {
        guard let filePath = file.filePath else { throw TelegramError(kind: .badRequest, errorCode: 0, description: "file has no file_path; call getFile again") }
        if let size = file.fileSize, size > Self.maximumDownloadBytes {
            throw TelegramError(kind: .badRequest, errorCode: 0, description: "file is too big (\(size) bytes; bots may download 20 MB)")
        }
        let response = try await http.execute(CurlRequest(.get, url: "\(apiBaseURL)/file/bot\(token)/\(filePath)", destination: .file(path: path), timeout: .seconds(60)))
        guard response.isSuccess else {
            unlink(path)
            throw TelegramError(errorCode: response.status, description: "file download failed (HTTP \(response.status))")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard size <= Self.maximumDownloadBytes else {
            unlink(path)
            throw TelegramError(kind: .badRequest, errorCode: 0, description: "file is too big (\(size) bytes)")
        }
    }

    // MARK: Webhook and commands

    private struct SetWebhook: Encodable {
        var url: String, secret_token: String, allowed_updates: [String]?, max_connections: Int, drop_pending_updates: Bool
    }

    /// Registers our webhook. Telegram: HTTPS on 443, 80, 88 or 8443; `secretToken` 1–256 of `A-Za-z0-9_-`; max connections 1–100.
    public func setWebhook(url: String, secretToken: String, allowedUpdates: [String]? = nil, maxConnections: Int = 40, dropPendingUpdates: Bool = false) async throws {
        guard (1...256).contains(secretToken.count), secretToken.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
            throw TelegramError(kind: .invalidRequest, errorCode: 0, description: "secret token must be 1–256 characters of A-Z a-z 0-9 _ -")
        }
        guard (1...100).contains(maxConnections) else { throw TelegramError(kind: .invalidRequest, errorCode: 0, description: "max_connections must be 1–100") }
        let _: Bool = try await call("setWebhook", SetWebhook(url: url, secret_token: secretToken, allowed_updates: allowedUpdates, max_connections: maxConnections, drop_pending_updates: dropPendingUpdates))
    }

    private struct DeleteWebhook: Encodable { var drop_pending_updates: Bool }

    /// Removes the webhook.
    public func deleteWebhook(dropPendingUpdates: Bool = false) async throws {
        let _: Bool = try await call("deleteWebhook", DeleteWebhook(drop_pending_updates: dropPendingUpdates))
    }

    /// `getWebhookInfo`'s result.
    public struct WebhookInfo: Decodable, Sendable, Equatable {
        public var url: String
        public var pendingUpdateCount: Int
        public var lastErrorDate: Int64?
        public var lastErrorMessage: String?
        public var maxConnections: Int?
        public var allowedUpdates: [String]?
        enum CodingKeys: String, CodingKey {
            case url, pendingUpdateCount = "pending_update_count", lastErrorDate = "last_error_date", lastErrorMessage = "last_error_message"
            case maxConnections = "max_connections", allowedUpdates = "allowed_updates"
        }
    }

    private struct Empty: Encodable {}

    /// The webhook's state (pending updates, last delivery error).
    public func getWebhookInfo() async throws -> WebhookInfo { try await call("getWebhookInfo", Empty()) }

    /// A command for the menu.
    public struct BotCommand: Codable, Sendable, Equatable {
        public var command: String
        public var description: String
        public init(_ command: String, _ description: String) { self.command = command; self.description = description }
    }

    private struct SetCommands: Encodable { var commands: [BotCommand], language_code: String? }

    /// Sets the command menu, for one language or the default.
    public func setMyCommands(_ commands: [BotCommand], languageCode: String? = nil) async throws {
        let _: Bool = try await call("setMyCommands", SetCommands(commands: commands, language_code: languageCode))
    }

    private func ignoringNoOp(_ body: () async throws -> Void) async throws {
        do { try await body() } catch let error as TelegramError where error.isNoOp { return }
    }
}
