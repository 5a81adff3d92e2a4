internal import CLibpq

/// The owner of one `PGresult`, cleared in deinit.
///
/// `@unchecked Sendable`: a PGresult is immutable once returned, and libpq documents reading one
/// from several threads as safe; nothing here mutates it.
final class PostgresResultStorage: @unchecked Sendable {
    let pointer: OpaquePointer
    let rowCount: Int
    let columnNames: [String]

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
        rowCount = Int(PQntuples(pointer))
        let columns = Int(PQnfields(pointer))
        columnNames = (0..<columns).map { String(cString: PQfname(pointer, Int32($0))) }
    }

    deinit { PQclear(pointer) }

    func text(row: Int, column: Int) -> String? {
        if PQgetisnull(pointer, Int32(row), Int32(column)) == 1 { return nil }
        let length = Int(PQgetlength(pointer, Int32(row), Int32(column)))
        let bytes = PQgetvalue(pointer, Int32(row), Int32(column))!
        return bytes.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    var affectedRows: Int { Int(String(cString: PQcmdTuples(pointer))) ?? 0 }
}

/// The rows a statement returned.
public struct PostgresRows: RandomAccessCollection, Sendable {
    let storage: PostgresResultStorage?

    init(_ storage: PostgresResultStorage?) { self.storage = storage }

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage?.rowCount ?? 0 }
    public subscript(position: Int) -> PostgresRow { PostgresRow(storage: storage!, index: position) }

    /// The result's column names, in order.
    public var columnNames: [String] { storage?.columnNames ?? [] }
    /// Rows inserted, updated or deleted by the statement (from the command tag).
    public var affectedRows: Int { storage?.affectedRows ?? 0 }
}

/// One row; columns are read by index or name and decoded from PostgreSQL's text format.
public struct PostgresRow: Sendable {
    let storage: PostgresResultStorage
    let index: Int

    /// The number of columns.
    public var count: Int { storage.columnNames.count }

    /// The raw text of a column (nil for NULL).
    public func text(at column: Int) -> String? { storage.text(row: index, column: column) }

    /// Decodes column `column` as `T`.
    /// - Throws: `PostgresError.Code.decoding` if the value does not fit (or is NULL for a non-optional).
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at column: Int) throws -> T {
        guard column < count else { throw PostgresError(.decoding, context: "no column \(column)") }
        do {
            guard let text = storage.text(row: index, column: column) else { return try T.decodeNull() }
            return try T.decode(postgresText: text)
        } catch var error as PostgresError {
            error.column = storage.columnNames[column]
            throw error
        }
    }

    /// Decodes the column named `name` as `T`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, column name: String) throws -> T {
        guard let column = storage.columnNames.firstIndex(of: name) else {
            throw PostgresError(.decoding, column: name, context: "no such column")
        }
        return try decode(T.self, at: column)
    }

    /// Decodes the leading columns as a tuple: `let (id, name) = try row.decode(Int.self, String.self)`.
    public func decode<each T: PostgresDecodable>(_ types: repeat (each T).Type) throws -> (repeat each T) {
        var column = 0
        func next<U: PostgresDecodable>(_ type: U.Type) throws -> U {
            defer { column += 1 }
            return try decode(U.self, at: column)
        }
        return (repeat try next((each T).self))
    }
}
