public import Foundation
import Signing

/// AWS Signature Version 4, as MinIO and S3 accept it (reference/external-apis.md §6.2–6.3).
/// Pure: every test vector in §6.5 reproduces exactly.
public struct SigV4: Sendable {
    /// The access key id.
    public var accessKey: String
    /// The secret key.
    public var secretKey: String
    /// The region in the credential scope (`us-east-1` for MinIO unless configured).
    public var region: String
    /// The service in the credential scope (`s3`).
    public var service: String

    /// A signer.
    public init(accessKey: String, secretKey: String, region: String = "us-east-1", service: String = "s3") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.service = service
    }

    /// The SHA-256 of an empty payload.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// The payload-hash value for a body that is not signed.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// `YYYYMMDD'T'HHMMSS'Z'`.
    public static func amzDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: date)
    }

    /// The `Authorization` header value for a request whose `headers` (every one to be signed,
    /// including `host` and `x-amz-date`) and payload hash are given.
    public func authorization(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String, amzDate: String
    ) -> String {
        let (signedHeaders, signature) = sign(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash, amzDate: amzDate)
        return "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope(amzDate)), SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    /// A presigned URL's query (§6.3): the parameters to append, signature last. `host` is the
    /// `Host` header value the URL will be used with, port included.
    public func presignedQuery(method: String, host: String, path: String, expires: Int, amzDate: String, query: [(String, String)] = []) -> [(String, String)] {
        var parameters = query + [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "\(accessKey)/\(scope(amzDate))"),
            ("X-Amz-Date", amzDate),
            ("X-Amz-Expires", String(min(max(expires, 1), 604_800))),
            ("X-Amz-SignedHeaders", "host"),
        ]
        let (_, signature) = sign(method: method, path: path, query: parameters, headers: [("host", host)], payloadHash: SigV4.unsignedPayload, amzDate: amzDate)
        parameters.append(("X-Amz-Signature", signature))
        return parameters
    }

    /// The canonical request (exposed for tests against §6.5).
    public func canonicalRequest(method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String) -> (request: String, signedHeaders: String) {
        let canonicalHeaders = headers
            .map { (name: $0.0.lowercased(), value: $0.1.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")) }
            .sorted { $0.name < $1.name }
        let signedHeaders = canonicalHeaders.map(\.name).joined(separator: ";")
        let request = [
            method,
            SigV4.encodePath(path),
            SigV4.canonicalQuery(query),
            canonicalHeaders.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        return (request, signedHeaders)
    }

    private func sign(method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String, amzDate: String) -> (String, String) {
        let (request, signedHeaders) = canonicalRequest(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash)
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope(amzDate))\n\(SHA256.hexDigest(Array(request.utf8)))"
        return (signedHeaders, Hex.encode(HMACSHA256.authenticationCode(for: Array(stringToSign.utf8), key: signingKey(day: String(amzDate.prefix(8))))))
    }

    /// The derived key for one day (§6.2).
    public func signingKey(day: String) -> [UInt8] {
        let kDate = HMACSHA256.authenticationCode(for: Array(day.utf8), key: Array(("AWS4" + secretKey).utf8))
        let kRegion = HMACSHA256.authenticationCode(for: Array(region.utf8), key: kDate)
        let kService = HMACSHA256.authenticationCode(for: Array(service.utf8), key: kRegion)
        return HMACSHA256.authenticationCode(for: Array("aws4_request".utf8), key: kService)
    }

    private func scope(_ amzDate: String) -> String { "\(amzDate.prefix(8))/\(region)/\(service)/aws4_request" }

    /// URI-encodes every byte but `A-Z a-z 0-9 - _ . ~` (and `/` when `keepSlash`), uppercase hex.
    public static func encode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    /// S3's canonical URI: encoded once, `/` kept, never normalised; empty is `/`.
    static func encodePath(_ path: String) -> String { path.isEmpty ? "/" : encode(path, keepSlash: true) }

    /// Sorted by encoded name, then value; a key without a value gets `=`.
    static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { (encode($0.0, keepSlash: false), encode($0.1, keepSlash: false)) }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        return sorted.map { pair in pair.name + "=" + pair.value }.joined(separator: "&")
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
