import BlockingIO
import Curl
import Foundation
import RateLimit
import Postgres
import Sandbox
import Synchronization

/// Case 2: PostgreSQL goes away for a few seconds while Telegram delivers updates at a steady
/// rate. The server must answer 503 quickly while it is gone (Telegram then redelivers), never
/// hang, come back by itself, and every update it answered 200 must be processed.
struct PostgresRestartCase: ReliabilityCase {
    static let name = "postgres"
    static let title = "PostgreSQL stopped for 3 s under a steady stream of webhooks"

    func run(_ context: ReliabilityContext) async throws -> CaseReport {
        let rate = 100, seconds = context.quick ? 12 : 20, users = 200
        // A cluster of the suite's own: stopping the shared one would disturb everything else.
        let script = context.scripts + "/postgres.sh"
        let adminURL = try await ChildProcess.run(script, ["start", "reliability"]).trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? ChildProcess.run(script, ["destroy", "reliability"]) }  // stops it and removes its data, whatever happened
        // Telegram's pacing is not what is measured: lift it so replies keep up with the stream.
        let sandbox = Sandbox(telegram: .init(perChatLimit: .init(count: 100, per: 1, burst: 100), globalLimit: .init(count: 100_000, per: 1, burst: 100_000)))
        let report = try await ReliabilityStack.run(adminURL: adminURL, migrations: context.migrations, workers: 1, overrides: ["AISHA_TELEGRAM_GLOBAL_PER_SECOND": "100000"],
                                       sandbox: sandbox, logDirectory: context.logDirectory(Self.name)) { stack in
            var report = CaseReport(name: Self.name)
            let people = (0..<users).map { sandbox.telegram.user(id: 950_000 + Int64($0), firstName: "P\($0)") }
            let http = CurlClient()
            let answers = Locked<[(id: Int64, status: Int, at: ContinuousClock.Instant, took: Double)]>([])
            let total = rate * seconds
            let start = ContinuousClock.now
            let outage = Locked<(stopped: ContinuousClock.Instant?, started: ContinuousClock.Instant?)>((nil, nil))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await Task.sleep(until: start + .seconds(seconds / 3), clock: .continuous)
                    _ = try await ChildProcess.run(script, ["stop", "reliability"])
                    outage.withLock { $0.stopped = .now }
                    try await Task.sleep(for: .seconds(3))
                    _ = try await ChildProcess.run(script, ["start", "reliability"])
                    outage.withLock { $0.started = .now }
                }
                for index in 0..<total {
                    try await Task.sleep(until: start + .seconds(1) / rate * index, clock: .continuous)
                    let person = people[index % users], updateID = Int64(5_000_000 + index)
                    group.addTask {
                        let body = Self.update(id: updateID, userID: person.id)
                        let sent = ContinuousClock.now
                        let status = (try? await http.execute(CurlRequest(.post, url: stack.serverBase + "/telegram/webhook",
                            headers: [("Content-Type", "application/json"), ("X-Telegram-Bot-Api-Secret-Token", stack.secret)], body: .bytes(body), timeout: .seconds(10))))?.status ?? 0
                        let took = BenchSupport.seconds(ContinuousClock.now - sent)
                        answers.withLock { $0.append((updateID, status, sent, took)) }
                    }
                }
                try await group.waitForAll()
            }
            let all = answers.withLock { $0 }
            let accepted = all.filter { $0.status == 200 }.map(\.id)
            let unavailable = all.filter { $0.status == 503 }
            let other = all.filter { $0.status != 200 && $0.status != 503 }
            let (stopped, restarted) = outage.withLock { ($0.stopped, $0.started) }
            let firstAfter = restarted.flatMap { back in all.filter { $0.status == 200 && $0.at > back }.map(\.at).min().map { BenchSupport.seconds($0 - back) } }
            let quiet = try await stack.waitForQuiet(timeout: .seconds(90))
            let keys = accepted.map { "tg:update:\($0)" }
            let stored = try await stack.count("SELECT count(*) FROM jobs WHERE unique_key = ANY(\(keys))")
            let processed = try await stack.count("SELECT count(*) FROM jobs WHERE unique_key = ANY(\(keys)) AND state = 'completed'")
            let refusedKeys = unavailable.map { "tg:update:\($0.id)" }
            let storedAnyway = try await stack.count("SELECT count(*) FROM jobs WHERE unique_key = ANY(\(refusedKeys))")
            let replies = people.reduce(0) { $0 + sandbox.telegram.messages(inChat: $1.id).filter(\.fromBot).count }
            let slowest503 = unavailable.map(\.took).max() ?? 0

            report.line("\(total) updates at \(rate)/s over \(seconds) s from \(users) chats; PostgreSQL stopped \(stopped.map { String(format: "%.1f", BenchSupport.seconds($0 - start)) } ?? "?") s in, for 3 s (pg_ctl stop -m fast, then start)")
            report.line("answers: \(accepted.count) × 200, \(unavailable.count) × 503 (slowest \(String(format: "%.2f", slowest503)) s), \(other.count) other (timeouts or errors)")
            report.line("first 200 after PostgreSQL came back: \(firstAfter.map { String(format: "%.2f s", $0) } ?? "never") — the server was not restarted (alive: \(stack.serverAlive))")
            report.line("of the \(accepted.count) acknowledged: \(stored) stored, \(processed) processed; bot replies in the chats: \(replies); answered 503 but stored anyway: \(storedAnyway)")
            report.check(other.isEmpty, "\(other.count) answers were neither 200 nor 503 (statuses \(Set(other.map(\.status))))")
            report.check(!unavailable.isEmpty, "the outage was never seen (no 503)")
            report.check(slowest503 < 3, "a 503 took \(slowest503) s")
            report.check(firstAfter != nil, "the server did not recover")
            report.check(quiet && stored == accepted.count && processed == accepted.count, "acknowledged updates lost: \(accepted.count - processed)")
            report.check(replies >= processed, "fewer replies (\(replies)) than processed updates (\(processed))")
            report.check(stack.serverAlive, "the server died")
            return report
        }
        return report
    }

    /// A private-chat `/help` as Telegram would deliver it.
    static func update(id: Int64, userID: Int64) -> Data {
        let now = Int(Date().timeIntervalSince1970)
        return Data(#"{"update_id":\#(id),"message":{"message_id":\#(id),"from":{"id":\#(userID),"is_bot":false,"first_name":"P","language_code":"en"},"chat":{"id":\#(userID),"type":"private","first_name":"P"},"date":\#(now),"text":"/help","entities":[{"type":"bot_command","offset":0,"length":5}]}}"#.utf8)
    }
}
