public import Foundation
import Signing

/// One parameter as libpq receives it.
public enum PostgresBind: Sendable, Equatable {
    /// SQL NULL.
    case null
    /// Text format; the server parses it for the parameter's type.
    case text(String)
    /// Binary format; used for `bytea`.
    case binary([UInt8])
}

/// A Swift value that can be sent as a query parameter.
public protocol PostgresEncodable: Sendable {
    /// The value in the form libpq sends.
    var postgresBind: PostgresBind { get }
}

/// A Swift value that can be read from a text-format result column.
public protocol PostgresDecodable: Sendable {
    /// Decodes a non-NULL value from its text representation.
    static func decode(postgresText text: String) throws -> Self
    /// The value for SQL NULL; non-optional types throw.
    static func decodeNull() throws -> Self
}

extension PostgresDecodable {
    public static func decodeNull() throws -> Self {
        throw PostgresError(.decoding, context: "unexpected NULL for \(Self.self)")
    }
}

/// Decoding failures carry the type, never the value.
func decodingFailure<T>(_ type: T.Type) -> PostgresError {
    PostgresError(.decoding, context: "value is not a valid \(T.self)")
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresBind: PostgresBind { self?.postgresBind ?? .null }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(postgresText text: String) throws -> Self { try Wrapped.decode(postgresText: text) }
    public static func decodeNull() throws -> Self { nil }
}

extension String: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { .text(self) }
    public static func decode(postgresText text: String) throws -> String { text }
}

extension Substring: PostgresEncodable {
    public var postgresBind: PostgresBind { .text(String(self)) }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { .text(String(self)) }
    public static func decode(postgresText text: String) throws -> Int {
        guard let value = Int(text) else { throw decodingFailure(Int.self) }
        return value
    }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { .text(String(self)) }
    public static func decode(postgresText text: String) throws -> Int64 {
        guard let value = Int64(text) else { throw decodingFailure(Int64.self) }
        return value
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { .text(String(self)) }
    public static func decode(postgresText text: String) throws -> Int32 {
        guard let value = Int32(text) else { throw decodingFailure(Int32.self) }
        return value
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { .text(self ? "true" : "false") }
    public static func decode(postgresText text: String) throws -> Bool {
        switch text {
        case "t", "true": return true
        case "f", "false": return false
        default: throw decodingFailure(Bool.self)
        }
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind {
        if isNaN { return .text("NaN") }
        if isInfinite { return .text(self < 0 ? "-Infinity" : "Infinity") }
        return .text(description)  // Swift prints the shortest text that round-trips exactly.
    }
    public static func decode(postgresText text: String) throws -> Double {
        switch text {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default:
            guard let value = Double(text) else { throw decodingFailure(Double.self) }
            return value
        }
    }
}

extension UUID: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { .text(uuidString.lowercased()) }
    public static func decode(postgresText text: String) throws -> UUID {
        guard let value = UUID(uuidString: text) else { throw decodingFailure(UUID.self) }
        return value
    }
}

extension Data: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { .binary([UInt8](self)) }
    /// bytea arrives as `\x` followed by hex (`bytea_output = hex`, the default since 9.0).
    public static func decode(postgresText text: String) throws -> Data {
        guard text.hasPrefix("\\x"), let bytes = try? Hex.decode(text.dropFirst(2)) else {
            throw decodingFailure(Data.self)
        }
        return Data(bytes)
    }
}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    // A closure, not `map(\.postgresArrayText)`: in this generic context the key path was
    // instantiated on every call (swift_getKeyPath: 5 % of the worker's CPU).
    public var postgresBind: PostgresBind { .text(PostgresArrayLiteral.encode(self.map { $0.postgresArrayText })) }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement & PostgresDecodable {
    public static func decode(postgresText text: String) throws -> [Element] {
        try PostgresArrayLiteral.decode(text).map { item in
            guard let item else { return try Element.decodeNull() }
            return try Element.decode(postgresText: item)
        }
    }
}

/// A value that can appear inside a one-dimensional array parameter (for `unnest` and `= ANY`).
public protocol PostgresArrayElement: Sendable {
    /// The element's text, or nil for NULL.
    var postgresArrayText: String? { get }
}

extension String: PostgresArrayElement { public var postgresArrayText: String? { self } }
extension Int: PostgresArrayElement { public var postgresArrayText: String? { String(self) } }
extension Int64: PostgresArrayElement { public var postgresArrayText: String? { String(self) } }
extension Int32: PostgresArrayElement { public var postgresArrayText: String? { String(self) } }
extension Bool: PostgresArrayElement { public var postgresArrayText: String? { self ? "t" : "f" } }
extension Double: PostgresArrayElement {
    public var postgresArrayText: String? { if case .text(let t) = postgresBind { t } else { nil } }
}
extension UUID: PostgresArrayElement { public var postgresArrayText: String? { uuidString.lowercased() } }
extension Date: PostgresArrayElement { public var postgresArrayText: String? { PostgresTimestamp.format(self) } }
extension Optional: PostgresArrayElement where Wrapped: PostgresArrayElement {
    public var postgresArrayText: String? { self?.postgresArrayText }
}

/// A one-dimensional array parameter sent in PostgreSQL's binary format: `text[]` and `json[]`
/// elements as their bytes, with no quoting here and no array literal for the server to parse
/// and unescape; `int2[]`, `int4[]` and `timestamptz[]` elements as fixed-size integers. For the
/// webhook's batches, where the elements are whole JSON payloads. The server still checks text
/// elements (UTF-8, and JSON syntax for `json`): bytes that fail are a data error (SQLSTATE 22…).
/// The statement must cast the parameter to the same type (`$1::json[]`): the binary form names
/// its element type, which is why plain Swift arrays keep the text form (`PostgresArrayLiteral`),
/// whose element type the statement's cast decides.
public struct PostgresBinaryArray: PostgresEncodable {
    /// Element types and their OIDs.
    public enum ElementType: UInt32, Sendable {
        case int2 = 21
        case int4 = 23
        case text = 25
        case json = 114
        case timestamptz = 1184
    }

    public let postgresBind: PostgresBind

    /// The array of `elements` (nil for NULL), each already in `type`'s binary form.
    init(_ elements: [[UInt8]?], of type: ElementType) {
        var out: [UInt8] = []
        out.reserveCapacity(20 + elements.reduce(0) { $0 + 4 + ($1?.count ?? 0) })
        Self.append(Int32(elements.isEmpty ? 0 : 1), to: &out)                 // dimensions
        Self.append(Int32(elements.contains { $0 == nil } ? 1 : 0), to: &out)  // has NULLs
        Self.append(Int32(bitPattern: type.rawValue), to: &out)                // element type
        if !elements.isEmpty {
            Self.append(Int32(elements.count), to: &out)                       // length of the dimension
            Self.append(Int32(1), to: &out)                                    // its lower bound
        }
        for element in elements {
            guard let element else { Self.append(Int32(-1), to: &out); continue }
            Self.append(Int32(element.count), to: &out)
            out.append(contentsOf: element)
        }
        postgresBind = .binary(out)
    }

    private static func append<I: FixedWidthInteger>(_ value: I, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }

    private static func bytes<I: FixedWidthInteger>(_ value: I) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    /// A `text[]` or `json[]` of UTF-8 bytes (nil for NULL).
    public init(utf8 elements: [[UInt8]?], of type: ElementType) {
        precondition(type == .text || type == .json, "UTF-8 elements make a text[] or json[]")
        self.init(elements, of: type)
    }

    /// A `text[]` or `json[]` (nil for NULL).
    public init(_ elements: [String?], of type: ElementType = .text) {
        self.init(utf8: elements.map { $0.map { Array($0.utf8) } }, of: type)
    }

    /// An `int2[]`.
    public init(int2 elements: [Int16]) { self.init(elements.map { Self.bytes($0) }, of: .int2) }

    /// An `int4[]`.
    public init(int4 elements: [Int32]) { self.init(elements.map { Self.bytes($0) }, of: .int4) }

    /// A `timestamptz[]` (nil for NULL), to the microsecond like the text form.
    public init(timestamps elements: [Date?]) {
        // Microseconds since 2000-01-01 00:00:00 UTC.
        self.init(elements.map { $0.map { Self.bytes(Int64((($0.timeIntervalSince1970 - 946_684_800) * 1_000_000).rounded())) } }, of: .timestamptz)
    }
}

/// The text form of one-dimensional arrays: `{a,"b c",NULL}`.
enum PostgresArrayLiteral {
    static func encode(_ items: [String?]) -> String {
        // Built as UTF-8 bytes: this runs for every job of every batch enqueue (JSON payloads
        // included), and per-scalar String appends cost a sixth of the webhook server's CPU.
        var out: [UInt8] = []
        out.reserveCapacity(items.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        out.append(UInt8(ascii: "{"))
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            guard let item else { out.append(contentsOf: "NULL".utf8); continue }
            // Always quote: it is never wrong and avoids NULL/space/brace/comma ambiguity.
            out.append(UInt8(ascii: "\""))
            for byte in item.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) throws -> [String?] {
        let scalars = Array(text.unicodeScalars)
        guard scalars.first == "{", scalars.last == "}" else { throw decodingFailure([String].self) }
        var items: [String?] = []
        var index = 1
        let end = scalars.count - 1
        if index == end { return [] }
        while index <= end {
            var item = String.UnicodeScalarView()
            var quoted = false
            if scalars[index] == "\"" {
                quoted = true
                index += 1
                while index < end, scalars[index] != "\"" {
                    if scalars[index] == "\\" { index += 1 }
                    item.append(scalars[index])
                    index += 1
                }
                index += 1  // closing quote
            } else {
                while index < end, scalars[index] != "," {
                    item.append(scalars[index])
                    index += 1
                }
            }
            let value = String(item)
            items.append(!quoted && value == "NULL" ? nil : value)
            index += 1  // the comma or the closing brace
        }
        return items
    }
}

/// A value stored as `json`/`jsonb`, encoded and decoded with Foundation's JSON coders.
public struct PostgresJSON<Value: Codable & Sendable>: PostgresEncodable, PostgresDecodable {
    /// The wrapped value.
    public var value: Value

    /// Wraps a value.
    public init(_ value: Value) { self.value = value }

    public var postgresBind: PostgresBind {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a Codable value to JSON fails only for non-finite floats; surface that loudly.
        guard let data = try? encoder.encode(value) else { preconditionFailure("value of \(Value.self) is not JSON-encodable") }
        return .text(String(decoding: data, as: UTF8.self))
    }

    public static func decode(postgresText text: String) throws -> PostgresJSON<Value> {
        do {
            return PostgresJSON(try JSONDecoder().decode(Value.self, from: Data(text.utf8)))
        } catch {
            throw PostgresError(.decoding, context: "JSON is not a valid \(Value.self)")
        }
    }
}
