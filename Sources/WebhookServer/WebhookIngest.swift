import Foundation
public import JobQueue
import Signing

/// The pure part of the two webhooks: from an authenticated raw body to the job that stores it,
/// or the reason it is refused. No I/O, so every rule is unit-tested directly.
public enum WebhookIngest {
    public static let telegramKind = "telegram.update"
    public static let falKind = "fal.result"

    /// Why a webhook is refused, with its HTTP status.
    public enum Refusal: Error, Equatable, Sendable {
        case unauthorized(String)
        case malformed(String)

        public var status: Int {
            switch self {
            case .unauthorized: 401
            case .malformed: 400
            }
        }

        public var reason: String {
            switch self {
            case .unauthorized(let reason), .malformed(let reason): reason
            }
        }
    }

    /// Compares the secret header with the configured secret in constant time.
    public static func telegramSecretMatches(_ header: String?, secret: String) -> Bool {
        guard let header else { return false }
        return ConstantTime.equals(Array(header.utf8), Array(secret.utf8))
    }

    /// The `telegram.update` job for a raw update: unique key `update_id` (redeliveries are
    /// dropped by the database), serial key its chat or user (one chat's updates run in order).
    /// Update kinds we do not model are stored too; the worker ignores them.
    public static func telegramJob(body: [UInt8]) throws(Refusal) -> JobRequest {
        // One pass, no objects (this is the hot path). An update whose kind has an unexpected
        // shape is still stored, without ordering, rather than refused: Telegram would redeliver
        // it forever.
        guard let scanned = UpdateScanner.scan(body) else { throw .malformed("not a well-formed JSON object") }
        guard let updateID = scanned.updateID else { throw .malformed("no integer update_id") }
        return JobRequest(kind: telegramKind, payload: Data(body), maxAttempts: 10, uniqueKey: "tg:update:\(updateID)", serialKey: scanned.serialKey)
    }

    private struct FALEnvelope: Decodable { var request_id: String; var status: String }

    /// The `fal.result` job for a verified FAL webhook, keyed by `request_id` so a redelivery is
    /// dropped. The header's request id must be the body's (the signature covers the header).
    /// `ref` is our own reference from the webhook URL we gave FAL (`?ref=train:<avatar>:<attempt>`):
    /// it lets the worker match a result whose request id it never managed to record. The payload
    /// is `{"ref": …, "webhook": <the raw body>}`.
    public static func falJob(body: [UInt8], headerRequestID: String, ref: String? = nil) throws(Refusal) -> JobRequest {
        guard let envelope = try? JSONDecoder().decode(FALEnvelope.self, from: Data(body)) else {
            throw .malformed("not a FAL webhook payload (request_id, status)")
        }
        guard envelope.request_id == headerRequestID else { throw .unauthorized("request id in the body differs from the signed header") }
        let reference = ref.flatMap(validReference).map { "\"\($0)\"" } ?? "null"
        let payload = Array(#"{"ref":\#(reference),"webhook":"#.utf8) + body + Array("}".utf8)
        return JobRequest(kind: falKind, payload: Data(payload), maxAttempts: 20, uniqueKey: "fal:result:\(envelope.request_id)")
    }

    /// A reference we could have written: short, of `a-z 0-9 : -` only (nothing to escape).
    static func validReference(_ ref: String) -> String? {
        guard (1...120).contains(ref.utf8.count), ref.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x3A || $0 == 0x2D }) else { return nil }
        return ref
    }
}
