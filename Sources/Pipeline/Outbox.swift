public import Foundation
public import JobQueue
import Logging
public import Postgres
public import RateLimit
import Telegram

/// A message for a chat, sent by its own `telegram.send` job. Handlers enqueue it in the same
/// transaction as the change it reports, so the message exists exactly when the change does;
/// the send is paced by the shared rate limiter and retried on its own, never re-running the
/// handler that asked for it.
public struct OutgoingMessage: Codable, Sendable, Equatable {
    public struct Button: Codable, Sendable, Equatable {
        public var text: String
        public var data: String
        public init(_ text: String, data: String) { self.text = text; self.data = data }
    }

    public var chatID: Int64
    public var text: String
    public var buttons: [[Button]]

    public init(chatID: Int64, text: String, buttons: [[Button]] = []) {
        self.chatID = chatID
        self.text = text
        self.buttons = buttons
    }
}

public enum Outbox {
    public static let kind = "telegram.send"

    /// The job; `uniqueKey` names the event (one message per event however often it is reported).
    /// Its serial key is the chat's, so it goes out after the update that caused it, in order.
    public static func job(_ message: OutgoingMessage, uniqueKey: String) throws -> JobRequest {
        try JobRequest(kind: kind, json: message, maxAttempts: 30, uniqueKey: "msg:" + uniqueKey, serialKey: "tg:chat:\(message.chatID)")
    }

    /// Enqueues `message` on `connection` (inside the caller's transaction).
    public static func send(_ message: OutgoingMessage, uniqueKey: String, on connection: PostgresConnection, queue: JobQueue) async throws {
        try await queue.enqueue(try job(message, uniqueKey: uniqueKey), on: connection)
    }

    /// Sends queued messages. A user who blocked the bot is marked and not written to again.
    public static func handler(telegram: RateLimitedTelegram, database: PostgresClient) -> JobHandler {
        JobHandler(kind: kind, timeout: .seconds(30)) { job, logger in
            let message = try job.decode(OutgoingMessage.self)
            let blocked = try await database.query("SELECT blocked_at IS NOT NULL FROM users WHERE id = \(message.chatID)").first?.decode(Bool.self, at: 0) ?? false
            if blocked { return }
            let markup = message.buttons.isEmpty ? nil : InlineKeyboardMarkup(try message.buttons.map { row in try row.map { try InlineKeyboardButton.callback($0.text, data: $0.data) } })
            do {
                _ = try await telegram.send(toChat: message.chatID) { try await $0.sendMessage(chatID: message.chatID, text: message.text, replyMarkup: markup) }
            } catch let error as TelegramError where error.kind == .blockedByUser {
                try await database.query("UPDATE users SET blocked_at = now() WHERE id = \(message.chatID)")
                logger.info("user blocked the bot; not messaging them again", metadata: ["chat": "\(message.chatID)"])
            } catch let error as TelegramError where !error.isTransient {
                throw JobFailure.permanent("Telegram refused the message: \(error.kind)")
            }
        }
    }
}
