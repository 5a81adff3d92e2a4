import Foundation

/// The server's settings, read from the environment (see docs/configuration.md).
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// HTTP event-loop threads (one serves a small machine; see docs/configuration.md).
    public var httpThreads: Int
    public var databaseURL: String
    public var migrationsDirectory: String
    public var databasePoolSize: Int
    /// `X-Telegram-Bot-Api-Secret-Token` every Telegram webhook must carry (setWebhook's secret_token).
    public var telegramWebhookSecret: String
    /// Where FAL's webhook signing keys are published.
    public var falJWKSURL: String
    /// When set, FAL webhooks must name this fal user (`X-Fal-Webhook-User-Id`).
    public var falUserID: String?
    /// After a signature fails with cached keys, the JWKS is refetched only if the cached set
    /// is at least this old (so forgeries cannot make us hammer FAL; a rotated key is then
    /// accepted at FAL's next retry at the latest).
    public var falJWKSRefetchSeconds: Double
    /// Threads (each with its own database connection) writing group commits of webhooks.
    public var ingestWriters: Int
    /// Largest accepted webhook bodies.
    public var telegramBodyLimit: Int
    public var falBodyLimit: Int

    public init(
        host: String = "127.0.0.1", port: Int = 8080, httpThreads: Int = 1, databaseURL: String, migrationsDirectory: String = "Migrations", databasePoolSize: Int = 10,
        telegramWebhookSecret: String, falJWKSURL: String = "https://rest.fal.ai/.well-known/jwks.json", falUserID: String? = nil,
        falJWKSRefetchSeconds: Double = 60, ingestWriters: Int = 1, telegramBodyLimit: Int = 1 << 20, falBodyLimit: Int = 1 << 20
    ) {
        self.ingestWriters = ingestWriters
        self.falJWKSRefetchSeconds = falJWKSRefetchSeconds
        self.host = host
        self.port = port
        self.httpThreads = httpThreads
        self.databaseURL = databaseURL
        self.migrationsDirectory = migrationsDirectory
        self.databasePoolSize = databasePoolSize
        self.telegramWebhookSecret = telegramWebhookSecret
        self.falJWKSURL = falJWKSURL
        self.falUserID = falUserID
        self.telegramBodyLimit = telegramBodyLimit
        self.falBodyLimit = falBodyLimit
    }

    /// Reads `AISHA_*` variables; the database URL and the Telegram webhook secret are required.
    public init(environment: [String: String]) throws {
        guard let url = environment["AISHA_DATABASE_URL"], !url.isEmpty else {
            throw ConfigurationError("AISHA_DATABASE_URL is required (postgres://user:pass@host:port/db)")
        }
        guard let secret = environment["AISHA_TELEGRAM_WEBHOOK_SECRET"], Self.isValidSecret(secret) else {
            throw ConfigurationError("AISHA_TELEGRAM_WEBHOOK_SECRET is required: 1–256 characters of A-Z a-z 0-9 _ - (Telegram's rule); generate one with `openssl rand -hex 32`")
        }
        func positive(_ name: String, _ fallback: Int) throws -> Int {
            guard let value = Int(environment[name] ?? String(fallback)), value > 0 else { throw ConfigurationError("\(name) must be a positive number") }
            return value
        }
        guard let port = Int(environment["AISHA_HTTP_PORT"] ?? "8080"), (0...65_535).contains(port) else {
            throw ConfigurationError("AISHA_HTTP_PORT must be a port number")
        }
        self.init(
            host: environment["AISHA_HTTP_HOST"] ?? "127.0.0.1", port: port, httpThreads: try positive("AISHA_HTTP_THREADS", 1), databaseURL: url,
            migrationsDirectory: environment["AISHA_MIGRATIONS_DIR"] ?? "Migrations", databasePoolSize: try positive("AISHA_DB_POOL_SIZE", 10),
            telegramWebhookSecret: secret, falJWKSURL: environment["AISHA_FAL_JWKS_URL"] ?? "https://rest.fal.ai/.well-known/jwks.json",
            falUserID: environment["AISHA_FAL_USER_ID"].flatMap { $0.isEmpty ? nil : $0 },
            falJWKSRefetchSeconds: Double(environment["AISHA_FAL_JWKS_REFETCH_SECONDS"] ?? "60") ?? 60, ingestWriters: try positive("AISHA_INGEST_WRITERS", 1),
            telegramBodyLimit: try positive("AISHA_TELEGRAM_BODY_LIMIT", 1 << 20), falBodyLimit: try positive("AISHA_FAL_BODY_LIMIT", 1 << 20)
        )
    }

    /// Telegram's rule for `secret_token`: 1–256 characters `A-Z`, `a-z`, `0-9`, `_`, `-`.
    public static func isValidSecret(_ secret: String) -> Bool {
        (1...256).contains(secret.count) && secret.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
    }
}

/// A configuration mistake, said plainly.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
