/// Writes compact JSON text in one pass, members in the order given: for the few fixed shapes
/// the worker writes on every reply (a Bot API call's parameters, a queued message), where
/// `JSONEncoder`'s generic containers were a tenth of the worker's CPU (docs/benchmarks.md).
///
///     var json = JSONWriter()
///     json.object {
///         $0.member("chat_id", 42)
///         $0.member("text", "hi")
///     }
///     json.bytes  // {"chat_id":42,"text":"hi"}
///
/// Strings are escaped as `JSONValue.jsonBytes` escapes them; a nil optional member is left out.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Whether the value being written is not the first of its container (a comma goes first).
    private var needsComma = false

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    // MARK: Values

    public mutating func string(_ value: String) { separate(); JSONValue.writeString(value, to: &bytes) }
    public mutating func int(_ value: Int64) { separate(); bytes += String(value).utf8 }
    public mutating func bool(_ value: Bool) { separate(); bytes += (value ? "true" : "false").utf8 }
    public mutating func null() { separate(); bytes += "null".utf8 }

    public mutating func object(_ members: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
        members(&self)
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// An array of `elements`, each written by `element`.
    public mutating func array<Element>(_ elements: some Sequence<Element>, _ element: (inout JSONWriter, Element) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
        for value in elements { element(&self, value) }
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    // MARK: Object members

    /// A member's key; its value is whatever is written next.
    public mutating func key(_ name: String) {
        separate()
        JSONValue.writeString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func member(_ name: String, _ value: String?) { if let value { key(name); string(value) } }
    public mutating func member(_ name: String, _ value: Int64?) { if let value { key(name); int(value) } }
    public mutating func member(_ name: String, _ value: Bool?) { if let value { key(name); bool(value) } }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
    }
}
