import BlockingIO
import Foundation
import Logging
import Postgres
import Sandbox

/// The system under test of `aisha reliability`: a scratch database, the in-process Sandbox
/// (Telegram and FAL), a real `aisha-server` and real `aisha-worker` processes that a case may
/// kill, restart or starve. Workers run with short leases and fast reconciliation so that what
/// production does in minutes happens here in seconds.
final class ReliabilityStack: @unchecked Sendable {
    let sandbox: Sandbox
    let endpoints: Sandbox.Endpoints
    let databaseURL: String
    let database: PostgresClient
    let serverBase: String
    let secret = "reliability_secret"
    private let environment: [String: String]
    private let serverPath: String, workerPath: String
    private let logDirectory: String
    private let lock = NSLock()
    private var server: pid_t = 0
    private var workerPIDs: [pid_t] = []
    /// The workers alive right now.
    var workers: [pid_t] { lock.withLock { workerPIDs } }
    private var spawned = 0

    /// Worker settings a case may override (e.g. a training timeout).
    static let workerDefaults: [String: String] = [
        "AISHA_WORKER_LEASE_SECONDS": "5", "AISHA_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
        "AISHA_RECONCILE_EVERY_SECONDS": "1", "AISHA_RECONCILE_TRAINING_AFTER_SECONDS": "6", "AISHA_TRAINING_TIMEOUT_SECONDS": "600",
        "AISHA_RECONCILE_GENERATION_AFTER_SECONDS": "6", "AISHA_GENERATION_TIMEOUT_SECONDS": "600",
    ]

    private init(sandbox: Sandbox, endpoints: Sandbox.Endpoints, databaseURL: String, migrations: String, serverPort: Int, overrides: [String: String], logDirectory: String) throws {
        self.sandbox = sandbox
        self.endpoints = endpoints
        self.databaseURL = databaseURL
        self.database = try PostgresClient(url: databaseURL, maxConnections: 4, logger: ReliabilityStack.logger)
        self.serverBase = "http://127.0.0.1:\(serverPort)"
        self.logDirectory = logDirectory
        serverPath = try BenchSupport.sibling("aisha-server")
        workerPath = try BenchSupport.sibling("aisha-worker")
        let suffix = UUID().uuidString.prefix(8).lowercased()
        environment = ProcessInfo.processInfo.environment.merging(Self.workerDefaults) { $1 }.merging([
            "AISHA_DATABASE_URL": databaseURL, "AISHA_MIGRATIONS_DIR": migrations, "AISHA_LOG_LEVEL": "warning",
            "AISHA_HTTP_PORT": "\(serverPort)", "AISHA_TELEGRAM_WEBHOOK_SECRET": secret,
            "AISHA_TELEGRAM_BOT_TOKEN": sandbox.telegram.configuration.token, "AISHA_TELEGRAM_API_URL": endpoints.telegramAPI,
            "AISHA_FAL_JWKS_URL": endpoints.falJWKS, "AISHA_FAL_WEBHOOK_URL": "http://127.0.0.1:\(serverPort)/fal/webhook",
            "FAL_KEY": sandbox.fal.configuration.key, "FAL_QUEUE_URL": endpoints.falQueue, "FAL_REST_URL": endpoints.falREST,
            "AISHA_PHOTO_BUCKET": "rel-avatars-\(suffix)", "AISHA_GENERATED_BUCKET": "rel-generated-\(suffix)",
        ]) { $1 }.merging(overrides) { $1 }
    }

    static let logger: Logger = {
        var logger = Logger(label: "aisha.reliability")
        logger.logLevel = .critical
        return logger
    }()

    /// Runs `body` with a fresh database (next to `adminURL`'s), the Sandbox, a server and
    /// `workers` workers; stops and removes everything afterwards. Logs go to `logDirectory`.
    static func run<T: Sendable>(
        adminURL: String, migrations: String, workers: Int, overrides: [String: String] = [:], sandbox: Sandbox, logDirectory: String,
        _ body: @Sendable (ReliabilityStack) async throws -> T
    ) async throws -> T {
        try await BenchSupport.withScratchDatabase(adminURL: adminURL, migrationsDirectory: migrations, logger: logger) { url in
            try await sandbox.run { endpoints in
                let stack = try ReliabilityStack(sandbox: sandbox, endpoints: endpoints, databaseURL: url, migrations: migrations,
                                                 serverPort: try BenchSupport.freePort(), overrides: overrides, logDirectory: logDirectory)
                defer { stack.stopAll() }
                try stack.startServer()
                try await BenchSupport.waitUntilHealthy(stack.serverBase + "/healthz")
                sandbox.telegram.setWebhook(.init(url: stack.serverBase + "/telegram/webhook", secretToken: stack.secret))
                for _ in 0..<workers { try stack.startWorker() }
                return try await body(stack)
            }
        }
    }

    func startServer() throws {
        let pid = try ChildProcess.spawn(serverPath, [], environment: environment, logPath: logDirectory + "/server.log")
        lock.withLock { server = pid }
    }

    /// Starts one more worker; returns its pid.
    @discardableResult
    func startWorker() throws -> pid_t {
        let index = lock.withLock { spawned += 1; return spawned }
        let pid = try ChildProcess.spawn(workerPath, [], environment: environment, logPath: logDirectory + "/worker-\(index).log")
        lock.withLock { workerPIDs.append(pid) }
        return pid
    }

    /// SIGKILLs worker `pid` and reaps it.
    func kill(worker pid: pid_t) async {
        Foundation.kill(pid, SIGKILL)
        _ = await ChildProcess.exitStatus(of: pid)
        lock.withLock { workerPIDs.removeAll { $0 == pid } }
    }

    var serverPID: pid_t { lock.withLock { server } }

    /// Whether the server process is still alive (it must never crash).
    var serverAlive: Bool { Foundation.kill(serverPID, 0) == 0 && waitpid(serverPID, nil, WNOHANG) == 0 }

    func stopAll() {
        let pids = lock.withLock { [server] + workerPIDs }
        for pid in pids where pid > 0 { Foundation.kill(pid, SIGTERM) }
        for pid in pids where pid > 0 { _ = ChildProcess.waitForExit(pid) }
        lock.withLock { workerPIDs = []; server = 0 }
        database.shutdown()
    }

    // MARK: - What the database says

    func count(_ query: PostgresQuery) async throws -> Int { try await database.query(query)[0].decode(Int.self, at: 0) }

    /// Jobs not finished yet (periodic maintenance excluded), dead jobs, and jobs that needed more than one attempt.
    func jobFigures(excluding kinds: [String] = []) async throws -> (unfinished: Int, dead: Int, retried: Int, total: Int) {
        let excluded = ["jobs.prune", "fal.reconcile"] + kinds
        let row = try await database.query("""
            SELECT count(*) FILTER (WHERE state IN ('available', 'running') AND kind <> ALL(\(excluded))),
                   count(*) FILTER (WHERE state = 'dead'), count(*) FILTER (WHERE attempt > 1), count(*)
            FROM jobs
            """)[0]
        return (try row.decode(Int.self, at: 0), try row.decode(Int.self, at: 1), try row.decode(Int.self, at: 2), try row.decode(Int.self, at: 3))
    }

    /// Waits until no job is waiting or running (besides periodic ones), up to `timeout`.
    func waitForQuiet(timeout: Duration, excluding kinds: [String] = []) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await jobFigures(excluding: kinds).unfinished == 0 { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    /// Dead jobs with their kinds and last errors, for the report.
    func deadJobs() async throws -> [String] {
        try await database.query("SELECT kind || ': ' || coalesce(errors->-1->>'error', '?') FROM jobs WHERE state = 'dead' LIMIT 10").map { try $0.decode(String.self, at: 0) }
    }

    /// What is left unfinished and which avatars are not done, for a failed case's report.
    func diagnosis() async throws -> [String] {
        let jobs = try await database.query("""
            SELECT kind || ' #' || id || ' ' || state || ' attempt ' || attempt || ' run_at +' || round(extract(epoch FROM run_at - now()))::text || 's serial ' ||
                   coalesce(serial_key, '-') || ' last error: ' || coalesce(left(errors->-1->>'error', 200), '-')
            FROM jobs WHERE state IN ('available', 'running', 'dead') AND kind NOT IN ('jobs.prune', 'fal.reconcile') ORDER BY id LIMIT 15
            """).map { "job " + (try $0.decode(String.self, at: 0)) }
        let avatars = try await database.query("""
            SELECT user_id || ' ' || status || ' photos ' || photo_count || coalesce(' error ' || error, '') FROM avatars WHERE status <> 'completed' LIMIT 10
            """).map { "avatar of " + (try $0.decode(String.self, at: 0)) }
        return jobs + avatars
    }

    /// Every user whose balance is not the sum of their ledger, or negative.
    func ledgerMismatches() async throws -> Int {
        try await count("""
            SELECT count(*) FROM users u
            WHERE u.balance < 0 OR u.balance <> coalesce((SELECT sum(amount) FROM credit_ledger l WHERE l.user_id = u.id), 0)
            """)
    }
}
