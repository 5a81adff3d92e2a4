public import Foundation

/// An HTTP response. Any status is a response, not an error: transport failures are `CurlError`.
public struct CurlResponse: Sendable {
    /// The HTTP status code.
    public var status: Int
    /// The response headers, in order.
    public var headers: [(name: String, value: String)]
    /// The body, when the destination was memory (empty for a file destination).
    public var body: Data
    /// Whether the request went over a connection that was already open.
    public var reusedConnection: Bool
    /// The whole transfer's duration.
    public var duration: Duration

    /// The first header named `name`, compared case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// Whether the status is 2xx.
    public var isSuccess: Bool { (200..<300).contains(status) }

    /// Decodes the body as JSON.
    public func decode<T: Decodable>(_ type: T.Type, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        try decoder.decode(T.self, from: body)
    }
}

/// A transport failure: the request got no HTTP response, or its body could not be handled.
///
/// `description` names the code and curl's message, never the URL (Telegram's contains the bot token).
public struct CurlError: Error, CustomStringConvertible, Sendable {
    /// What failed.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The deadline passed.
        public static let timedOut = Code("timedOut")
        /// Nothing accepted the connection.
        public static let couldNotConnect = Code("couldNotConnect")
        /// The host name did not resolve.
        public static let couldNotResolveHost = Code("couldNotResolveHost")
        /// The connection broke while sending or receiving.
        public static let connectionLost = Code("connectionLost")
        /// TLS failed.
        public static let tls = Code("tls")
        /// The response exceeded the in-memory limit.
        public static let responseTooLarge = Code("responseTooLarge")
        /// A body file could not be read or a destination file written.
        public static let fileIO = Code("fileIO")
        /// The URL or an option was rejected before sending.
        public static let invalidRequest = Code("invalidRequest")
        /// Any other libcurl failure; see `curlCode`.
        public static let other = Code("other")
        public var description: String { name }
    }

    /// The failure's kind.
    public var code: Code
    /// libcurl's CURLcode.
    public var curlCode: Int
    /// libcurl's error text (it names hosts and ports, not URLs).
    public var message: String

    /// Whether trying again later may succeed (the peer may come back).
    public var isTransient: Bool { [.timedOut, .couldNotConnect, .connectionLost, .couldNotResolveHost].contains(code) }

    public var description: String { "CurlError(\(code), curl: \(curlCode), \(message))" }
}
