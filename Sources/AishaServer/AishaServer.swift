import Foundation
import HTTPServer
import Logging
import Postgres
import WebhookServer

/// `aisha-server`: reads the environment and runs the webhook application until SIGTERM/SIGINT
/// (then it stops accepting, finishes the requests in flight, and exits).
@main
struct AishaServer {
    static func main() async throws {
        var logger = Logger(label: "aisha.server")
        logger.logLevel = Logger.Level(rawValue: ProcessInfo.processInfo.environment["AISHA_LOG_LEVEL"] ?? "info") ?? .info
        let configuration: ServerConfiguration
        do {
            configuration = try ServerConfiguration(environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("aisha-server: \(error)\n".utf8))
            exit(78)  // EX_CONFIG: systemd does not restart-loop on a configuration mistake
        }
        let database = PostgresClient(configuration: try WebhookApplication.databaseConfiguration(configuration), logger: logger)
        defer { database.shutdown() }
        let app = try WebhookApplication(configuration: configuration, database: database, logger: logger)
        logger.info("aisha-server starting", metadata: ["address": "\(configuration.host):\(configuration.port)", "database": "\(database.configuration.redactedDescription)"])
        try await app.server().run()
    }
}
