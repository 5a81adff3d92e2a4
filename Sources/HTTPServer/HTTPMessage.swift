/// One header field of a request; the name lowercased.
public struct HTTPField: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// One HTTP/1.1 request as the server hands it over: the head, parsed, and the whole body.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The target's path, as sent (no percent-decoding: routes are fixed ASCII paths).
    public var path: String
    /// The raw query after `?`, if any.
    public var query: Substring?
    /// Header fields in arrival order.
    public var headers: [HTTPField]
    public var body: [UInt8]

    public init(method: String, path: String, query: Substring? = nil, headers: [HTTPField] = [], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The first field named `name` (any case).
    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name == lowered }?.value
    }

    /// Every query parameter in order, percent-decoded (`+` is a space).
    public var queryParameters: [(name: String, value: String)] {
        guard let query else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (Self.percentDecoded(parts[0]), parts.count > 1 ? Self.percentDecoded(parts[1]) : "")
        }
    }

    /// The first query parameter named `name`, percent-decoded (`+` is a space).
    public func queryParameter(_ name: String) -> String? { queryParameters.first { $0.name == name }?.value }

    static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                let high = iterator.next().flatMap(hexValue), low = high == nil ? nil : iterator.next().flatMap(hexValue)
                if let high, let low { bytes.append(high << 4 | low) } else { bytes.append(UInt8(ascii: "%")) }
            default: bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A response: status, extra header fields, body. `Content-Length`, `Date` and `Connection`
/// are the server's to write.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A `text/plain` response.
    public static func text(_ status: Int, _ body: String = "", headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers, body: Array(body.utf8))
    }

    /// The reason phrase for the status line.
    static func reason(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 417: "Expectation Failed"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }

    /// The bytes on the wire: status line, fields, the body's length, then the body.
    func serialized(date: String, close: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\nContent-Length: \(body.count)\r\nDate: \(date)\r\n"
        if close { head += "Connection: close\r\n" }
        for field in headers { head += "\(field.name): \(field.value)\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        bytes += body
        return bytes
    }
}

/// What the server asks of an application. Both calls run on an event-loop thread and must not
/// block it: answer at once, or start asynchronous work and call `respond` when it is done.
public protocol HTTPResponder: Sendable {
    /// The largest body accepted for a request with this head; a larger `Content-Length` is
    /// answered 413 before the body is read.
    func bodyLimit(method: String, path: String) -> Int

    /// Handles `request`. `respond` must be called exactly once, from any thread.
    func respond(to request: HTTPRequest, _ respond: @escaping @Sendable (HTTPResponse) -> Void)

    /// Told about a request the server answered itself (413, 400 for a malformed head, …);
    /// `path` is nil when the head could not be read.
    func refused(status: Int, path: String?)
}

extension HTTPResponder {
    public func refused(status: Int, path: String?) {}
}
