public import Foundation
public import JSON
public import Signing

/// The JSON FAL posts to our webhook when a queued request ends (external-apis §2.1).
public struct FALWebhookPayload: Codable, Sendable, Equatable {
    /// `OK` or `ERROR`.
    public enum Status: String, Codable, Sendable { case ok = "OK", error = "ERROR" }

    /// The request this result belongs to.
    public var requestID: String
    /// FAL's gateway id (not always present).
    public var gatewayRequestID: String?
    /// Whether the request succeeded.
    public var status: Status
    /// On ERROR: a message (`"Invalid status code: 422"`). Null or absent on OK.
    public var error: String?
    /// The model's output on OK, error details on ERROR; null when it could not be serialised.
    public var payload: JSONValue?
    /// Set when `payload` could not be serialised.
    public var payloadError: JSONValue?

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id", gatewayRequestID = "gateway_request_id", status, error, payload, payloadError = "payload_error"
    }

    /// A result built by polling (reconciliation), shaped like the webhook would have been.
    public init(requestID: String, status: Status, error: String? = nil, payload: JSONValue? = nil) {
        self.requestID = requestID
        self.status = status
        self.error = error
        self.payload = payload
    }
}

/// Verifies FAL's webhook signatures exactly as external-apis §2.2 describes. Pure: the keys and
/// "now" are passed in, so every rule is tested without a network.
public enum FALWebhookSignature {
    /// The four headers FAL signs with.
    public struct Headers: Sendable, Equatable {
        public var requestID: String
        public var userID: String
        public var timestamp: String
        public var signature: String

        /// Reads `X-Fal-Webhook-*` (names compared case-insensitively by the caller's lookup).
        /// - Throws: `FALWebhookError.missingHeader` naming the first one absent.
        public init(lookup: (String) -> String?) throws(FALWebhookError) {
            func require(_ name: String) throws(FALWebhookError) -> String {
                guard let value = lookup(name), !value.isEmpty else { throw .missingHeader(name) }
                return value
            }
            requestID = try require("X-Fal-Webhook-Request-Id")
            userID = try require("X-Fal-Webhook-User-Id")
            timestamp = try require("X-Fal-Webhook-Timestamp")
            signature = try require("X-Fal-Webhook-Signature")
        }

        /// Headers from values.
        public init(requestID: String, userID: String, timestamp: String, signature: String) {
            self.requestID = requestID
            self.userID = userID
            self.timestamp = timestamp
            self.signature = signature
        }
    }

    /// FAL's tolerance for clock differences: ±5 minutes.
    public static let maximumSkew: TimeInterval = 300

    /// The signed message: `request_id \n user_id \n timestamp \n hex(sha256(raw body))`.
    public static func message(_ headers: Headers, body: some Sequence<UInt8>) -> [UInt8] {
        Array("\(headers.requestID)\n\(headers.userID)\n\(headers.timestamp)\n\(SHA256.hexDigest(body))".utf8)
    }

    /// Checks the timestamp window and that any of `keys` signed the message.
    /// - Throws: `FALWebhookError` saying which rule failed.
    public static func verify(_ headers: Headers, body: [UInt8], keys: [Ed25519PublicKey], now: Date) throws(FALWebhookError) {
        guard let seconds = Int64(headers.timestamp) else { throw .badTimestamp }
        guard abs(now.timeIntervalSince1970 - Double(seconds)) <= maximumSkew else { throw .staleTimestamp }
        guard headers.signature.count == 128, let signature = try? Hex.decode(headers.signature) else { throw .badSignature }
        let message = message(headers, body: body)
        // Try every key: FAL rotates them.
        guard keys.contains(where: { $0.isValidSignature(signature, for: message) }) else { throw .badSignature }
    }

    /// The headers for a signed delivery (the Sandbox's FAL signs its webhooks this way).
    public static func sign(requestID: String, userID: String, timestamp: Int64, body: [UInt8], key: Ed25519PrivateKey) -> Headers {
        var headers = Headers(requestID: requestID, userID: userID, timestamp: String(timestamp), signature: "")
        headers.signature = Hex.encode(key.signature(for: message(headers, body: body)))
        return headers
    }
}

/// Why a FAL webhook was refused. The server answers 401 to all of them.
public enum FALWebhookError: Error, Equatable, Sendable, CustomStringConvertible {
    case missingHeader(String)
    case badTimestamp
    case staleTimestamp
    case badSignature
    /// The JWKS could not be fetched: fail closed.
    case keysUnavailable(String)

    public var description: String {
        switch self {
        case .missingHeader(let name): "missing header \(name)"
        case .badTimestamp: "timestamp is not a number of seconds"
        case .staleTimestamp: "timestamp outside ±300 s"
        case .badSignature: "signature does not verify with any published key"
        case .keysUnavailable(let reason): "signing keys unavailable: \(reason)"
        }
    }
}

/// A JSON Web Key Set of Ed25519 keys (`kty: OKP`, `crv: Ed25519`, base64url `x`).
public struct JWKS: Sendable, Equatable {
    /// The usable keys, in order; keys of other types are skipped.
    public var keys: [Ed25519PublicKey]

    /// Parses a JWKS document.
    /// - Throws: `FALWebhookError.keysUnavailable` when it is not JSON or holds no Ed25519 key.
    public init(json: Data) throws(FALWebhookError) {
        struct Document: Decodable {
            struct Key: Decodable { var kty: String?; var crv: String?; var x: String? }
            var keys: [Key]
        }
        guard let document = try? JSONDecoder().decode(Document.self, from: json) else { throw .keysUnavailable("JWKS is not valid JSON") }
        keys = document.keys.compactMap { key in
            guard key.kty == "OKP", key.crv == "Ed25519", let x = key.x, let raw = try? Base64.decode(x) else { return nil }
            return try? Ed25519PublicKey(rawRepresentation: raw)
        }
        guard !keys.isEmpty else { throw .keysUnavailable("JWKS holds no Ed25519 key") }
    }

    /// A set from keys.
    public init(keys: [Ed25519PublicKey]) { self.keys = keys }

    /// The JWKS document for `keys` (the Sandbox serves its key this way).
    public static func document(for keys: [Ed25519PublicKey]) -> String {
        "{\"keys\":[" + keys.map { "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"\(Base64.urlEncode($0.rawRepresentation))\"}" }.joined(separator: ",") + "]}"
    }
}
