public import Foundation
public import Logging
import Signing

/// One forward-only schema change: `Migrations/0001_name.sql`.
public struct Migration: Sendable, Equatable {
    /// The number in the file name; migrations apply in this order.
    public var version: Int
    /// The rest of the file name, without `.sql`.
    public var name: String
    /// The file name, e.g. `0001_jobs.sql`.
    public var fileName: String
    /// The file's SQL.
    public var sql: String
    /// Lowercase hex SHA-256 of the file's bytes; an applied file may never change.
    public var checksum: String

    /// A migration from its file name and contents.
    /// - Throws: `PostgresError.Code.migration` if the name is not `NNNN_name.sql`.
    public init(fileName: String, contents: Data) throws {
        let stem = fileName.hasSuffix(".sql") ? String(fileName.dropLast(4)) : ""
        let parts = stem.split(separator: "_", maxSplits: 1)
        guard parts.count == 2, parts[0].count >= 4, let version = Int(parts[0]), version > 0,
              parts[1].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" })
        else {
            throw PostgresError(.migration, serverMessage: "\(fileName): migration files are named NNNN_name.sql")
        }
        self.version = version
        self.name = String(parts[1])
        self.fileName = fileName
        self.sql = String(decoding: contents, as: UTF8.self)
        self.checksum = SHA256.hexDigest(contents)
    }

    /// The migrations in `directory`, ordered by version.
    /// - Throws: `PostgresError.Code.migration` for a bad name or two files with one version.
    public static func load(directory: String) throws -> [Migration] {
        let url = URL(fileURLWithPath: directory)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }
        let migrations = try names.map { try Migration(fileName: $0, contents: Data(contentsOf: url.appendingPathComponent($0))) }
            .sorted { $0.version < $1.version }
        for (a, b) in zip(migrations, migrations.dropFirst()) where a.version == b.version {
            throw PostgresError(.migration, serverMessage: "two migrations share version \(a.version): \(a.name), \(b.name)")
        }
        return migrations
    }
}

/// Applies migrations in order, each in its own transaction, under an advisory lock so that any
/// number of migrators may start at once; records each with its checksum.
public struct Migrator: Sendable {
    /// The advisory lock key: "aisha-mi" as a big-endian Int64, shared by every migrator.
    static let lockKey: Int64 = 0x6169_7368_612d_6d69

    let client: PostgresClient
    let logger: Logger

    /// A migrator on `client`.
    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// An applied migration as the database records it.
    public struct AppliedMigration: Sendable, Equatable {
        /// The migration's version.
        public var version: Int
        /// Its name.
        public var name: String
        /// The checksum recorded when it was applied.
        public var checksum: String

        /// A history record.
        public init(version: Int, name: String, checksum: String) {
            self.version = version
            self.name = name
            self.checksum = checksum
        }
    }

    /// Applies every pending migration and returns those it applied (empty when up to date).
    /// - Throws: `PostgresError.Code.migration` when an applied file was edited or removed, or a
    ///   new file sorts before an applied one; any statement error rolls that migration back.
    @discardableResult
    public func migrate(_ migrations: [Migration]) async throws -> [Migration] {
        try await client.withConnection { connection in
            // Session-level lock: held across the per-migration transactions, released on return
            // or when the connection dies.
            try await connection.query("SELECT pg_advisory_lock(\(Migrator.lockKey))")
            do {
                let applied = try await apply(migrations, on: connection)
                try await connection.query("SELECT pg_advisory_unlock(\(Migrator.lockKey))")
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Migrator.lockKey))")
                throw error
            }
        }
    }

    /// The migrations not yet applied, after checking the recorded history against the files.
    /// Read-only (readiness probes call it): a database never migrated has everything pending.
    public func pending(_ migrations: [Migration]) async throws -> [Migration] {
        try await client.withConnection { connection in
            let exists = try await connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL")[0].decode(Bool.self, at: 0)
            return try Migrator.plan(migrations, applied: exists ? try await history(on: connection) : [])
        }
    }

    /// What remains to apply, given the files and the recorded history (pure).
    /// - Throws: `PostgresError.Code.migration` for an edited, missing or out-of-order file.
    public static func plan(_ migrations: [Migration], applied: [AppliedMigration]) throws -> [Migration] {
        let files = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for record in applied {
            guard let file = files[record.version] else {
                throw PostgresError(.migration, serverMessage: "migration \(record.version) (\(record.name)) is applied but its file is missing; is this an older build?")
            }
            guard file.checksum == record.checksum else {
                throw PostgresError(.migration, serverMessage: "migration \(record.version) (\(record.name)) was edited after it was applied; add a new migration instead")
            }
        }
        let appliedVersions = Set(applied.map(\.version))
        let newest = applied.map(\.version).max() ?? 0
        let pending = migrations.filter { !appliedVersions.contains($0.version) }
        if let stray = pending.first(where: { $0.version < newest }) {
            throw PostgresError(.migration, serverMessage: "migration \(stray.version) (\(stray.name)) sorts before the applied migration \(newest); migrations are forward-only")
        }
        return pending
    }

    private func createHistoryTable(on connection: PostgresConnection) async throws {
        try await connection.executeScript("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now(),
                duration_ms integer NOT NULL
            )
            """)
    }

    private func history(on connection: PostgresConnection) async throws -> [AppliedMigration] {
        try await connection.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version").map { row in
            let (version, name, checksum) = try row.decode(Int.self, String.self, String.self)
            return AppliedMigration(version: version, name: name, checksum: checksum)
        }
    }

    private func apply(_ migrations: [Migration], on connection: PostgresConnection) async throws -> [Migration] {
        try await createHistoryTable(on: connection)
        let pending = try Migrator.plan(migrations, applied: try await history(on: connection))
        for migration in pending {
            let started = ContinuousClock.now
            try await connection.withTransaction { transaction in
                do {
                    try await transaction.executeScript(migration.sql)
                } catch var error as PostgresError {
                    error.context = "migration \(migration.fileName)"
                    throw error
                }
                let elapsed = ContinuousClock.now - started
                let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
                try await transaction.query("""
                    INSERT INTO schema_migrations (version, name, checksum, duration_ms)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum), \(milliseconds))
                    """)
            }
            logger.info("migration applied", metadata: ["db.migration": "\(migration.fileName)"])
        }
        return pending
    }
}
