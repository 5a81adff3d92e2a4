import Foundation

/// Any JSON value, for payloads whose shape belongs to a model (FAL results, error details).
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The member `key` of an object, or nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] } else { return nil }
    }

    /// The string value, or nil.
    public var stringValue: String? { if case .string(let value) = self { value } else { nil } }

    /// The boolean value, or nil.
    public var boolValue: Bool? { if case .bool(let value) = self { value } else { nil } }

    /// The number as an integer, or nil when it is not one. Exact up to 2^53, which holds every
    /// id Telegram sends (52 bits at most).
    public var integerValue: Int64? { if case .number(let value) = self { Int64(exactly: value) } else { nil } }

    /// An optional member read as Codable reads one: nil when `key` is absent or null, `read`'s
    /// value when it reads, and `MemberTypeError` when it is there but does not.
    public func optionalMember<T>(_ key: String, _ read: (JSONValue) -> T?) throws(MemberTypeError) -> T? {
        guard let value = self[key], value != .null else { return nil }
        guard let read = read(value) else { throw MemberTypeError(key: key) }
        return read
    }

    /// A member that is there but not of the type asked for.
    public struct MemberTypeError: Error, Equatable {
        public let key: String
    }
}
