import Foundation
import JobQueue
import Logging
import Postgres
import ServiceLifecycle
import UnixSignals

/// `aisha-probe`: a worker process with synthetic job kinds, for the queue's crash and shutdown
/// tests, the reliability suite and benchmarks. Never deployed.
///
/// - `probe.noop` does nothing.
/// - `probe.record` sleeps `ms` milliseconds, then records its effect once per job
///   (`probe_effects`, keyed by job id, counting attempts that reached it).
///
/// Settings: `AISHA_DATABASE_URL`, `PROBE_CONCURRENCY`, `PROBE_LEASE_MS`, `PROBE_GRACE_MS`.
@main
struct AishaProbe {
    struct RecordPayload: Codable { var ms: Int }

    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        var logger = Logger(label: "aisha.probe")
        logger.logLevel = Logger.Level(rawValue: environment["AISHA_LOG_LEVEL"] ?? "warning") ?? .warning
        guard let url = environment["AISHA_DATABASE_URL"] else { fatalError("AISHA_DATABASE_URL is required") }
        let database = try PostgresClient(url: url, maxConnections: 8, logger: logger)
        try await database.query("""
            CREATE TABLE IF NOT EXISTS probe_effects (
                job_id bigint PRIMARY KEY, attempts int NOT NULL DEFAULT 1, worker text NOT NULL, at timestamptz NOT NULL DEFAULT now())
            """)
        var configuration = JobWorker.Configuration()
        configuration.concurrency = Int(environment["PROBE_CONCURRENCY"] ?? "") ?? configuration.concurrency
        configuration.lease = .milliseconds(Int(environment["PROBE_LEASE_MS"] ?? "") ?? 30_000)
        configuration.shutdownGrace = .milliseconds(Int(environment["PROBE_GRACE_MS"] ?? "") ?? 10_000)
        configuration.rescueInterval = .milliseconds(200)
        let queue = JobQueue(database: database)
        let workerID = "probe-\(getpid())"
        let handlers = [
            JobHandler(kind: "probe.noop") { _, _ in },
            JobHandler(kind: "probe.record") { job, _ in
                let payload = try job.decode(RecordPayload.self)
                try await Task.sleep(for: .milliseconds(payload.ms))
                try await database.query("""
                    INSERT INTO probe_effects (job_id, worker) VALUES (\(job.id), \(workerID))
                    ON CONFLICT (job_id) DO UPDATE SET attempts = probe_effects.attempts + 1
                    """)
            },
        ]
        let worker = JobWorker(queue: queue, handlers: handlers, configuration: configuration, logger: logger, id: workerID)
        FileHandle.standardOutput.write(Data("probe ready \(workerID)\n".utf8))
        try await ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        database.shutdown()
    }
}
