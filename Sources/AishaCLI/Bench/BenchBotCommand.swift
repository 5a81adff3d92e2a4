import ArgumentParser
import BlockingIO
import Curl
import Foundation
import Logging
import Postgres
import RateLimit
import Sandbox
import Synchronization

/// `aisha bench bot`: simulated users send `/start` and menu taps through the real webhook to
/// real `aisha-server` and `aisha-worker` processes; the time from each POST to the Sandbox
/// receiving the bot's reply is measured.
struct BenchBotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bot",
        abstract: "Time from a Telegram webhook POST to the bot's reply, at a fixed rate of updates.",
        discussion: "Needs PostgreSQL and the local S3 server (.local/env); Telegram and FAL are the in-process Sandbox."
    )

    @OptionGroup var database: BenchDatabaseOptions
    @Option(help: "Updates per second (open loop).") var rate = 200
    @Option(help: "Seconds of load.") var seconds = 10
    @Option(help: "Simulated users (each sends /start, then taps Help, alternately).") var users = 1000

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let (url, migrations) = try database.resolve()
        let logger = BenchSupport.logger
        let serverPath = try BenchSupport.sibling("aisha-server"), workerPath = try BenchSupport.sibling("aisha-worker")
        print("aisha bench bot: \(rate) updates/s for \(seconds) s from \(users) users (/start and Help taps)")

        // Telegram's flood limits are not what is measured here: lift them in the stand-in and the worker.
        let sandbox = Sandbox(telegram: .init(perChatLimit: .init(count: 100, per: 1, burst: 100), globalLimit: .init(count: 100_000, per: 1, burst: 100_000)))
        let replies = ReplyClock()
        sandbox.transcript.observe { event in if event.actor == .bot, event.kind == "text" || event.kind == "toast" { replies.reply(chatID: event.chatID) } }

        try await BenchSupport.withScratchDatabase(adminURL: url, migrationsDirectory: migrations, logger: logger) { scratch in
            try await sandbox.run { endpoints in
                let port = try BenchSupport.freePort()
                let base = "http://127.0.0.1:\(port)"
                let shared = environment.merging([
                    "AISHA_DATABASE_URL": scratch, "AISHA_MIGRATIONS_DIR": migrations, "AISHA_LOG_LEVEL": "warning",
                    "AISHA_HTTP_PORT": "\(port)", "AISHA_TELEGRAM_WEBHOOK_SECRET": "bench_secret",
                    "AISHA_TELEGRAM_BOT_TOKEN": sandbox.telegram.configuration.token, "AISHA_TELEGRAM_API_URL": endpoints.telegramAPI,
                    "AISHA_TELEGRAM_GLOBAL_PER_SECOND": "100000", "AISHA_FAL_WEBHOOK_URL": base + "/fal/webhook", "FAL_KEY": sandbox.fal.configuration.key,
                    "FAL_QUEUE_URL": endpoints.falQueue, "FAL_REST_URL": endpoints.falREST,
                ]) { $1 }
                let log = NSTemporaryDirectory() + "/aisha-bench-bot-\(port).log"
                let server = try ChildProcess.spawn(serverPath, [], environment: shared, logPath: log)
                let worker = try ChildProcess.spawn(workerPath, [], environment: shared, logPath: log + ".worker")
                defer {
                    kill(server, SIGTERM); kill(worker, SIGTERM)
                    _ = ChildProcess.waitForExit(server); _ = ChildProcess.waitForExit(worker)
                    try? FileManager.default.removeItem(atPath: log); try? FileManager.default.removeItem(atPath: log + ".worker")
                }
                try await BenchSupport.waitUntilHealthy(base + "/healthz")
                sandbox.telegram.setWebhook(.init(url: base + "/telegram/webhook", secretToken: "bench_secret"))
                let people = (0..<users).map { sandbox.telegram.user(id: Int64(1_000_000 + $0), firstName: "User\($0)") }
                // Warm up: every user registers once, so the measured run is steady state.
                print("warming up (registering \(users) users)…")
                try await openLoop(people, count: users, rate: max(rate, 100), replies: nil)
                try await Task.sleep(for: .seconds(3))

                replies.reset()
                let cpu = CPUAccount(pids: [("server", server), ("worker", worker)])
                let cpuBefore = cpu.snapshot()
                let measuredFrom = Date()
                let total = rate * seconds
                let started = ContinuousClock.now
                try await openLoop(people, count: total, rate: rate, replies: replies, offset: users)
                let sent = ContinuousClock.now - started
                let deadline = ContinuousClock.now + .seconds(30)
                while replies.answered < total, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                let elapsed = BenchSupport.seconds((replies.lastReply ?? ContinuousClock.now) - started)
                let cpuAfter = cpu.snapshot()
                let records = replies.records
                let latencies = records.map { $0.latency }
                print("sent \(total) updates in \(String(format: "%.1f", BenchSupport.seconds(sent))) s; \(latencies.count) replied (\(total - latencies.count) missing)")
                print("webhook POST → reply at the Sandbox: p50 \(ms(BenchSupport.quantile(latencies, 0.5))) ms, p99 \(ms(BenchSupport.quantile(latencies, 0.99))) ms, max \(ms(latencies.max() ?? .nan)) ms")
                print("replies/s over the run: \(BenchSupport.format(Double(latencies.count) / elapsed))")
                print(cpu.report(from: cpuBefore, to: cpuAfter, replies: latencies.count))
                try await printStages(databaseURL: scratch, since: measuredFrom)
                try await printTimeline(databaseURL: scratch, replies: records)
            }
        }
    }

    private func ms(_ seconds: Double) -> String { String(format: "%.2f", seconds * 1000) }

    /// Where a reply's time goes, from the jobs table: each job's wait from its commit
    /// (`created_at`, the inserting transaction's start) to its claim, and from its claim to its
    /// acknowledgement, for the update and for the reply it sent.
    private func printStages(databaseURL: String, since: Date) async throws {
        let client = try PostgresClient(url: databaseURL, maxConnections: 1, logger: BenchSupport.logger)
        defer { client.shutdown() }
        let rows = try await client.query("""
            SELECT kind,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at)) * 1000,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at)) * 1000,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - attempted_at)) * 1000,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - attempted_at)) * 1000
            FROM jobs WHERE kind IN ('telegram.update', 'telegram.send') AND created_at >= \(since) AND state = 'completed'
            GROUP BY kind ORDER BY kind DESC
            """)
        for row in rows {
            let values = try (1...4).map { try row.decode(Double.self, at: $0) }
            print("  \(try row.decode(String.self, at: 0)): enqueued → claimed p50 \(String(format: "%.2f", values[0])) / p99 \(String(format: "%.2f", values[1])) ms; claimed → acknowledged p50 \(String(format: "%.2f", values[2])) / p99 \(String(format: "%.2f", values[3])) ms")
        }
    }

    /// One reply's path in three steps, medians over the run: POST → the server's insert (the
    /// update's `created_at`) → the worker's claim (its `attempted_at`) → the Sandbox receiving the
    /// reply (the update's transaction, then the send: a reply the rate limiter admitted has no
    /// job row to time it by). Wall clocks of the same machine; updates and replies are paired by
    /// chat (one update per chat is in flight at these rates).
    private func printTimeline(databaseURL: String, replies: [ReplyClock.Record]) async throws {
        guard !replies.isEmpty else { return }
        let client = try PostgresClient(url: databaseURL, maxConnections: 1, logger: BenchSupport.logger)
        defer { client.shutdown() }
        // The queue's own serial-key index covers pending jobs only; pairing finished ones needs
        // this one (the scratch database is dropped afterwards).
        try await client.query("CREATE INDEX ON jobs (serial_key, created_at)")
        let rows = try await client.query("""
            WITH b AS (
                SELECT * FROM unnest(\(replies.map(\.chatID))::int8[], \(replies.map(\.sent))::timestamptz[], \(replies.map(\.replied))::timestamptz[]) AS b(chat, sent, replied)
            ), paired AS (
                SELECT b.sent, b.replied, u.created_at AS stored, u.attempted_at AS claimed
                FROM b
                JOIN LATERAL (SELECT created_at, attempted_at FROM jobs WHERE kind = 'telegram.update' AND serial_key = 'tg:chat:' || b.chat
                              AND created_at BETWEEN b.sent - interval '50 ms' AND b.replied ORDER BY created_at LIMIT 1) u ON true
            )
            SELECT count(*)::int,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stored - sent)) * 1000,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM claimed - stored)) * 1000,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM replied - claimed)) * 1000
            FROM paired
            """)
        guard let row = rows.first, try row.decode(Int.self, at: 0) > 0 else { return }
        let steps = try (1...3).map { String(format: "%.2f", try row.decode(Double.self, at: $0)) }
        print("  timeline (p50 of \(try row.decode(Int.self, at: 0)) paired replies): POST → stored \(steps[0]) ms → claimed \(steps[1]) ms → reply at the Sandbox \(steps[2]) ms")
    }

    /// Sends `count` updates at `rate`, user after user: `/start` on even rounds, a Help tap on odd.
    private func openLoop(_ people: [SandboxUser], count: Int, rate: Int, replies: ReplyClock?, offset: Int = 0) async throws {
        let interval = Duration.seconds(1) / rate
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                try await Task.sleep(until: start + interval * index, clock: .continuous)
                let sequence = index + offset
                let user = people[sequence % people.count]
                let round = sequence / people.count
                group.addTask {
                    replies?.sent(chatID: user.id)
                    if round % 2 == 0 { await user.send("/start") } else { await user.forgeCallback(data: "help", messageID: 1) }
                }
            }
            try await group.waitForAll()
        }
    }
}

/// Send and reply times per chat. A chat's updates run one at a time and each gets exactly one
/// text reply, so a reply answers the chat's oldest unanswered update — also when a user sends
/// again before the last answer came (an overloaded run). (Keeping only the latest update per
/// chat once made every run slower than the users' pace look like a stall.)
final class ReplyClock: Sendable {
    /// One answered update: its latency (monotonic clock), and its wall-clock times to line up
    /// with the database's timestamps.
    struct Record: Sendable { var chatID: Int64, latency: Double, sent: Date, replied: Date }
    private struct State {
        var pending: [Int64: [(ContinuousClock.Instant, Date)]] = [:]
        var records: [Record] = []
        var lastReply: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    func sent(chatID: Int64) { state.withLock { $0.pending[chatID, default: []].append((.now, Date())) } }

    func reply(chatID: Int64) {
        state.withLock { state in
            guard var waiting = state.pending[chatID], !waiting.isEmpty else { return }
            let (sent, sentDate) = waiting.removeFirst()
            state.pending[chatID] = waiting.isEmpty ? nil : waiting
            let now = ContinuousClock.now
            state.records.append(Record(chatID: chatID, latency: BenchSupport.seconds(now - sent), sent: sentDate, replied: Date()))
            state.lastReply = now
        }
    }

    func reset() { state.withLock { $0 = State() } }
    var answered: Int { state.withLock { $0.records.count } }
    var records: [Record] { state.withLock { $0.records } }
    /// When the last reply arrived (replies/s is counted up to it, not to the end of the wait).
    var lastReply: ContinuousClock.Instant? { state.withLock { $0.lastReply } }
}
