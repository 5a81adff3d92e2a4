import ArgumentParser
import Foundation
import Postgres
import Synchronization

/// `aisha reliability`: the reliability suite (issue 8). Each case runs real `aisha-server` and
/// `aisha-worker` processes on a scratch database, with the Sandbox for Telegram and FAL, does
/// what production does to a system (kills, outages, faults, hostile input) and checks what
/// must never happen. Prints what each case did and found; exits 1 if any check failed.
struct ReliabilityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reliability",
        abstract: "Kill, starve and attack a running Aisha; check that nothing acknowledged is lost or done twice.",
        discussion: "Needs the local services (.local/env) and a build of aisha-server and aisha-worker next to aisha. Cases: \(allCases.map { type(of: $0).name }.joined(separator: ", "))."
    )

    static let allCases: [any ReliabilityCase] = [KillCase(), PostgresRestartCase(), FaultsCase(), BadInputCase(), ForgedCallbacksCase()]

    @OptionGroup var database: BenchDatabaseOptions
    @Argument(help: "Cases to run (default: all).") var cases: [String] = []
    @Flag(help: "Smaller volumes (for a quick look).") var quick = false
    @Option(help: "Where the processes' logs go.") var logs = ".local/reliability-logs"
    @Option(help: "The local services' folder (default: $AISHA_LOCAL_DIR, else .local).") var localDir: String?
    @Option(help: "Folder of deploy/local's scripts (a PostgreSQL cluster of the suite's own is restarted).") var scripts = "deploy/local"

    func run() async throws {
        let (url, migrations) = try database.resolve()
        let selected = cases.isEmpty ? Self.allCases : try cases.map { name in
            guard let found = Self.allCases.first(where: { type(of: $0).name == name }) else { throw ValidationError("unknown case \(name)") }
            return found
        }
        let context = ReliabilityContext(adminURL: url, migrations: migrations, quick: quick, logs: logs,
                                         localDirectory: localDir ?? ProcessInfo.processInfo.environment["AISHA_LOCAL_DIR"] ?? ".local", scripts: scripts)
        var reports: [CaseReport] = []
        for (number, item) in selected.enumerated() {
            let kind = type(of: item)
            print("\n== \(number + 1)/\(selected.count) \(kind.name): \(kind.title)")
            let started = ContinuousClock.now
            var report: CaseReport
            do { report = try await item.run(context) } catch {
                report = CaseReport(name: kind.name)
                report.fail("the case itself failed: \(error)")
            }
            report.seconds = BenchSupport.seconds(ContinuousClock.now - started)
            for line in report.lines { print("   " + line) }
            for failure in report.failures { print("   FAILED: " + failure) }
            print("   → \(report.failures.isEmpty ? "passed" : "FAILED") in \(String(format: "%.0f", report.seconds)) s")
            reports.append(report)
        }
        let failed = reports.filter { !$0.failures.isEmpty }
        print("\nreliability: \(reports.count - failed.count) passed, \(failed.count) failed")
        if !failed.isEmpty { throw ExitCode(1) }
    }
}

/// One case of the suite.
protocol ReliabilityCase: Sendable {
    static var name: String { get }
    static var title: String { get }
    func run(_ context: ReliabilityContext) async throws -> CaseReport
}

struct ReliabilityContext: Sendable {
    let adminURL: String
    let migrations: String
    let quick: Bool
    let logs: String
    let localDirectory: String
    let scripts: String

    /// A fresh folder for one case's process logs.
    func logDirectory(_ caseName: String) -> String {
        let path = logs + "/" + caseName
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// What a case did (lines) and what it found wrong (failures).
struct CaseReport: Sendable {
    let name: String
    var lines: [String] = []
    var failures: [String] = []
    var seconds = 0.0

    mutating func line(_ text: String) { lines.append(text) }
    mutating func fail(_ text: String) { failures.append(text) }
    mutating func check(_ condition: Bool, _ text: @autoclosure () -> String) { if !condition { fail(text()) } }
}

/// A value shared by concurrent tasks of a case.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout sending Value) -> sending R) -> R { mutex.withLock(body) }
}

/// Failures collected from concurrent tasks.
typealias Failures = Locked<[String]>

extension Locked where Value == [String] {
    convenience init() { self.init([]) }
    func add(_ text: String) { withLock { $0.append(text) } }
    var all: [String] { withLock { $0 } }
    var count: Int { withLock { $0.count } }
}
