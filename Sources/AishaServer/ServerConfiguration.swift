import Foundation

/// The server's settings, read from the environment (see docs/configuration.md).
struct ServerConfiguration: Sendable {
    var host: String
    var port: Int
    var databaseURL: String
    var migrationsDirectory: String
    var databasePoolSize: Int

    /// Reads `AISHA_*` variables; `databaseURL` is required.
    init(environment: [String: String]) throws {
        guard let url = environment["AISHA_DATABASE_URL"], !url.isEmpty else {
            throw ConfigurationError("AISHA_DATABASE_URL is required (postgres://user:pass@host:port/db)")
        }
        host = environment["AISHA_HTTP_HOST"] ?? "127.0.0.1"
        guard let port = Int(environment["AISHA_HTTP_PORT"] ?? "8080"), (0...65_535).contains(port) else {
            throw ConfigurationError("AISHA_HTTP_PORT must be a port number")
        }
        self.port = port
        databaseURL = url
        migrationsDirectory = environment["AISHA_MIGRATIONS_DIR"] ?? "Migrations"
        guard let size = Int(environment["AISHA_DB_POOL_SIZE"] ?? "10"), size > 0 else {
            throw ConfigurationError("AISHA_DB_POOL_SIZE must be a positive number")
        }
        databasePoolSize = size
    }
}

/// A configuration mistake, said plainly.
struct ConfigurationError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
