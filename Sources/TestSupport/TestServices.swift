public import Foundation
import BlockingIO
public import Postgres
public import Logging

/// Where the local services started by `make test` (deploy/local/services.sh) are.
public enum TestServices {
    /// The repository's root folder.
    public static let repoRoot: String = {
        if let root = ProcessInfo.processInfo.environment["AISHA_REPO_ROOT"] { return root }
        // Sources/TestSupport/TestServices.swift → three levels up.
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }()

    /// The admin URL of the local test cluster.
    /// - Throws: a message saying how to start the services when they are not configured.
    public static func databaseURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["AISHA_TEST_DATABASE_URL"], !url.isEmpty else {
            throw TestServicesError("AISHA_TEST_DATABASE_URL is not set: run `make test`, or `deploy/local/services.sh start && source .local/env`")
        }
        return url
    }

    /// A logger that prints only warnings and errors.
    public static let logger: Logger = {
        var logger = Logger(label: "aisha.tests")
        logger.logLevel = .warning
        return logger
    }()

    /// Runs a deploy/local script and returns its standard output.
    @discardableResult
    public static func runScript(_ name: String, _ arguments: [String]) async throws -> String {
        try await run(repoRoot + "/deploy/local/" + name, arguments)
    }

    /// Runs an executable to completion and returns its standard output, trimmed. The wait
    /// happens on a thread of its own: a test must not block the cooperative pool either.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> String {
        try await ChildProcess.run(executable, arguments, environment: environment).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts an executable in the background (output appended to `logPath`) and returns its pid.
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String], logPath: String) throws -> pid_t {
        try ChildProcess.spawn(executable, arguments, environment: environment, logPath: logPath)
    }

    /// Waits for a spawned process (on its own thread); returns its exit code, or 128 + the signal.
    public static func waitForExit(_ pid: pid_t) async -> Int32 { await ChildProcess.exitStatus(of: pid) }

    /// The folder holding the built products (`.build/debug`), next to the test bundle.
    public static var productsDirectory: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    }
}

/// A test-environment problem, with what to do about it.
public struct TestServicesError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A database of its own for one test, created from the local cluster and dropped afterwards.
public struct TestDatabase: Sendable {
    /// The database's URL.
    public let url: String
    /// Its name.
    public let name: String

    /// Creates a fresh, empty database, runs `body` with it, and drops it.
    public static func withFresh<T>(_ body: (TestDatabase) async throws -> T) async throws -> T {
        let admin = try TestServices.databaseURL()
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        // No statement timeout: CREATE and DROP DATABASE wait for checkpoints, which on a busy
        // disk take longer than any product deadline; they are the harness, not the code tested.
        let client = PostgresClient(
            configuration: try .init(connectionString: admin, maxConnections: 1, connectTimeout: .seconds(30), acquireTimeout: .seconds(120), statementTimeout: nil),
            logger: TestServices.logger)
        defer { client.shutdown() }
        try await client.query("CREATE DATABASE \(identifier: name)")
        var components = URLComponents(string: admin)!
        components.path = "/" + name
        let database = TestDatabase(url: components.string!, name: name)
        let result: T
        do {
            result = try await body(database)
        } catch {
            await drop(name, with: client)
            throw error
        }
        await drop(name, with: client)
        return result
    }

    /// Drops a test's database. A failure here is a cleanup problem, not the test's verdict: it
    /// is logged, and the cluster is throwaway (deploy/local/postgres.sh).
    private static func drop(_ name: String, with client: PostgresClient) async {
        do {
            try await client.query("DROP DATABASE \(identifier: name) WITH (FORCE)")
        } catch {
            TestServices.logger.warning("could not drop test database \(name): \(error)")
        }
    }

    /// Creates a fresh database with the project's migrations applied, runs `body`, drops it.
    public static func withMigrated<T>(_ body: (TestDatabase) async throws -> T) async throws -> T {
        try await withFresh { database in
            let client = try database.client(maxConnections: 1)
            defer { client.shutdown() }
            try await Migrator(client: client, logger: TestServices.logger)
                .migrate(try Migration.load(directory: TestServices.repoRoot + "/Migrations"))
            return try await body(database)
        }
    }

    /// A client for this database. Tests wait up to a minute for a free connection: concurrency
    /// tests queue many callers on few connections, and a loaded machine is slow to serve them
    /// (the product's own deadlines are tested where they matter).
    public func client(maxConnections: Int = 4) throws -> PostgresClient {
        PostgresClient(configuration: try .init(connectionString: url, maxConnections: maxConnections, acquireTimeout: .seconds(60)), logger: TestServices.logger)
    }
}
