import Logging
import HTTPServer
import Postgres
public import WebhookServer

/// `aisha-server`'s application, in-process on a free loopback port, for tests that need the
/// real webhooks (FAL results, Telegram updates) without a separate process.
public enum InProcessServer {
    /// Serves against `databaseURL` while `body` runs with the base URL and the application.
    public static func run<T: Sendable>(
        databaseURL: String, telegramSecret: String, jwksURL: String = "http://127.0.0.1:9/none", falUserID: String? = nil,
        _ body: @Sendable (_ base: String, _ app: WebhookApplication) async throws -> T
    ) async throws -> T {
        let configuration = ServerConfiguration(
            host: "127.0.0.1", port: 0, databaseURL: databaseURL, migrationsDirectory: TestServices.repoRoot + "/Migrations",
            telegramWebhookSecret: telegramSecret, falJWKSURL: jwksURL, falUserID: falUserID, falJWKSRefetchSeconds: 0
        )
        var logger = Logger(label: "test.server")
        logger.logLevel = .critical
        let database = PostgresClient(configuration: try WebhookApplication.databaseConfiguration(configuration), logger: logger)
        defer { database.shutdown() }
        let app = try WebhookApplication(configuration: configuration, database: database, logger: logger)
        let server = app.server()
        let port = try server.start()
        do {
            let result = try await body("http://127.0.0.1:\(port)", app)
            await server.shutdown()
            return result
        } catch {
            await server.shutdown()
            throw error
        }
    }
}
