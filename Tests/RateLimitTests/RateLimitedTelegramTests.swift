import Foundation
import JobQueue
import Postgres
import RateLimit
import Sandbox
import Telegram
import TestSupport
import Testing

/// Sends paced by the shared limiter against the Sandbox's Bot API, which enforces Telegram's
/// flood limits with 429s of its own.
@Suite struct RateLimitedTelegramTests {
    @Test func overTheLimitReschedulesInsteadOfSleeping() async throws {
        let sandbox = Sandbox()
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            try await sandbox.run { endpoints in
                // A private chat's burst of 3, but refilling once a minute, so a slow machine cannot
                // change the outcome.
                let slow = RateLimit(count: 1, per: 60, burst: 3)
                let telegram = RateLimitedTelegram(
                    client: TelegramClient(token: sandbox.telegram.configuration.token, apiBaseURL: endpoints.telegramAPI), limiter: RateLimiter(database: client),
                    limits: { chat in [("tg:chat:\(chat)", slow), ("tg:global", .telegramGlobal)] }
                )
                sandbox.telegram.user(id: 601)
                var sent = 0
                var retryAt: Date?
                var refusalTook = Duration.zero
                for index in 0..<6 {
                    let started = ContinuousClock.now
                    do {
                        _ = try await telegram.send(toChat: 601) { try await $0.sendMessage(chatID: 601, text: "message \(index)") }
                        sent += 1
                    } catch JobFailure.retryAt(let date, _) {
                        retryAt = date
                        refusalTook = ContinuousClock.now - started
                        break
                    }
                }
                #expect(sent == 3, "the burst of a private chat")
                let wait = try #require(retryAt).timeIntervalSinceNow
                #expect(wait > 40 && wait <= 60.5, "retry when the limit allows, not later")
                #expect(refusalTook < .seconds(10), "refused at once, not slept on (\(refusalTook))")
                #expect(sandbox.telegram.floodRejections == 0, "Telegram never had to say 429")
                #expect(sandbox.telegram.messages(inChat: 601).count == 3)

                // Blocked users surface as Telegram's own error, for the caller to mark them.
                sandbox.telegram.user(id: 602)
                sandbox.telegram.block(chatID: 602)
                do {
                    _ = try await telegram.send(toChat: 602) { try await $0.sendMessage(chatID: 602, text: "hi") }
                    Issue.record("a blocked user got a message")
                } catch let error as TelegramError {
                    #expect(error.kind == .blockedByUser)
                }
            }
        }
    }

    @Test func telegramsOwn429BecomesARetryAt() async throws {
        // A Telegram stricter than our limiter (one message, then 1 per 5 s).
        let sandbox = Sandbox(telegram: .init(perChatLimit: RateLimit(count: 1, per: 5, burst: 1)))
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            try await sandbox.run { endpoints in
                let telegram = RateLimitedTelegram(client: TelegramClient(token: sandbox.telegram.configuration.token, apiBaseURL: endpoints.telegramAPI), limiter: RateLimiter(database: client))
                sandbox.telegram.user(id: 603)
                _ = try await telegram.send(toChat: 603) { try await $0.sendMessage(chatID: 603, text: "one") }
                do {
                    _ = try await telegram.send(toChat: 603) { try await $0.sendMessage(chatID: 603, text: "two") }
                    Issue.record("the second message passed a 1-per-5-s Telegram")
                } catch JobFailure.retryAt(let date, let reason) {
                    // Telegram said "retry after 5" (rounded up); we are a little later than that answer.
                    #expect(date.timeIntervalSinceNow > 0 && date.timeIntervalSinceNow <= 5.5 && reason.contains("429"), "\(date.timeIntervalSinceNow)")
                }
                #expect(sandbox.telegram.floodRejections == 1)
            }
        }
    }
}
