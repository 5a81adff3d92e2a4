/// An S3 error response, or a failure to reach the server (then `code` is `transport`).
public struct ObjectStorageError: Error, CustomStringConvertible, Sendable, Equatable {
    /// S3's error code (`NoSuchKey`, `SignatureDoesNotMatch` …), or one of ours.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's text as S3 sends it.
        public let rawValue: String
        /// A code.
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public static let noSuchKey = Code("NoSuchKey")
        public static let noSuchBucket = Code("NoSuchBucket")
        public static let accessDenied = Code("AccessDenied")
        public static let invalidAccessKeyID = Code("InvalidAccessKeyId")
        public static let signatureDoesNotMatch = Code("SignatureDoesNotMatch")
        public static let requestTimeTooSkewed = Code("RequestTimeTooSkewed")
        public static let contentSHA256Mismatch = Code("XAmzContentSHA256Mismatch")
        public static let bucketAlreadyOwnedByYou = Code("BucketAlreadyOwnedByYou")
        /// The server could not be reached or the transfer broke (see `message`).
        public static let transport = Code("Transport")
        /// A file to upload could not be read, or a download could not be written.
        public static let fileIO = Code("FileIO")
        /// An error status with no parsable body (HEAD responses never have one).
        public static let unknown = Code("Unknown")
        public var description: String { rawValue }
    }

    /// The code.
    public var code: Code
    /// The HTTP status (0 for transport failures).
    public var status: Int
    /// S3's message (it names the bucket and key, never credentials).
    public var message: String
    /// S3's request id, for support.
    public var requestID: String?

    /// Whether retrying later may help (transport failures, 5xx, throttling, clock skew).
    public var isTransient: Bool { code == .transport || status >= 500 || status == 429 || code == .requestTimeTooSkewed }

    public var description: String { "ObjectStorageError(\(code), status: \(status), \(message))" }
}
