internal import COpenSSL

/// A failure inside libcrypto or a malformed input to a signing primitive.
public struct SigningError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, as a stable code callers can switch on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A key of the wrong length or format.
        public static let invalidKey = Code("invalidKey")
        /// Text that is not valid hex or base64url.
        public static let invalidEncoding = Code("invalidEncoding")
        /// libcrypto reported an internal failure (the error queue is in `openSSLErrors`).
        public static let library = Code("library")
        public var description: String { name }
    }

    /// The failure's code.
    public let code: Code
    /// The operation that failed, e.g. `EVP_DigestVerifyInit`.
    public let operation: String
    /// libcrypto's error queue at the time of failure, oldest first (no key material).
    public let openSSLErrors: [String]

    public var description: String {
        let queue = openSSLErrors.isEmpty ? "" : " [" + openSSLErrors.joined(separator: "; ") + "]"
        return "SigningError(\(code), \(operation))\(queue)"
    }

    init(_ code: Code, operation: String, openSSLErrors: [String] = []) {
        self.code = code
        self.operation = operation
        self.openSSLErrors = openSSLErrors
    }

    /// Drains libcrypto's thread-local error queue into an error (NIOSSL's `buildErrorStack`).
    static func library(_ operation: String) -> SigningError {
        var errors: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            errors.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return SigningError(.library, operation: operation, openSSLErrors: errors)
    }
}
