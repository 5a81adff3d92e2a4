import ArgumentParser
import Foundation
import Logging
import Postgres

/// `aisha migrate`: applies pending migrations (safe to run from several hosts at once).
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending database migrations in order, each in a transaction, under an advisory lock."
    )

    @Option(help: "PostgreSQL URL or conninfo (default: $AISHA_DATABASE_URL).")
    var databaseURL: String?

    @Option(help: "Folder of NNNN_name.sql files (default: $AISHA_MIGRATIONS_DIR, else ./Migrations).")
    var migrationsDir: String?

    @Flag(help: "Only list the pending migrations.")
    var status = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let url = databaseURL ?? environment["AISHA_DATABASE_URL"] else {
            throw ValidationError("no database: pass --database-url or set AISHA_DATABASE_URL")
        }
        let directory = migrationsDir ?? environment["AISHA_MIGRATIONS_DIR"] ?? "Migrations"
        let logger = Logger(label: "aisha.migrate")
        let client = try PostgresClient(url: url, maxConnections: 1, logger: logger)
        defer { client.shutdown() }
        let migrations = try Migration.load(directory: directory)
        let migrator = Migrator(client: client, logger: logger)
        if status {
            let pending = try await migrator.pending(migrations)
            print(pending.isEmpty ? "up to date (\(migrations.count) migrations)" : pending.map { "pending \($0.fileName)" }.joined(separator: "\n"))
            return
        }
        let applied = try await migrator.migrate(migrations)
        for migration in applied { print("applied \(migration.fileName)") }
        print(applied.isEmpty ? "up to date (\(migrations.count) migrations)" : "applied \(applied.count) of \(migrations.count) migrations")
    }
}
