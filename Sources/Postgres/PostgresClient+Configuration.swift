internal import CLibpq
import Foundation

extension PostgresClient {
    /// How to reach the database and how to size the pool.
    public struct Configuration: Sendable {
        /// A `postgres://user:pass@host:port/db?sslmode=…` URL or a `key=value` conninfo string.
        public var connectionString: String
        /// The most connections the pool opens.
        public var maxConnections: Int
        /// How long opening one connection may take.
        public var connectTimeout: Duration
        /// How long a caller waits for a free connection before `poolTimeout`.
        public var acquireTimeout: Duration
        /// The server-side `statement_timeout` for every statement (nil: the server's default).
        public var statementTimeout: Duration?
        /// `application_name`, visible in `pg_stat_activity`.
        public var applicationName: String

        /// Validates `connectionString` with libpq's own parser.
        /// - Throws: `PostgresError.Code.invalidConfiguration` with libpq's reason.
        public init(
            connectionString: String, maxConnections: Int = 10, connectTimeout: Duration = .seconds(5),
            acquireTimeout: Duration = .seconds(10), statementTimeout: Duration? = .seconds(30),
            applicationName: String = "aisha"
        ) throws {
            var errorMessage: UnsafeMutablePointer<CChar>?
            guard let options = PQconninfoParse(connectionString, &errorMessage) else {
                let reason = errorMessage.map { String(cString: $0) } ?? "unparsable connection string"
                PQfreemem(errorMessage)
                throw PostgresError(.invalidConfiguration, serverMessage: reason.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            PQconninfoFree(options)
            precondition(maxConnections > 0, "maxConnections must be positive")
            self.connectionString = connectionString
            self.maxConnections = maxConnections
            self.connectTimeout = connectTimeout
            self.acquireTimeout = acquireTimeout
            self.statementTimeout = statementTimeout
            self.applicationName = applicationName
        }

        /// `user@host:port/database`, with no password: safe for logs.
        public var redactedDescription: String {
            var fields: [String: String] = [:]
            if let options = PQconninfoParse(connectionString, nil) {
                var cursor = options
                while let keyword = cursor.pointee.keyword {
                    if let value = cursor.pointee.val { fields[String(cString: keyword)] = String(cString: value) }
                    cursor += 1
                }
                PQconninfoFree(options)
            }
            let user = fields["user"] ?? "(default user)"
            let host = fields["host"] ?? fields["hostaddr"] ?? "(default host)"
            return "\(user)@\(host):\(fields["port"] ?? "5432")/\(fields["dbname"] ?? "(default db)")"
        }
    }
}
