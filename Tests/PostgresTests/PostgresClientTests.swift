import Foundation
import Postgres
import TestSupport
import Testing

/// Integration tests against the real local cluster (deploy/local/postgres.sh), each in a fresh database.
@Suite struct PostgresClientTests {
    struct Payload: Codable, Equatable, Sendable {
        var name: String
        var tags: [String]
        var nested: [String: Int]
    }

    @Test func typesRoundTrip() async throws {
        try await TestDatabase.withFresh { database in
            let client = try database.client()
            defer { client.shutdown() }
            let id = UUID()
            let when = Date(timeIntervalSince1970: 1_732_530_000.123456)
            let bytes = Data((0...255).map { UInt8($0) } + [0, 0, 92, 120])
            let text = "Привет, мир ✓ 👩‍🚀 \"quoted\" \\ back"
            let payload = Payload(name: "Aisha ✓", tags: ["a", "b,c"], nested: ["x": 1])
            let noText: String? = nil
            let noInt: Int? = nil
            let row = try #require(try await client.query("""
                SELECT \(Int.max)::int8, \(Int32.min)::int4, \(text)::text, \(true)::bool, \(false)::bool, \(3.141592653589793)::float8,
                       \(when)::timestamptz, \(id)::uuid, \(bytes)::bytea, \(PostgresJSON(payload))::jsonb,
                       \(noText)::text, \(noInt)::int8, \(["x", "y z", nil])::text[], \([1, 2, 3])::int8[], \(-0.0)::float8
                """).first)
            #expect(try row.decode(Int.self, at: 0) == Int.max)
            #expect(try row.decode(Int32.self, at: 1) == Int32.min)
            #expect(try row.decode(String.self, at: 2) == text)
            #expect(try row.decode(Bool.self, at: 3) == true)
            #expect(try row.decode(Bool.self, at: 4) == false)
            #expect(try row.decode(Double.self, at: 5) == 3.141592653589793)
            #expect(try row.decode(Date.self, at: 6).timeIntervalSince1970 == when.timeIntervalSince1970)
            #expect(try row.decode(UUID.self, at: 7) == id)
            #expect(try row.decode(Data.self, at: 8) == bytes)
            #expect(try row.decode(PostgresJSON<Payload>.self, at: 9).value == payload)
            #expect(try row.decode(String?.self, at: 10) == nil)
            #expect(try row.decode(Int?.self, at: 11) == nil)
            #expect(try row.decode([String?].self, at: 12) == ["x", "y z", nil])
            #expect(try row.decode([Int].self, at: 13) == [1, 2, 3])
            #expect(try row.decode(Double.self, at: 14) == 0)
            // A NULL into a non-optional, and a wrong type, are decoding errors naming the column.
            #expect { try row.decode(String.self, at: 10) } throws: { ($0 as? PostgresError)?.code == .decoding }
            #expect { try row.decode(Int.self, at: 2) } throws: { ($0 as? PostgresError)?.code == .decoding }
            let (a, b) = try row.decode(Int.self, Int32.self)
            #expect(a == Int.max && b == Int32.min)
        }
    }

    @Test func tableRoundTripAndAffectedRows() async throws {
        try await TestDatabase.withFresh { database in
            let client = try database.client()
            defer { client.shutdown() }
            try await client.query("CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL, at timestamptz NOT NULL DEFAULT now())")
            let ids = Array(1...500)
            let names = ids.map { "name \($0) ✓" }
            let inserted = try await client.query("INSERT INTO t (id, name) SELECT * FROM unnest(\(ids)::int8[], \(names)::text[])")
            #expect(inserted.affectedRows == 500)
            let rows = try await client.query("SELECT id, name FROM t WHERE id = ANY(\([7, 499])::int8[]) ORDER BY id")
            #expect(try rows.map { try $0.decode(Int.self, String.self) }.map { "\($0.0):\($0.1)" } == ["7:name 7 ✓", "499:name 499 ✓"])
            #expect(rows.columnNames == ["id", "name"])
            #expect(try rows[0].decode(String.self, column: "name") == "name 7 ✓")
        }
    }

    /// Binary array parameters arrive element for element: text bytes unchanged (what the server
    /// cannot accept is a data error, never silently altered), integers and timestamps exact.
    @Test func binaryArraysArriveAsSent() async throws {
        try await TestDatabase.withFresh { database in
            let client = try database.client()
            defer { client.shutdown() }
            let items: [String?] = ["plain", "with,comma", #"quote" and \ back"#, "{brace}", "NULL", nil, "", "пробел ✓ 👩‍🚀"]
            let rows = try await client.query("SELECT t, t IS NULL FROM unnest(\(PostgresBinaryArray(items))::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n")
            #expect(try rows.map { try $0.decode(String?.self, at: 0) } == items)
            let empty = try await client.query("SELECT cardinality(\(PostgresBinaryArray([String?]()))::text[])")
            #expect(try empty[0].decode(Int.self, at: 0) == 0)
            let small: [Int16] = [0, 1, -1, .min, .max], counts: [Int32] = [0, 20, -7, .min, .max]
            let numbers = try await client.query("SELECT a::text, b::text FROM unnest(\(PostgresBinaryArray(int2: small))::int2[], \(PostgresBinaryArray(int4: counts))::int4[]) WITH ORDINALITY AS u(a, b, n) ORDER BY n")
            #expect(try numbers.map { try $0.decode(String.self, at: 0) } == small.map(String.init))
            #expect(try numbers.map { try $0.decode(String.self, at: 1) } == counts.map(String.init))
            let moments: [Date?] = [Date(timeIntervalSince1970: 1_732_530_000.123456), nil, Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 946_684_799.5)]
            let times = try await client.query("SELECT t FROM unnest(\(PostgresBinaryArray(timestamps: moments))::timestamptz[]) WITH ORDINALITY AS u(t, n) ORDER BY n")
            for (row, moment) in zip(times, moments) {
                let back = try row.decode(Date?.self, at: 0)
                #expect((back == nil) == (moment == nil) && abs((back?.timeIntervalSince1970 ?? 0) - (moment?.timeIntervalSince1970 ?? 0)) < 0.000_001, "\(String(describing: moment))")
            }
            let json = [#"{"b": 1,  "a":[true,null]}"#, #""\u0000""#]
            let kept = try await client.query("SELECT j::text FROM unnest(\(PostgresBinaryArray(json, of: .json))::json[]) WITH ORDINALITY AS u(j, n) ORDER BY n")
            #expect(try kept.map { try $0.decode(String.self, at: 0) } == json, "json keeps the text byte for byte")
            for (bad, state) in [([UInt8]("{\"a\":".utf8), "22P02"), ([0x22, 0xFF, 0x22], "22021")] {
                do {
                    _ = try await client.query("SELECT \(PostgresBinaryArray(utf8: [bad], of: .json))::json[]")
                    Issue.record("\(bad) was accepted")
                } catch let error as PostgresError {
                    #expect(error.sqlState == state, "\(bad)")
                }
            }
        }
    }

    @Test func failingStatementsCarrySQLStateButNotParameters() async throws {
        try await TestDatabase.withFresh { database in
            let client = try database.client()
            defer { client.shutdown() }
            await #expect { try await client.query("SELECT * FROM no_such_table") } throws: {
                ($0 as? PostgresError)?.sqlState == "42P01"
            }
            try await client.query("CREATE TABLE u (email text CONSTRAINT u_email_key UNIQUE)")
            try await client.query("INSERT INTO u VALUES (\("secret@example.com"))")
            do {
                try await client.query("INSERT INTO u VALUES (\("secret@example.com"))")
                Issue.record("duplicate insert succeeded")
            } catch let error as PostgresError {
                #expect(error.isUniqueViolation && error.constraint == "u_email_key" && error.table == "u")
                #expect(!"\(error)".contains("secret@example.com"), "description leaks a parameter: \(error)")
            }
            do {
                try await client.query("SELECT \("card-4242-4242")::int")
                Issue.record("bad cast succeeded")
            } catch let error as PostgresError {
                #expect(error.sqlState == "22P02")
                #expect(error.serverMessage?.contains("card-4242-4242") == true)  // the server quotes it…
                #expect(!"\(error)".contains("card-4242-4242"))  // …but the description never does
            }
            // The connection that failed is fine for the next statement.
            #expect(try await client.query("SELECT 1").first?.decode(Int.self, at: 0) == 1)
        }
    }

    /// Statements are prepared once per connection; a schema change under one fails that call
    /// only, and past the cache's limit statements still run (unnamed).
    @Test func preparedStatementsAreReusedSurviveSchemaChangesAndStayBounded() async throws {
        try await TestDatabase.withFresh { database in
            let client = try database.client(maxConnections: 1)
            defer { client.shutdown() }
            try await client.query("CREATE TABLE p (id int PRIMARY KEY)")
            for id in 1...5 { try await client.query("INSERT INTO p (id) VALUES (\(id))") }
            let statements = try await client.query("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO p %'")
            #expect(try statements[0].decode(Int.self, at: 0) == 1, "five inserts, one prepared statement")

            #expect(try await client.query("SELECT * FROM p ORDER BY id").count == 5)
            try await client.query("ALTER TABLE p ADD COLUMN note text")
            await #expect(throws: PostgresError.self) { try await client.query("SELECT * FROM p ORDER BY id") }
            let rows = try await client.query("SELECT * FROM p ORDER BY id")
            #expect(rows.columnNames == ["id", "note"], "prepared afresh after the failure")

            for index in 0..<300 { #expect(try await client.query("SELECT \(identifier: "c\(index)") FROM (SELECT \(index) AS \(identifier: "c\(index)")) x")[0].decode(Int.self, at: 0) == index) }
            let total = try await client.query("SELECT count(*) FROM pg_prepared_statements")
            #expect(try total[0].decode(Int.self, at: 0) <= 256)
        }
    }

    /// Writes queued with `sendWithNext` go out with the next statement or the COMMIT: they
    /// commit with the transaction, a failing one aborts it (nothing of it stays), a body that
    /// throws drops them, and outside a transaction they run at once.
    @Test func writesSentWithTheNextStatementCommitOrAbortWithTheTransaction() async throws {
        try await TestDatabase.withFresh { database in
            let client = try database.client(maxConnections: 1)
            defer { client.shutdown() }
            try await client.query("CREATE TABLE w (id int PRIMARY KEY)")
            func ids() async throws -> [Int] { try await client.query("SELECT id FROM w ORDER BY id").map { try $0.decode(Int.self, at: 0) } }

            // Queued writes ride with a later read in the same transaction, which sees them, and with the COMMIT.
            let seen = try await client.withTransaction { tx in
                try await tx.sendWithNext("INSERT INTO w VALUES (1)")
                try await tx.sendWithNext("INSERT INTO w VALUES (2)")
                let count = try await tx.query("SELECT count(*) FROM w")[0].decode(Int.self, at: 0)
                try await tx.sendWithNext("INSERT INTO w VALUES (3)")
                return count
            }
            #expect(seen == 2)
            #expect(try await ids() == [1, 2, 3])

            // A queued write that fails (duplicate key) fails the COMMIT and takes the whole transaction with it.
            await #expect(throws: PostgresError.self) {
                try await client.withTransaction { tx in
                    try await tx.query("INSERT INTO w VALUES (4)")
                    try await tx.sendWithNext("INSERT INTO w VALUES (1)")
                }
            }
            #expect(try await ids() == [1, 2, 3])

            // A body that throws before anything was sent: nothing reaches the server.
            struct Abandoned: Error {}
            await #expect(throws: Abandoned.self) {
                try await client.withTransaction { tx in
                    try await tx.sendWithNext("INSERT INTO w VALUES (5)")
                    throw Abandoned()
                }
            }
            // The failing statement is reported where it ran, and the connection stays usable.
            await #expect(throws: PostgresError.self) {
                try await client.withTransaction { tx in
                    try await tx.sendWithNext("INSERT INTO w VALUES (6)")
                    try await tx.query("SELECT 1/0")
                }
            }
            #expect(try await ids() == [1, 2, 3])

            // Outside a transaction it runs now.
            try await client.withConnection { connection in try await connection.sendWithNext("INSERT INTO w VALUES (7)") }
            #expect(try await ids() == [1, 2, 3, 7])

            // Several statements in one round trip: each one's rows, in order …
            let both = try await client.withTransaction { tx in
                try await tx.query(all: ["SELECT count(*) FROM w", "INSERT INTO w VALUES (8) RETURNING id", "SELECT max(id) FROM w"])
            }
            #expect(try both.map { try $0[0].decode(Int.self, at: 0) } == [4, 8, 8])
            // … and the first failure is thrown; what followed it did not run.
            await #expect(throws: PostgresError.self) {
                try await client.withConnection { connection in
                    _ = try await connection.query(all: ["INSERT INTO w VALUES (1)", "INSERT INTO w VALUES (9)"])
                }
            }
            #expect(try await ids() == [1, 2, 3, 7, 8])

            // The last statements can travel with the COMMIT and return their rows; the
            // transaction does not commit twice, and their failure rolls everything back.
            let committed = try await client.withTransaction { tx in
                try await tx.sendWithNext("INSERT INTO w VALUES (10)")
                return try await tx.commit(after: ["INSERT INTO w VALUES (11) RETURNING id", "SELECT count(*) FROM w"])
            }
            #expect(try committed.map { try $0[0].decode(Int.self, at: 0) } == [11, 7])
            #expect(try await ids() == [1, 2, 3, 7, 8, 10, 11])
            await #expect(throws: PostgresError.self) {
                try await client.withTransaction { tx in
                    try await tx.query("INSERT INTO w VALUES (12)")
                    _ = try await tx.commit(after: ["INSERT INTO w VALUES (13)", "INSERT INTO w VALUES (1)"])
                }
            }
            #expect(try await ids() == [1, 2, 3, 7, 8, 10, 11])
        }
    }

    @Test func transactionsCommitOrRollBack() async throws {
        struct Boom: Error {}
        try await TestDatabase.withFresh { database in
            let client = try database.client()
            defer { client.shutdown() }
            try await client.query("CREATE TABLE ledger (reference text PRIMARY KEY, amount int NOT NULL)")
            await #expect(throws: Boom.self) {
                try await client.withTransaction { tx in
                    try await tx.query("INSERT INTO ledger VALUES (\("a"), \(10))")
                    try await tx.query("INSERT INTO ledger VALUES (\("b"), \(20))")
                    throw Boom()
                }
            }
            #expect(try await client.query("SELECT count(*) FROM ledger").first?.decode(Int.self, at: 0) == 0)
            // A failing statement inside also rolls back the earlier ones.
            await #expect(throws: PostgresError.self) {
                try await client.withTransaction { tx in
                    try await tx.query("INSERT INTO ledger VALUES (\("c"), \(1))")
                    try await tx.query("INSERT INTO ledger VALUES (\("c"), \(2))")
                }
            }
            #expect(try await client.query("SELECT count(*) FROM ledger").first?.decode(Int.self, at: 0) == 0)
            let total = try await client.withTransaction { tx in
                try await tx.query("INSERT INTO ledger VALUES (\("d"), \(5))")
                return try await tx.query("SELECT sum(amount) FROM ledger").first!.decode(Int.self, at: 0)
            }
            #expect(total == 5)
            #expect(try await client.query("SELECT count(*) FROM ledger").first?.decode(Int.self, at: 0) == 1)
            #expect(client.statistics.leased == 0)
        }
    }

    @Test func listenReceivesNotify() async throws {
        try await TestDatabase.withFresh { database in
            let client = try database.client()
            defer { client.shutdown() }
            let events = client.listen(to: ["jobs_ready", "other"], logger: TestServices.logger)
            var iterator = events.makeAsyncIterator()
            #expect(await iterator.next() == .listening)
            try await client.query("SELECT pg_notify(\("jobs_ready"), \("telegram.update"))")
            try await client.query("NOTIFY other")
            guard case .notification(let first) = await iterator.next(), case .notification(let second) = await iterator.next() else {
                Issue.record("no notifications")
                return
            }
            #expect(first.channel == "jobs_ready" && first.payload == "telegram.update")
            #expect(second.channel == "other" && second.payload == "")
        }
    }

    @Test func cancellingATaskCancelsTheStatement() async throws {
        try await TestDatabase.withFresh { database in
            let client = try database.client(maxConnections: 1)
            defer { client.shutdown() }
            let started = ContinuousClock.now
            let task = Task { try await client.query("SELECT pg_sleep(30)") }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(ContinuousClock.now - started < .seconds(10))
            // The single connection is usable again (or was replaced).
            #expect(try await client.query("SELECT 2").first?.decode(Int.self, at: 0) == 2)
            // A task cancelled before its statement starts never sends it.
            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.query("SELECT pg_sleep(30)")
            }
            let earlyStart = ContinuousClock.now
            await #expect(throws: CancellationError.self) { _ = try await early.value }
            #expect(ContinuousClock.now - earlyStart < .seconds(10))
        }
    }

    @Test func statementTimeoutStopsSlowStatements() async throws {
        try await TestDatabase.withFresh { database in
            let configuration = try PostgresClient.Configuration(connectionString: database.url, maxConnections: 1, statementTimeout: .milliseconds(200))
            let client = PostgresClient(configuration: configuration, logger: TestServices.logger)
            defer { client.shutdown() }
            await #expect { try await client.query("SELECT pg_sleep(5)") } throws: { ($0 as? PostgresError)?.isQueryCanceled == true }
            #expect(try await client.query("SELECT 3").first?.decode(Int.self, at: 0) == 3)
        }
    }

    @Test func exhaustedPoolTimesOut() async throws {
        try await TestDatabase.withFresh { database in
            let configuration = try PostgresClient.Configuration(connectionString: database.url, maxConnections: 1, acquireTimeout: .milliseconds(300))
            let client = PostgresClient(configuration: configuration, logger: TestServices.logger)
            defer { client.shutdown() }
            try await client.withConnection { held in
                try await held.query("SELECT 1")
                await #expect { try await client.query("SELECT 1") } throws: { ($0 as? PostgresError)?.code == .poolTimeout }
            }
            #expect(try await client.query("SELECT 4").first?.decode(Int.self, at: 0) == 4)
        }
    }

    @Test func connectionsRunInParallelOffTheCooperativePool() async throws {
        try await TestDatabase.withFresh { database in
            let client = try database.client(maxConnections: 8)
            defer { client.shutdown() }
            // Eight 5 s blocking calls. On the cooperative pool (two threads here) at most two
            // could block at once, so they would take at least 20 s; on the pool's own eight
            // threads they take about 5 s, however busy the CPUs are with other tests.
            try await withThrowingTaskGroup(of: Void.self) { group in  // open all eight first
                for _ in 0..<8 { group.addTask { try await client.query("SELECT pg_sleep(0.3)") } }
                try await group.waitForAll()
            }
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { try await client.query("SELECT pg_sleep(5)") } }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .seconds(15), "8 × 5 s took \(elapsed); two at a time would need 20 s")
            #expect(client.statistics.open == 8)
        }
    }

    @Test func badPasswordAndRefusedConnectionGiveClearErrors() async throws {
        var components = URLComponents(string: try TestServices.databaseURL())!
        components.password = "wrong-password-xyz"
        let client = try PostgresClient(url: components.string!, maxConnections: 1, logger: TestServices.logger)
        defer { client.shutdown() }
        do {
            try await client.query("SELECT 1")
            Issue.record("a wrong password connected")
        } catch let error as PostgresError {
            #expect(error.code == .connectionFailed)
            #expect("\(error)".contains("password authentication failed"), "\(error)")
            #expect(!"\(error)".contains("wrong-password-xyz"))
        }
        let refused = try PostgresClient(url: "postgres://aisha:x@127.0.0.1:1/aisha", maxConnections: 1, logger: TestServices.logger)
        defer { refused.shutdown() }
        await #expect { try await refused.query("SELECT 1") } throws: { ($0 as? PostgresError)?.code == .connectionFailed }
        #expect(throws: PostgresError.self) { try PostgresClient.Configuration(connectionString: "postgres://[bad") }
        #expect(try PostgresClient.Configuration(connectionString: "postgres://u:hunter2@db.example:6543/app").redactedDescription == "u@db.example:6543/app")
    }
}
