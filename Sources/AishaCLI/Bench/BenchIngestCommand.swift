import ArgumentParser
import BlockingIO
import Curl
import Foundation
import Logging
import Postgres

/// `aisha bench ingest`: Telegram webhooks into a real `aisha-server` process, against
/// pgbench's one-INSERT transactions on the same cluster at the same concurrency.
struct BenchIngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "POST /telegram/webhook with wrk at a concurrency, then at half that rate; compare with pgbench INSERTs.",
        discussion: "Starts aisha-server (next to this executable) on a scratch database; drives it with wrk from a separate process."
    )

    @OptionGroup var database: BenchDatabaseOptions
    @Option(help: "Concurrent connections (Telegram's default max_connections is 40).") var concurrency = 40
    @Option(help: "Seconds per run.") var seconds = 10
    @Option(help: "Runs of each kind; medians are reported.") var runs = 3
    @Option(help: "Server database pool size.") var poolSize = 10

    static let secret = "bench_secret"

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let (url, migrations) = try database.resolve()
        let logger = BenchSupport.logger
        let server = try BenchSupport.sibling("aisha-server")
        print("aisha bench ingest: concurrency \(concurrency), \(seconds) s per run, \(runs) runs, server pool \(poolSize)")

        try await BenchSupport.withScratchDatabase(adminURL: url, migrationsDirectory: migrations, logger: logger) { scratch in
            let port = try BenchSupport.freePort()
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("aisha-bench-server-\(port).log").path
            let pid = try ChildProcess.spawn(server, [], environment: environment.merging([
                "AISHA_DATABASE_URL": scratch, "AISHA_HTTP_PORT": "\(port)", "AISHA_TELEGRAM_WEBHOOK_SECRET": Self.secret,
                "AISHA_MIGRATIONS_DIR": migrations, "AISHA_LOG_LEVEL": "warning", "AISHA_DB_POOL_SIZE": "\(poolSize)",
            ]) { $1 }, logPath: log)
            defer {
                kill(pid, SIGTERM)
                _ = ChildProcess.waitForExit(pid)
                try? FileManager.default.removeItem(atPath: log)
            }
            let base = "http://127.0.0.1:\(port)"
            try await BenchSupport.waitUntilHealthy(base + "/healthz")

            var wrkRuns: [WrkResult] = []
            var pgbench: [Double] = []
            var offset = 0
            if await !BenchSupport.settle(url: scratch) { print("  (CHECKPOINT refused: runs are not isolated from each other's writes)") }
            for _ in 0..<runs {
                let result = try await wrk(base: base, idOffset: offset)
                offset += 100_000_000
                wrkRuns.append(result)
                await BenchSupport.settle(url: scratch)
                pgbench.append(try await BenchSupport.pgbenchInsertTPS(url: scratch, clients: concurrency, seconds: seconds))
                await BenchSupport.settle(url: scratch)
            }
            // Durable means stored: every acknowledged update is a row.
            let client = try PostgresClient(url: scratch, maxConnections: 1, logger: logger)
            defer { client.shutdown() }
            let stored = try await client.query("SELECT count(*) FROM jobs WHERE kind = 'telegram.update'")[0].decode(Int.self, at: 0)
            let acknowledged = wrkRuns.reduce(0) { $0 + $1.acknowledged }
            let ackRate = median(wrkRuns.map(\.acknowledgedPerSecond)), pgRate = median(pgbench)
            print("closed loop, \(concurrency) connections (wrk):")
            for (index, run) in wrkRuns.enumerated() {
                print("  run \(index + 1): \(BenchSupport.format(run.acknowledgedPerSecond)) updates/s acknowledged, p50 \(ms(run.p50)) ms, p99 \(ms(run.p99)) ms, max \(ms(run.max)) ms, non-2xx \(run.failed) | pgbench \(BenchSupport.format(pgbench[index])) tx/s")
            }
            print("  median: \(BenchSupport.format(ackRate)) acknowledged updates/s vs pgbench \(BenchSupport.format(pgRate)) INSERT tx/s  (ratio \(String(format: "%.2f", ackRate / pgRate)))")
            // wrk stops counting at the deadline; the up to `concurrency` requests then in flight are stored but uncounted.
            print("  stored rows \(stored) for \(acknowledged) acknowledged updates (\(stored - acknowledged) answered after wrk's deadline)\(stored >= acknowledged ? "" : "  ← LOST UPDATES")")

            // Half that rate: every connection pauses between requests (wrk's delay()), the pause
            // tuned so the 40 connections together send half the closed-loop rate.
            let target = ackRate / 2
            var pause = max(1, Int((Double(concurrency) / target * 1000 - median(wrkRuns.map(\.p50)) * 1000).rounded()))
            var halves: [WrkResult] = []
            for run in 0..<runs {
                await BenchSupport.settle(url: scratch)
                let result = try await wrk(base: base, idOffset: 1_000_000_000 + run * 100_000_000, delayMilliseconds: pause)
                halves.append(result)
                // Steer the next run's pause towards the target rate.
                let cycle = Double(concurrency) / result.acknowledgedPerSecond * 1000
                pause = max(1, Int((Double(pause) + Double(concurrency) / target * 1000 - cycle).rounded()))
            }
            print("half load (target \(BenchSupport.format(target))/s): \(concurrency) connections, each pausing between requests:")
            for (index, run) in halves.enumerated() {
                print("  run \(index + 1): \(BenchSupport.format(run.acknowledgedPerSecond)) updates/s, p50 \(ms(run.p50)) ms, p99 \(ms(run.p99)) ms, max \(ms(run.max)) ms, non-2xx \(run.failed)")
            }
            print("  median p99: \(ms(median(halves.map(\.p99)))) ms at a median \(BenchSupport.format(median(halves.map(\.acknowledgedPerSecond))))/s")
            let metrics = String(decoding: try await CurlClient().get(base + "/metrics").body, as: UTF8.self)
            let commits = metrics.split(separator: "\n").filter { $0.hasPrefix("aisha_ingest_commits") }.map { $0.split(separator: " ").last.map(String.init) ?? "" }
            if commits.count == 2, let batches = Double(commits[0]), let jobs = Double(commits[1]), batches > 0 {
                print("group commit: \(Int(jobs)) jobs in \(Int(batches)) commits (\(String(format: "%.1f", jobs / batches)) per commit)")
            }
        }
    }

    func median(_ values: [Double]) -> Double { BenchSupport.quantile(values, 0.5) }
    func ms(_ seconds: Double) -> String { String(format: "%.2f", seconds * 1000) }

    struct WrkResult {
        var acknowledged: Int
        var failed: Int
        var acknowledgedPerSecond: Double
        var p50: Double, p99: Double, max: Double
    }

    /// One closed-loop run of wrk: `concurrency` connections, each posting the next update as soon
    /// as the previous one is answered. Update ids are unique, chats spread over 997 users.
    private func wrk(base: String, idOffset: Int, delayMilliseconds: Int? = nil) async throws -> WrkResult {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("aisha-ingest-\(UUID()).lua").path
        try """
            local threads = 0
            function setup(thread) thread:set("tid", threads); threads = threads + 1 end
            local counter = 0
            request = function()
              counter = counter + 1
              local id = \(idOffset) + tid * 10000000 + counter
              local chat = 100000 + (id % 997)
              local body = string.format('{"update_id":%d,"message":{"message_id":%d,"date":1764060000,"from":{"id":%d,"is_bot":false,"first_name":"Ann","language_code":"en"},"chat":{"id":%d,"type":"private","first_name":"Ann"},"text":"me as a film noir detective, rain, neon, 35mm"}}', id, counter, chat, chat)
              return wrk.format("POST", "/telegram/webhook", {["Content-Type"] = "application/json", ["X-Telegram-Bot-Api-Secret-Token"] = "\(Self.secret)"}, body)
            end
            \(delayMilliseconds.map { "delay = function() return \($0) end" } ?? "")
            done = function(summary, latency, requests)
              io.write(string.format("AISHA %d %d %d %d %d %d %d\\n", summary.requests, summary.duration, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
                latency:percentile(50), latency:percentile(99), latency.max, 0))
            end
            """.write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let output = try await ChildProcess.run("wrk", ["-t", "2", "-c", "\(concurrency)", "-d", "\(seconds)s", "--timeout", "10s", "-s", script, base + "/telegram/webhook"])
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("AISHA ") }) else { throw BenchError("could not read wrk's output: \(output)") }
        let numbers = line.split(separator: " ").dropFirst().compactMap { Int($0) }
        guard numbers.count == 7 else { throw BenchError("unexpected wrk summary: \(line)") }
        let (requests, durationMicros, failed) = (numbers[0], numbers[1], numbers[2])
        let acknowledged = requests - failed
        return WrkResult(
            acknowledged: acknowledged, failed: failed, acknowledgedPerSecond: Double(acknowledged) / (Double(durationMicros) / 1e6),
            p50: Double(numbers[3]) / 1e6, p99: Double(numbers[4]) / 1e6, max: Double(numbers[5]) / 1e6
        )
    }
}
