import Foundation
import Hummingbird
import Logging

/// `aisha-server`: reads the environment and runs the HTTP application until SIGTERM/SIGINT.
@main
struct AishaServer {
    static func main() async throws {
        var logger = Logger(label: "aisha.server")
        logger.logLevel = Logger.Level(rawValue: ProcessInfo.processInfo.environment["AISHA_LOG_LEVEL"] ?? "info") ?? .info
        let configuration = try ServerConfiguration(environment: ProcessInfo.processInfo.environment)
        let app = try buildApplication(configuration: configuration, logger: logger)
        try await app.runService()
    }
}
