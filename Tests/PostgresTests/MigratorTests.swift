import Foundation
import Postgres
import TestSupport
import Testing

@Suite struct MigratorTests {
    /// A temporary folder of migration files, removed afterwards.
    func withMigrations<T>(_ files: [String: String], _ body: (String) async throws -> T) async throws -> T {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-" + UUID().uuidString).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (name, sql) in files { try sql.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8) }
        return try await body(folder)
    }

    static let files = [
        "0001_users.sql": "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);",
        "0002_avatars.sql": """
            CREATE TABLE avatars (id uuid PRIMARY KEY, user_id bigint NOT NULL REFERENCES users);
            -- a function body with semicolons inside still runs as one file
            CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.id := NEW.id; RETURN NEW; END; $$;
            """,
        "0003_index.sql": "CREATE INDEX avatars_user_idx ON avatars (user_id);",
    ]

    func history(_ client: PostgresClient) async throws -> [String] {
        try await client.query("SELECT version, name FROM schema_migrations ORDER BY version").map {
            let (version, name) = try $0.decode(Int.self, String.self)
            return "\(version)_\(name)"
        }
    }

    @Test func appliesInOrderAndTwiceIsANoOp() async throws {
        try await withMigrations(Self.files) { folder in
            try await TestDatabase.withFresh { database in
                let client = try database.client()
                defer { client.shutdown() }
                let migrator = Migrator(client: client, logger: TestServices.logger)
                let migrations = try Migration.load(directory: folder)
                #expect(try await migrator.migrate(migrations).map(\.version) == [1, 2, 3])
                #expect(try await migrator.migrate(migrations).isEmpty)
                #expect(try await migrator.pending(migrations).isEmpty)
                #expect(try await history(client) == ["1_users", "2_avatars", "3_index"])
                try await client.query("INSERT INTO users VALUES (1, 'a')")
            }
        }
    }

    @Test func pendingOnlyReads() async throws {
        try await withMigrations(Self.files) { folder in
            try await TestDatabase.withFresh { database in
                let client = try database.client()
                defer { client.shutdown() }
                let migrator = Migrator(client: client, logger: TestServices.logger)
                #expect(try await migrator.pending(try Migration.load(directory: folder)).map(\.version) == [1, 2, 3])
                let tables = try await client.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                #expect(try tables[0].decode(Int.self, at: 0) == 0, "a readiness probe must not create schema_migrations")
            }
        }
    }

    @Test func editedAppliedFileIsRefused() async throws {
        try await withMigrations(Self.files) { folder in
            try await TestDatabase.withFresh { database in
                let client = try database.client()
                defer { client.shutdown() }
                let migrator = Migrator(client: client, logger: TestServices.logger)
                try await migrator.migrate(try Migration.load(directory: folder))
                try "CREATE TABLE users (id bigint PRIMARY KEY, name text);".write(toFile: folder + "/0001_users.sql", atomically: true, encoding: .utf8)
                try "CREATE TABLE extra (id int);".write(toFile: folder + "/0004_extra.sql", atomically: true, encoding: .utf8)
                await #expect {
                    try await migrator.migrate(try Migration.load(directory: folder))
                } throws: { error in
                    guard let error = error as? PostgresError else { return false }
                    return error.code == .migration && "\(error)".contains("edited")
                }
                // Nothing after the refusal was applied.
                #expect(try await history(client).count == 3)
            }
        }
    }

    @Test func failingMigrationRollsBackAndStops() async throws {
        var files = Self.files
        files["0004_broken.sql"] = "CREATE TABLE half_done (id int); SELECT no_such_function();"
        files["0005_after.sql"] = "CREATE TABLE after_broken (id int);"
        try await withMigrations(files) { folder in
            try await TestDatabase.withFresh { database in
                let client = try database.client()
                defer { client.shutdown() }
                let migrator = Migrator(client: client, logger: TestServices.logger)
                await #expect {
                    try await migrator.migrate(try Migration.load(directory: folder))
                } throws: { ($0 as? PostgresError)?.sqlState == "42883" && "\($0)".contains("0004") }
                #expect(try await history(client) == ["1_users", "2_avatars", "3_index"])
                let leftovers = try await client.query("SELECT count(*) FROM pg_tables WHERE tablename IN ('half_done', 'after_broken')")
                #expect(try leftovers[0].decode(Int.self, at: 0) == 0)
            }
        }
    }

    @Test func planRejectsMissingAndOutOfOrderFiles() throws {
        let one = try Migration(fileName: "0001_a.sql", contents: Data("SELECT 1;".utf8))
        let two = try Migration(fileName: "0002_b.sql", contents: Data("SELECT 2;".utf8))
        let three = try Migration(fileName: "0003_c.sql", contents: Data("SELECT 3;".utf8))
        let applied = { (m: Migration) in Migrator.AppliedMigration(version: m.version, name: m.name, checksum: m.checksum) }
        #expect(try Migrator.plan([one, two, three], applied: [applied(one)]) == [two, three])
        #expect(throws: PostgresError.self, "file of an applied migration removed") { try Migrator.plan([two], applied: [applied(one), applied(two)]) }
        #expect(throws: PostgresError.self, "new file sorts before an applied one") { try Migrator.plan([one, two, three], applied: [applied(one), applied(three)]) }
        #expect(throws: PostgresError.self) { try Migration(fileName: "1_short.sql", contents: Data()) }
        #expect(throws: PostgresError.self) { try Migration(fileName: "0007-dash.sql", contents: Data()) }
        #expect(throws: PostgresError.self) { try Migration(fileName: "0007_x.txt", contents: Data()) }
    }

    @Test func concurrentMigratorsLeaveOneHistory() async throws {
        try await withMigrations(Self.files) { folder in
            try await TestDatabase.withFresh { database in
                let client = try database.client(maxConnections: 6)
                defer { client.shutdown() }
                let migrations = try Migration.load(directory: folder)
                let appliedCounts = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<5 {
                        group.addTask { try await Migrator(client: client, logger: TestServices.logger).migrate(migrations).count }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(appliedCounts.sorted() == [0, 0, 0, 0, 3], "exactly one migrator applied everything")
                #expect(try await history(client) == ["1_users", "2_avatars", "3_index"])
            }
        }
    }

    @Test func twoAishaMigrateProcessesAtOnce() async throws {
        let aisha = TestServices.productsDirectory + "/aisha"
        #expect(FileManager.default.isExecutableFile(atPath: aisha), "swift build produces the aisha CLI next to the tests")
        try await withMigrations(Self.files) { folder in
            try await TestDatabase.withFresh { database in
                let outputs = try await withThrowingTaskGroup(of: String.self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            try await TestServices.run(aisha, ["migrate", "--database-url", database.url, "--migrations-dir", folder])
                        }
                    }
                    return try await group.reduce(into: [String]()) { $0.append($1) }
                }
                #expect(outputs.filter { $0.contains("applied 3 of 3 migrations") }.count == 1, "\(outputs)")
                #expect(outputs.filter { $0.contains("up to date (3 migrations)") }.count == 1, "\(outputs)")
                let client = try database.client()
                defer { client.shutdown() }
                #expect(try await history(client) == ["1_users", "2_avatars", "3_index"])
                let status = try await TestServices.run(aisha, ["migrate", "--status", "--database-url", database.url, "--migrations-dir", folder])
                #expect(status == "up to date (3 migrations)")
            }
        }
    }
}
