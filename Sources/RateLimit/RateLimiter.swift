public import Foundation
public import Postgres

/// Rate limits held in PostgreSQL (`rate_limits`), so they hold across every worker process on
/// every host. A caller that is refused gets the time to retry, and reschedules its job there
/// (`JobFailure.retryAt`) instead of sleeping on a worker slot.
public struct RateLimiter: Sendable {
    let database: PostgresClient

    /// A limiter over `database`.
    public init(database: PostgresClient) { self.database = database }

    /// Takes one event from every `(key, limit)` at once, or from none: when any refuses, nothing
    /// is consumed and the latest of their retry times is returned.
    /// Decisions use the database's clock, so workers on hosts with skewed clocks agree.
    /// - Returns: nil when allowed, else when to retry.
    public func acquire(_ limits: [(key: String, limit: RateLimit)]) async throws -> Date? {
        guard !limits.isEmpty else { return nil }
        let keys = limits.map(\.key)
        return try await database.withTransaction { tx in
            try await tx.query("INSERT INTO rate_limits (key, tat) SELECT unnest(\(keys)::text[]), now() ON CONFLICT (key) DO NOTHING")
            // Lock in key order, so two callers wanting the same keys never deadlock.
            let rows = try await tx.query("SELECT key, tat, clock_timestamp() FROM rate_limits WHERE key = ANY(\(keys)::text[]) ORDER BY key FOR UPDATE")
            var tats: [String: Date] = [:]
            var now = Date()
            for row in rows {
                tats[try row.decode(String.self, at: 0)] = try row.decode(Date.self, at: 1)
                now = try row.decode(Date.self, at: 2)
            }
            var updates: [(String, Date)] = []
            var retryAt: Date?
            for (key, limit) in limits {
                switch limit.decide(tat: tats[key], now: now) {
                case .allow(let newTAT): updates.append((key, newTAT))
                case .deny(let when): retryAt = max(retryAt ?? when, when)
                }
            }
            if let retryAt { return retryAt }
            try await tx.query("""
                UPDATE rate_limits SET tat = u.tat FROM unnest(\(updates.map(\.0))::text[], \(updates.map(\.1))::timestamptz[]) AS u(key, tat)
                WHERE rate_limits.key = u.key
                """)
            return nil
        }
    }

    /// The keys for one Telegram send: its chat (private or group pace) and the bot as a whole.
    public static func telegram(chatID: Int64) -> [(key: String, limit: RateLimit)] {
        // Telegram: group and channel ids are negative.
        [("tg:chat:\(chatID)", chatID < 0 ? .telegramGroupChat : .telegramPrivateChat), ("tg:global", .telegramGlobal)]
    }
}
