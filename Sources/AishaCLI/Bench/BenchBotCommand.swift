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
                let measuredFrom = Date()
                let total = rate * seconds
                let started = ContinuousClock.now
                try await openLoop(people, count: total, rate: rate, replies: replies, offset: users)
                let sent = ContinuousClock.now - started
                let deadline = ContinuousClock.now + .seconds(30)
                while replies.answered < total, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                let elapsed = BenchSupport.seconds(ContinuousClock.now - started)
                let latencies = replies.latencies
                print("sent \(total) updates in \(String(format: "%.1f", BenchSupport.seconds(sent))) s; \(latencies.count) replied (\(total - latencies.count) missing)")
                print("webhook POST → reply at the Sandbox: p50 \(ms(BenchSupport.quantile(latencies, 0.5))) ms, p99 \(ms(BenchSupport.quantile(latencies, 0.99))) ms, max \(ms(latencies.max() ?? .nan)) ms")
                print("replies/s over the run: \(BenchSupport.format(Double(latencies.count) / elapsed))")
                try await printStages(databaseURL: scratch, since: measuredFrom)
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

/// Send and reply times per chat (one update in flight per user at these rates).
final class ReplyClock: Sendable {
    private let state = Mutex<(pending: [Int64: ContinuousClock.Instant], latencies: [Double])>(([:], []))

    func sent(chatID: Int64) { state.withLock { $0.pending[chatID] = .now } }

    func reply(chatID: Int64) {
        state.withLock { state in
            guard let sent = state.pending.removeValue(forKey: chatID) else { return }
            state.latencies.append(BenchSupport.seconds(ContinuousClock.now - sent))
        }
    }

    func reset() { state.withLock { $0 = ([:], []) } }
    var answered: Int { state.withLock { $0.latencies.count } }
    var latencies: [Double] { state.withLock { $0.latencies } }
}
