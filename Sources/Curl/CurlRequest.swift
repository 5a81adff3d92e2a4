public import Foundation

/// An HTTP request for `CurlClient`. Every request has a deadline; there is no way to wait forever.
public struct CurlRequest: Sendable {
    /// HTTP methods.
    public enum Method: String, Sendable {
        case get = "GET", post = "POST", put = "PUT", delete = "DELETE", head = "HEAD", patch = "PATCH"
    }

    /// What is sent as the body.
    public enum Body: Sendable {
        /// No body.
        case empty
        /// Bytes held in memory.
        case bytes(Data)
        /// A file streamed from disk, never loaded whole.
        case file(path: String)
        /// `multipart/form-data`; file parts stream from disk.
        case multipart(MultipartForm)
    }

    /// Where the response body goes.
    public enum Destination: Sendable {
        /// Into `CurlResponse.body`, failing with `responseTooLarge` past `limit` bytes.
        case memory(limit: Int)
        /// Streamed into a file (created or truncated); removed again if the transfer fails.
        case file(path: String)
    }

    /// The method.
    public var method: Method
    /// The absolute URL.
    public var url: String
    /// Request headers, in order.
    public var headers: [(name: String, value: String)]
    /// The body.
    public var body: Body
    /// Where the response body goes (memory, up to 64 MiB, by default).
    public var destination: Destination
    /// The whole transfer's deadline, connection included.
    public var timeout: Duration
    /// The deadline for establishing the connection.
    public var connectTimeout: Duration

    /// A request; the defaults are a 30 s deadline and a 10 s connect deadline.
    public init(
        _ method: Method = .get, url: String, headers: [(name: String, value: String)] = [], body: Body = .empty,
        destination: Destination = .memory(limit: 64 << 20), timeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(10)
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.destination = destination
        self.timeout = timeout
        self.connectTimeout = connectTimeout
    }

    /// A request whose body is `value` as JSON, with `Content-Type: application/json`.
    public static func json(
        _ method: Method = .post, url: String, value: some Encodable, headers: [(name: String, value: String)] = [],
        timeout: Duration = .seconds(30)
    ) throws -> CurlRequest {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return CurlRequest(method, url: url, headers: headers + [("Content-Type", "application/json")], body: .bytes(data), timeout: timeout)
    }
}

/// A `multipart/form-data` body (RFC 7578).
public struct MultipartForm: Sendable {
    /// One form field.
    public struct Part: Sendable {
        /// What the part holds.
        public enum Content: Sendable {
            /// A text value.
            case text(String)
            /// Bytes in memory.
            case data(Data)
            /// A file streamed from disk.
            case file(path: String)
        }
        /// The field name.
        public var name: String
        /// The value.
        public var content: Content
        /// The file name announced to the server, if any.
        public var filename: String?
        /// The part's content type, if any.
        public var contentType: String?

        /// A part.
        public init(name: String, content: Content, filename: String? = nil, contentType: String? = nil) {
            self.name = name
            self.content = content
            self.filename = filename
            self.contentType = contentType
        }
    }

    /// The parts, in order.
    public var parts: [Part] = []

    /// An empty form.
    public init() {}

    /// Adds a text field.
    public mutating func append(name: String, value: String) {
        parts.append(Part(name: name, content: .text(value)))
    }

    /// Adds in-memory bytes as a file field.
    public mutating func append(name: String, data: Data, filename: String, contentType: String) {
        parts.append(Part(name: name, content: .data(data), filename: filename, contentType: contentType))
    }

    /// Adds a file from disk, streamed when sent.
    public mutating func append(name: String, filePath: String, filename: String? = nil, contentType: String) {
        parts.append(Part(name: name, content: .file(path: filePath), filename: filename, contentType: contentType))
    }
}
