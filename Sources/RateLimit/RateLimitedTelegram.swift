import Foundation
import JobQueue
public import Telegram

/// Telegram calls paced by the shared `RateLimiter`, for job handlers.
///
/// A call that would break Telegram's flood limits (external-apis §5.6) is not made and not
/// slept on: it throws `JobFailure.retryAt`, so the job goes back to the queue until the limit
/// allows it and the worker slot is free meanwhile. If Telegram still answers 429, its
/// `retry_after` reschedules the job the same way.
public struct RateLimitedTelegram: Sendable {
    public let client: TelegramClient
    public let limiter: RateLimiter
    /// The limits one send to a chat takes (Telegram's, by default).
    public let limits: @Sendable (Int64) -> [(key: String, limit: RateLimit)]

    public init(client: TelegramClient, limiter: RateLimiter, limits: @escaping @Sendable (Int64) -> [(key: String, limit: RateLimit)] = { RateLimiter.telegram(chatID: $0) }) {
        self.client = client
        self.limiter = limiter
        self.limits = limits
    }

    /// Runs `call` once the limits of `chatID` and of the bot allow one more message; `admitted`
    /// when they were already taken for it (a reply its handler's transaction admitted).
    /// - Throws: `JobFailure.retryAt` when they do not (or Telegram says 429); the call's own errors otherwise.
    public func send<T: Sendable>(toChat chatID: Int64, admitted: Bool = false, _ call: @Sendable (TelegramClient) async throws -> T) async throws -> T {
        if !admitted, let retryAt = try await limiter.acquire(limits(chatID)) {
            throw JobFailure.retryAt(retryAt, reason: "Telegram flood limit for chat \(chatID)")
        }
        do {
            return try await call(client)
        } catch let error as TelegramError {
            if case .tooManyRequests(let seconds) = error.kind {
                throw JobFailure.retryAt(Date().addingTimeInterval(Double(max(1, seconds))), reason: "Telegram 429, retry after \(seconds) s")
            }
            throw error
        }
    }
}
