import Foundation
@testable import Postgres
import Testing

/// Pure tests: query building and text-format encoding, no server.
@Suite struct PostgresQueryTests {
    @Test func interpolationBecomesParameters() {
        let id = 42
        let name = "O'Brien; DROP TABLE users; --"
        let query: PostgresQuery = "SELECT * FROM users WHERE id = \(id) AND name = \(name)"
        #expect(query.sql == "SELECT * FROM users WHERE id = $1 AND name = $2")
        #expect(query.binds == [.text("42"), .text(name)])
        #expect(!query.description.contains("O'Brien"), "descriptions never show parameter values")
    }

    @Test func nestedQueriesAreRenumbered() {
        let inner: PostgresQuery = "state = \("ready") AND kind = \("train")"
        let outer: PostgresQuery = "SELECT 1 WHERE id = \(7) AND \(inner) AND n = \(9)"
        #expect(outer.sql == "SELECT 1 WHERE id = $1 AND state = $2 AND kind = $3 AND n = $4")
        #expect(outer.binds == [.text("7"), .text("ready"), .text("train"), .text("9")])
    }

    @Test func identifiersAreQuoted() {
        let query: PostgresQuery = "CREATE DATABASE \(identifier: #"a"b"#)"
        #expect(query.sql == #"CREATE DATABASE "a""b""#)
    }

    @Test func optionalsAndBytes() {
        let missing: String? = nil
        let query: PostgresQuery = "SELECT \(missing), \(Data([0, 1, 255]))"
        #expect(query.binds == [.null, .binary([0, 1, 255])])
    }
}

@Suite struct PostgresTextFormatTests {
    @Test func timestampsRoundTripToTheMicrosecond() {
        for seconds in [0.0, 1.5, 1_732_530_000.123456, -86_400.25, 4_102_444_800.999999, 951_782_400] {  // incl. 2000-02-29
            let date = Date(timeIntervalSince1970: seconds)
            let parsed = PostgresTimestamp.parse(PostgresTimestamp.format(date))
            #expect(abs(parsed!.timeIntervalSince1970 - seconds) < 0.000_001, "\(seconds)")
        }
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00.000000Z")
        #expect(PostgresTimestamp.parse("2026-11-25 10:40:00+00")?.timeIntervalSince1970 == 1_795_603_200)
        #expect(PostgresTimestamp.parse("2026-11-25 13:40:00.5+03:00")?.timeIntervalSince1970 == 1_795_603_200.5)
        #expect(PostgresTimestamp.parse("infinity") == nil)
    }

    @Test func arrayLiteralsEscapeEverything() throws {
        let items: [String?] = ["plain", "with,comma", #"quote""#, #"back\slash"#, "{brace}", "NULL", nil, "", "пробел ✓"]
        let literal = PostgresArrayLiteral.encode(items)
        #expect(try PostgresArrayLiteral.decode(literal) == items)
        #expect(try PostgresArrayLiteral.decode("{}") == [])
        #expect(try PostgresArrayLiteral.decode("{1,2,NULL}") == ["1", "2", nil])
    }
}
