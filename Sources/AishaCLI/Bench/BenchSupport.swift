import ArgumentParser
import BlockingIO
import Curl
import Foundation
import Logging
import Postgres

/// The database every benchmark creates its scratch database next to.
struct BenchDatabaseOptions: ParsableArguments {
    @Option(help: "PostgreSQL URL of a role that may CREATE DATABASE (default: $AISHA_DATABASE_URL).") var databaseURL: String?
    @Option(help: "Folder of migrations (default: $AISHA_MIGRATIONS_DIR, else ./Migrations).") var migrationsDir: String?

    /// The admin URL and the migrations folder, from the options or the environment.
    func resolve() throws -> (url: String, migrations: String) {
        let environment = ProcessInfo.processInfo.environment
        guard let url = databaseURL ?? environment["AISHA_DATABASE_URL"] else { throw ValidationError("pass --database-url or set AISHA_DATABASE_URL") }
        return (url, migrationsDir ?? environment["AISHA_MIGRATIONS_DIR"] ?? "Migrations")
    }
}

/// Shared pieces of the `aisha bench` commands.
enum BenchSupport {
    /// Benchmarks log warnings only: their output is the report.
    static let logger: Logger = {
        var logger = Logger(label: "aisha.bench")
        logger.logLevel = .warning
        return logger
    }()

    /// An executable built next to this one (`aisha-server`, `aisha-worker`).
    static func sibling(_ name: String) throws -> String {
        let path = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw BenchError("\(name) not found next to aisha (\(path)); build all products") }
        return path
    }

    /// Creates a scratch database next to `adminURL`'s, migrates it, runs `body`, drops it.
    static func withScratchDatabase<T>(adminURL: String, migrationsDirectory: String, logger: Logger, _ body: (String) async throws -> T) async throws -> T {
        let admin = try PostgresClient(url: adminURL, maxConnections: 1, logger: logger)
        defer { admin.shutdown() }
        let name = "aisha_bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        try await admin.query("CREATE DATABASE \(identifier: name)")
        guard var components = URLComponents(string: adminURL) else { throw BenchError("benchmarks need a postgres:// URL") }
        components.path = "/" + name
        let url = components.string!
        do {
            let client = try PostgresClient(url: url, maxConnections: 1, logger: logger)
            try await Migrator(client: client, logger: logger).migrate(try Migration.load(directory: migrationsDirectory))
            client.shutdown()
            let result = try await body(url)
            try await admin.query("DROP DATABASE \(identifier: name) WITH (FORCE)")
            return result
        } catch {
            _ = try? await admin.query("DROP DATABASE \(identifier: name) WITH (FORCE)")
            throw error
        }
    }

    /// Writes the previous run's data out before the next run starts (`CHECKPOINT`), so no run
    /// pays for another's. A growing table leaves its new pages dirty in the kernel's cache
    /// (PostgreSQL extends files with plain writes); the kernel writes them out in one burst about
    /// 30 s later, and every commit of whatever runs then waits behind it: pgbench after our runs,
    /// and the half-load runs after the closed loop, paid for 100–200 MB of someone else's pages
    /// (docs/benchmarks.md, session 10). False when the role may not checkpoint (it needs
    /// superuser or `pg_checkpoint`); the runs are then not isolated.
    @discardableResult
    static func settle(url: String) async -> Bool {
        guard let client = try? PostgresClient(url: url, maxConnections: 1, logger: Logger(label: "bench")) else { return false }
        defer { client.shutdown() }
        return (try? await client.query("CHECKPOINT")) != nil
    }

    /// pgbench's transactions per second for a one-row INSERT per transaction at `clients`.
    static func pgbenchInsertTPS(url: String, clients: Int, seconds: Int) async throws -> Double {
        let client = try PostgresClient(url: url, maxConnections: 1, logger: Logger(label: "bench"))
        try await client.query("CREATE TABLE IF NOT EXISTS pgbench_insert (id bigserial PRIMARY KEY, v int NOT NULL, at timestamptz NOT NULL DEFAULT now())")
        client.shutdown()
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("pgbench-\(UUID()).sql").path
        try "\\set v random(1, 1000000)\nINSERT INTO pgbench_insert (v) VALUES (:v);\n".write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let output = try await ChildProcess.run("pgbench", [ "-n", "-c", "\(clients)", "-j", "\(min(clients, 2))", "-T", "\(seconds)", "-f", script, url])
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
              let value = Double(line.dropFirst(6).prefix { $0 != " " })
        else { throw BenchError("could not read pgbench's output: \(output)") }
        return value
    }

    /// A TCP port nothing listens on right now.
    static func freePort() throws -> Int {
        let output = try ChildProcess.run("python3", ["-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()"])
        guard let port = Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw BenchError("no free port") }
        return port
    }

    /// Polls `url` until it answers 200 (at most 30 s).
    static func waitUntilHealthy(_ url: String) async throws {
        let http = CurlClient()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if (try? await http.get(url, timeout: .seconds(1)))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("\(url) did not become healthy within 30 s")
    }

    /// The `q`-quantile (0…1) of `values`, by nearest rank.
    static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func format(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: "%.2f", value)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
