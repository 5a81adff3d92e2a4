/// JSON text ↔ `JSONValue` without Codable. `JSONDecoder` finds a `JSONValue`'s case by trying
/// each type in turn and catching the failures, which made it the Sandbox's largest cost in
/// `aisha bench bot`; this is one pass over the bytes each way.
extension JSONValue {
    /// A syntax error in JSON text, at a byte offset.
    public struct SyntaxError: Error, Equatable, CustomStringConvertible {
        public let offset: Int
        public var description: String { "malformed JSON at byte \(offset)" }
    }

    /// Parses RFC 8259 JSON text (UTF-8; no NaN, Infinity, comments or trailing commas).
    /// Numbers become `Double`, as with `JSONDecoder`; an object's repeated key keeps its last value.
    public init(parsing text: some Collection<UInt8>) throws(SyntaxError) {
        try self.init(parsing: text, buildingDepth: Int.max)
    }

    /// Parses like `init(parsing:)`, but objects and arrays nested `depth` or more levels below
    /// the top are skipped (their syntax checked, nothing built) and read as `.null`; scalars are
    /// kept at any level. For answers of which only the top needs reading: a sent message's id,
    /// not the whole message. (Skipped strings are not checked for valid UTF-8.)
    public init(parsing text: some Collection<UInt8>, buildingDepth depth: Int) throws(SyntaxError) {
        let bytes = Array(text)
        var parser = Parser(bytes: bytes)
        parser.buildingDepth = depth
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw SyntaxError(offset: parser.index) }
        self = value
    }

    /// Compact JSON text as UTF-8. Integral numbers within ±2^53 print without a fraction (`42`,
    /// not `42.0`).
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
    }

    private func write(to out: inout [UInt8]) {
        switch self {
        case .null: out += "null".utf8
        case .bool(let value): out += (value ? "true" : "false").utf8
        case .number(let value): out += Self.numberText(value).utf8
        case .string(let value): Self.writeString(value, to: &out)
        case .array(let values):
            out.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                value.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            var first = true
            for (key, value) in members {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                Self.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func numberText(_ value: Double) -> String {
        guard value.isFinite else { return "null" }  // JSON has no NaN or Infinity
        if value == value.rounded(), abs(value) <= 9_007_199_254_740_992 { return String(Int64(value)) }
        return "\(value)"  // shortest round-trip form, e.g. 2.5, 1e+20: valid JSON
    }

    private static let hex = Array("0123456789abcdef".utf8)

    static func writeString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += #"\""#.utf8
            case UInt8(ascii: "\\"): out += #"\\"#.utf8
            case 0x0A: out += #"\n"#.utf8
            case 0x0D: out += #"\r"#.utf8
            case 0x09: out += #"\t"#.utf8
            case 0..<0x20: out += #"\u00"#.utf8; out.append(hex[Int(byte >> 4)]); out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0
        /// Deep enough for any real payload, shallow enough never to exhaust a thread's stack.
        static let maxDepth = 512

        /// Containers at this nesting level or deeper are skipped (see `init(parsing:buildingDepth:)`).
        var buildingDepth = Int.max

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error() -> SyntaxError { SyntaxError(offset: index) }

        mutating func skipWhitespace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 { index += 1 }
        }

        mutating func value(depth: Int) throws(SyntaxError) -> JSONValue {
            guard index < bytes.count, depth < Self.maxDepth else { throw error() }
            switch bytes[index] {
            case UInt8(ascii: "{") where depth >= buildingDepth, UInt8(ascii: "[") where depth >= buildingDepth: try skip(depth: depth); return .null
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return .number(try number())
            }
        }

        /// Checks one value's syntax and moves past it, building nothing.
        mutating func skip(depth: Int) throws(SyntaxError) {
            guard index < bytes.count, depth < Self.maxDepth else { throw error() }
            switch bytes[index] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let close = bytes[index] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                index += 1
                skipWhitespace()
                if index < bytes.count, bytes[index] == close { index += 1; return }
                while true {
                    skipWhitespace()
                    if close == UInt8(ascii: "}") {
                        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error() }
                        try skipString()
                        skipWhitespace()
                        guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error() }
                        index += 1
                        skipWhitespace()
                    }
                    try skip(depth: depth + 1)
                    skipWhitespace()
                    guard index < bytes.count else { throw error() }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == close else { throw error() }
                    index += 1
                    return
                }
            case UInt8(ascii: "\""): try skipString()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: _ = try numberText()
            }
        }

        /// Moves past a string token (at its opening quote), checking its escapes.
        mutating func skipString() throws(SyntaxError) {
            index += 1
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") { index += 1; return }
                if byte < 0x20 { throw error() }
                if byte != UInt8(ascii: "\\") { index += 1; continue }
                guard index + 1 < bytes.count else { throw error() }
                let escape = bytes[index + 1]
                index += 2
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"): break
                case UInt8(ascii: "u"): _ = try hex4()
                default: throw error()
                }
            }
            throw error()
        }

        mutating func literal(_ word: StaticString) throws(SyntaxError) {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw error() }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { throw error() }
            index += count
        }

        mutating func object(depth: Int) throws(SyntaxError) -> JSONValue {
            index += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error() }
                let key = try string()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error() }
                index += 1
                skipWhitespace()
                members[key] = try value(depth: depth + 1)
                skipWhitespace()
                guard index < bytes.count else { throw error() }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                guard bytes[index] == UInt8(ascii: "}") else { throw error() }
                index += 1
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws(SyntaxError) -> JSONValue {
            index += 1
            var values: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(values) }
            while true {
                skipWhitespace()
                values.append(try value(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else { throw error() }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                guard bytes[index] == UInt8(ascii: "]") else { throw error() }
                index += 1
                return .array(values)
            }
        }

        /// A string token (at its opening quote), unescaped. Raw bytes must be valid UTF-8 and
        /// not control characters; `\u` escapes must pair surrogates.
        mutating func string() throws(SyntaxError) -> String {
            index += 1
            let start = index
            // Fast path: no escapes (most strings); the UTF-8 is validated when decoded below.
            while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\"), bytes[index] >= 0x20 { index += 1 }
            guard index < bytes.count else { throw error() }
            if bytes[index] == UInt8(ascii: "\"") {
                index += 1
                guard let text = String(validating: bytes[start..<index - 1], as: UTF8.self) else { throw SyntaxError(offset: start) }
                return text
            }
            var utf8 = Array(bytes[start..<index])
            while bytes[index] != UInt8(ascii: "\"") {
                let byte = bytes[index]
                if byte < 0x20 { throw error() }
                if byte != UInt8(ascii: "\\") {
                    utf8.append(byte)
                    index += 1
                } else {
                    guard index + 1 < bytes.count else { throw error() }
                    let escape = bytes[index + 1]
                    index += 2
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { throw error() }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw error() }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(code) {
                            throw error()
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw error() }
                        UTF8.encode(scalar) { utf8.append($0) }
                    default: throw error()
                    }
                }
                guard index < bytes.count else { throw error() }
            }
            index += 1
            guard let text = String(validating: utf8, as: UTF8.self) else { throw SyntaxError(offset: start) }
            return text
        }

        mutating func hex4() throws(SyntaxError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw error() }
            var code: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error()
                }
                code = code << 4 | UInt32(digit)
                index += 1
            }
            return code
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, converted by `Double(_:)`.
        mutating func number() throws(SyntaxError) -> Double {
            let text = try numberText()
            guard let value = Double(String(decoding: bytes[text], as: UTF8.self)) else { throw SyntaxError(offset: text.lowerBound) }
            return value
        }

        /// Moves past a number token; its bytes.
        mutating func numberText() throws(SyntaxError) -> Range<Int> {
            let start = index
            func digits() -> Int {
                let from = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                return index - from
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { throw error() }
            if bytes[index] == UInt8(ascii: "0") { index += 1 } else if digits() == 0 { throw error() }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw error() }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw error() }
            }
            return start..<index
        }
    }
}
