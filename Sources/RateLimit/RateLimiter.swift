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
        // One statement (migration 0006's function, 0011's version): it runs on every Telegram send.
        return try await database.query("SELECT \(Self.acquisition(limits))")[0].decode(Date?.self, at: 0)
    }

    /// `acquire` as a SQL expression (NULL when allowed, else the time to retry), to run inside
    /// another statement: `JobQueue.enqueueUnlessAdmitted` admits a reply with it in the reply's own
    /// insert. Inside a transaction its row locks last until the COMMIT.
    public static func acquisition(_ limits: [(key: String, limit: RateLimit)]) -> PostgresQuery {
        // Sorted by key: the function then locks each key as it reads it (migration 0008).
        let limits = limits.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return "rate_limit_acquire(\(limits.map { $0.key })::text[], \(limits.map { $0.limit.interval })::float8[], \(limits.map { $0.limit.burst })::int4[])"
    }

    /// The keys for one Telegram send: its chat (private or group pace) and the bot as a whole.
    /// `global` is the whole bot's pace: about 30 a second, more with paid broadcasts.
    ///
    /// Every send locks its global key until its transaction ends, so one key serialises every
    /// reply: at 750 replies/s the sends' transactions queued on it (2–3 ms per reply's insert,
    /// mostly waiting, and a preempted holder on 2 cores held everyone up). From 60 a second the
    /// global pace is therefore split into shards of at least 30 a second (at most 64), chosen by
    /// chat: their sum never exceeds `global`, and a chat (1 a second) never fills its shard alone.
    public static func telegram(chatID: Int64, global: RateLimit = .telegramGlobal) -> [(key: String, limit: RateLimit)] {
        // Telegram: group and channel ids are negative.
        let chat = ("tg:chat:\(chatID)", chatID < 0 ? RateLimit.telegramGroupChat : .telegramPrivateChat)
        let shards = globalShards(global)
        guard shards > 1 else { return [chat, ("tg:global", global)] }
        let shard = UInt64(bitPattern: chatID) % UInt64(shards)
        return [chat, ("tg:global:\(shard)", global.split(into: shards))]
    }

    /// How many shards `telegram(chatID:global:)` splits `global` into.
    static func globalShards(_ global: RateLimit) -> Int {
        let perSecond = 1 / global.interval
        return min(64, max(1, Int(perSecond / 30)))
    }
}
