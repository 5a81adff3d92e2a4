import Foundation
import Hummingbird
import Logging
import Postgres

/// Builds the HTTP application: today the health endpoints; the webhooks arrive with issue 4.
func buildApplication(configuration: ServerConfiguration, logger: Logger) throws -> some ApplicationProtocol {
    let postgresConfiguration = try PostgresClient.Configuration(
        connectionString: configuration.databaseURL, maxConnections: configuration.databasePoolSize,
        connectTimeout: .seconds(2), acquireTimeout: .seconds(2)
    )
    let database = PostgresClient(configuration: postgresConfiguration, logger: logger)
    let migrations = try Migration.load(directory: configuration.migrationsDirectory)

    let router = Router()
    // Liveness: the process answers.
    router.get("healthz") { _, _ in "ok\n" }
    // Readiness: the database answers and every migration this build knows is applied.
    router.get("readyz") { _, _ -> Response in
        do {
            let pending = try await Migrator(client: database, logger: logger).pending(migrations)
            guard pending.isEmpty else {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "pending migrations: \(pending.count)\n")))
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
        } catch {
            logger.warning("readiness check failed", metadata: ["db.error": "\(error)"])
            return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "database unavailable\n")))
        }
    }
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "aisha-server"),
        logger: logger
    )
}
