public import Foundation
public import JSON

/// A Bot API error, mapped to what the caller must do (external-apis §5.5). Its description
/// never contains the bot token.
public struct TelegramError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the caller should do about it.
    public enum Kind: Sendable, Equatable {
        /// "message is not modified": the edit already shows; treat as success.
        case messageNotModified
        /// "message to delete not found": already gone; treat as success.
        case messageToDeleteNotFound
        /// The message cannot be edited or deleted any more: give up on it.
        case messageUnavailable
        /// answerCallbackQuery came too late: ignore.
        case callbackQueryTooOld
        /// 403: the user blocked the bot (or is deactivated): mark them, stop sending.
        case blockedByUser
        /// 400 "chat not found": the chat does not exist for this bot (never started, or gone):
        /// like a block, nothing sent there can arrive; stop sending.
        case chatNotFound
        /// 429: retry after this many seconds (reschedule the job; never sleep on it).
        case tooManyRequests(retryAfter: Int)
        /// The group became a supergroup: use the new chat id.
        case migrated(toChatID: Int64)
        /// 401/404: the token is wrong.
        case unauthorized
        /// 409: another getUpdates or webhook conflict.
        case conflict
        /// 5xx: Telegram's side; retry with backoff.
        case serverError
        /// Any other 400: a bug or bad input; do not retry.
        case badRequest
        /// Rejected before sending (e.g. callback_data too long).
        case invalidRequest
        /// Anything else.
        case other
    }

    public var kind: Kind
    /// Telegram's `error_code` (its HTTP status).
    public var errorCode: Int
    /// Telegram's `description`.
    public var description: String

    /// Whether nothing can ever reach this chat (blocked, deactivated, or no such chat).
    public var isUnreachableChat: Bool { kind == .blockedByUser || kind == .chatNotFound }

    /// Whether the call's intent is already satisfied (not modified, already deleted).
    public var isNoOp: Bool { kind == .messageNotModified || kind == .messageToDeleteNotFound }

    /// Whether retrying later may succeed.
    public var isTransient: Bool {
        switch kind {
        case .tooManyRequests, .serverError: true
        default: false
        }
    }

    /// An error with an explicit kind.
    public init(kind: Kind, errorCode: Int, description: String) {
        self.kind = kind
        self.errorCode = errorCode
        self.description = description
    }

    /// Maps a failed Bot API envelope (pure). Substrings, not whole texts: Telegram's wording
    /// after the prefix varies.
    public init(errorCode: Int, description: String, retryAfter: Int? = nil, migrateToChatID: Int64? = nil) {
        self.errorCode = errorCode
        self.description = description
        let text = description.lowercased()
        if let retryAfter { kind = .tooManyRequests(retryAfter: retryAfter) }
        else if let migrateToChatID { kind = .migrated(toChatID: migrateToChatID) }
        else if text.contains("message is not modified") { kind = .messageNotModified }
        else if text.contains("message to delete not found") { kind = .messageToDeleteNotFound }
        else if text.contains("message to edit not found") || text.contains("message can't be edited") || text.contains("message can't be deleted") { kind = .messageUnavailable }
        else if text.contains("query is too old") { kind = .callbackQueryTooOld }
        else if text.contains("chat not found") { kind = .chatNotFound }
        else if errorCode == 403 { kind = .blockedByUser }
        else if errorCode == 429 { kind = .tooManyRequests(retryAfter: 1) }
        else if errorCode == 401 || errorCode == 404 { kind = .unauthorized }
        else if errorCode == 409 { kind = .conflict }
        else if errorCode >= 500 { kind = .serverError }
        else if errorCode == 400 { kind = .badRequest }
        else { kind = .other }
    }
}

/// The Bot API response envelope: `{"ok":true,"result":…}` or `{"ok":false,"error_code":…}`.
public struct TelegramResponse<Result: Decodable & Sendable>: Decodable, Sendable {
    struct Parameters: Decodable, Sendable {
        var retryAfter: Int?
        var migrateToChatID: Int64?
        enum CodingKeys: String, CodingKey { case retryAfter = "retry_after", migrateToChatID = "migrate_to_chat_id" }
    }
    let ok: Bool
    let result: Result?
    let errorCode: Int?
    let errorDescription: String?
    let parameters: Parameters?

    enum CodingKeys: String, CodingKey { case ok, result, errorCode = "error_code", errorDescription = "description", parameters }

    /// The result, or the mapped error.
    public func get() throws(TelegramError) -> Result {
        if ok, let result { return result }
        throw TelegramError(errorCode: errorCode ?? 0, description: errorDescription ?? "no description",
                            retryAfter: parameters?.retryAfter, migrateToChatID: parameters?.migrateToChatID)
    }

    /// Decodes an envelope from a response body.
    public static func decode(_ body: Data) throws -> TelegramResponse<Result> { try JSONDecoder().decode(Self.self, from: body) }
}

extension TelegramResponse where Result == JSONValue {
    /// The `result` of an answer read with `JSONValue` (no Codable), or the mapped error; a body
    /// that is not an envelope is an error naming the HTTP status, as with `decode`. Only the top
    /// of `result` is built: its own members, with nested objects and arrays read as null (a sent
    /// message's id, not the whole message: `JSONValue(parsing:buildingDepth:)`).
    public static func shallowResult(of body: Data, status: Int) throws(TelegramError) -> JSONValue {
        guard let envelope = try? JSONValue(parsing: body, buildingDepth: 2), let ok = envelope["ok"]?.boolValue else {
            throw TelegramError(errorCode: status, description: "unreadable Bot API response (HTTP \(status))")
        }
        if ok, let result = envelope["result"] { return result }
        let parameters = envelope["parameters"]
        throw TelegramError(errorCode: envelope["error_code"]?.integerValue.map { Int($0) } ?? 0, description: envelope["description"]?.stringValue ?? "no description",
                            retryAfter: parameters?["retry_after"]?.integerValue.map { Int($0) }, migrateToChatID: parameters?["migrate_to_chat_id"]?.integerValue)
    }
}

/// What a sent text message's answer holds that callers use: its id (to edit or delete it).
public struct SentMessage: Sendable, Equatable {
    public var messageID: Int64
    public init(messageID: Int64) { self.messageID = messageID }
}
