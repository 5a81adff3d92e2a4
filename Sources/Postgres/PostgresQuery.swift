import Foundation

/// A parameterized statement. Interpolated values become `$n` parameters, never SQL text:
///
///     let query: PostgresQuery = "SELECT name FROM avatars WHERE id = \(id) AND user_id = \(userID)"
///
/// This is the only way to build a query, so no SQL in the project is ever built from data.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation {
    /// The SQL with `$1 … $n` placeholders.
    public private(set) var sql: String
    /// The parameters, in placeholder order.
    public private(set) var binds: [PostgresBind]

    public init(stringLiteral value: String) {
        sql = value
        binds = []
    }

    public init(stringInterpolation: StringInterpolation) {
        sql = stringInterpolation.sql
        binds = stringInterpolation.binds
    }

    /// Builds the SQL and its parameters from a literal with interpolated values.
    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [PostgresBind] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            binds.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) { sql += literal }

        /// Appends a parameter placeholder for `value`.
        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            binds.append(value.postgresBind)
            sql += "$\(binds.count)"
        }

        /// Appends a parameter placeholder for an optional value: nil binds SQL NULL. (Spelled out
        /// so the compiler knows an optional here is meant, not a forgotten unwrap.)
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            binds.append(value.postgresBind)
            sql += "$\(binds.count)"
        }

        /// Appends a double-quoted identifier (a table or database name chosen by code, e.g. in tests).
        public mutating func appendInterpolation(identifier: String) {
            sql += "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }

        /// Appends another query, renumbering its placeholders.
        public mutating func appendInterpolation(_ query: PostgresQuery) {
            var rewritten = ""
            var chars = query.sql.makeIterator()
            var pending: Character? = chars.next()
            while let ch = pending {
                pending = chars.next()
                guard ch == "$", let first = pending, first.isNumber else { rewritten.append(ch); continue }
                var digits = ""
                while let d = pending, d.isNumber { digits.append(d); pending = chars.next() }
                rewritten += "$\(Int(digits)! + binds.count)"
            }
            sql += rewritten
            binds += query.binds
        }
    }
}

extension PostgresQuery: CustomStringConvertible {
    /// The SQL and the number of parameters; never the parameter values.
    public var description: String { "\(sql) [\(binds.count) parameters]" }
}
