import Foundation
import Logging
import Postgres
import ServiceLifecycle
import UnixSignals

/// `aisha-worker`: will claim and run jobs (issue 3). Today it checks the database and waits for
/// SIGTERM, so deployments and the demo can already manage it like the real thing.
@main
struct AishaWorker {
    static func main() async throws {
        var logger = Logger(label: "aisha.worker")
        logger.logLevel = Logger.Level(rawValue: ProcessInfo.processInfo.environment["AISHA_LOG_LEVEL"] ?? "info") ?? .info
        guard let url = ProcessInfo.processInfo.environment["AISHA_DATABASE_URL"], !url.isEmpty else {
            logger.critical("AISHA_DATABASE_URL is required")
            exit(2)
        }
        let database = try PostgresClient(url: url, maxConnections: 2, logger: logger)
        let group = ServiceGroup(
            services: [WorkerService(database: database, logger: logger)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await group.run()
    }
}

/// Checks the database, then idles until a graceful shutdown.
struct WorkerService: Service {
    let database: PostgresClient
    let logger: Logger

    func run() async throws {
        try await database.query("SELECT 1")
        logger.info("worker ready; no job kinds are registered yet")
        try? await gracefulShutdown()
        database.shutdown()
        logger.info("worker stopped")
    }
}
