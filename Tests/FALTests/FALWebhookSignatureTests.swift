import FAL
import Foundation
import JSON
import Signing
import Testing

/// The self-generated vector of external-apis §2.2 (not FAL's key; tests only).
enum Vector {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/fal")
    static func fixture(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: fixtures.appendingPathComponent(name))) }
    static let seed = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    static let jwks = #"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"}]}"#
    static let headers = FALWebhookSignature.Headers(
        requestID: "123e4567-e89b-12d3-a456-426614174000", userID: "user-abc", timestamp: "1735689600",
        signature: "ffc7275a9e546fc63e0b36a002e4ae4d438e2cf29520140458b6aa7e873df639315584a2ab5ce68823493e931d663e4540cabe2050187bf5b3111b91791b290c"
    )
    static let now = Date(timeIntervalSince1970: 1_735_689_600 + 100)
    static func key() throws -> Ed25519PublicKey { try JWKS(json: Data(jwks.utf8)).keys[0] }
}

@Suite struct FALWebhookSignatureTests {
    @Test func referenceVectorVerifies() throws {
        let body = try Vector.fixture("webhook-training-ok.json")
        #expect(body.count == 477)
        #expect(SHA256.hexDigest(body) == "03f996e5922a798936a5b3acd41efcd1418e9a4c71a7c037901cf30a6a9d9458")
        #expect(Hex.encode(try Vector.key().rawRepresentation) == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
        #expect(String(decoding: FALWebhookSignature.message(Vector.headers, body: body), as: UTF8.self)
            == "123e4567-e89b-12d3-a456-426614174000\nuser-abc\n1735689600\n03f996e5922a798936a5b3acd41efcd1418e9a4c71a7c037901cf30a6a9d9458")
        try FALWebhookSignature.verify(Vector.headers, body: body, keys: [Vector.key()], now: Vector.now)
        // Our signer reproduces FAL's signature from the same seed (Ed25519 is deterministic).
        let signer = try Ed25519PrivateKey(rawRepresentation: Hex.decode(Vector.seed))
        #expect(FALWebhookSignature.sign(requestID: Vector.headers.requestID, userID: "user-abc", timestamp: 1_735_689_600, body: body, key: signer) == Vector.headers)
    }

    @Test func flippingAnyBodyByteFails() throws {
        let body = try Vector.fixture("webhook-training-ok.json")
        let key = try Vector.key()
        for index in body.indices {
            var tampered = body
            tampered[index] ^= 0x01
            #expect(throws: FALWebhookError.badSignature, "byte \(index)") { try FALWebhookSignature.verify(Vector.headers, body: tampered, keys: [key], now: Vector.now) }
        }
        #expect(throws: FALWebhookError.badSignature) { try FALWebhookSignature.verify(Vector.headers, body: body + [0x0a], keys: [key], now: Vector.now) }
    }

    @Test func flippingHeadersOrSignatureFails() throws {
        let body = try Vector.fixture("webhook-training-ok.json")
        let key = try Vector.key()
        var changed: [FALWebhookSignature.Headers] = []
        for field in 0..<3 {
            var headers = Vector.headers
            switch field {
            case 0: headers.requestID = "123e4567-e89b-12d3-a456-426614174001"
            case 1: headers.userID = "user-abd"
            default: headers.timestamp = "1735689601"
            }
            changed.append(headers)
        }
        for index in stride(from: 0, to: 128, by: 7) {
            var headers = Vector.headers
            var chars = Array(headers.signature)
            chars[index] = chars[index] == "0" ? "1" : "0"
            headers.signature = String(chars)
            changed.append(headers)
        }
        for headers in changed {
            #expect(throws: FALWebhookError.badSignature) { try FALWebhookSignature.verify(headers, body: body, keys: [key], now: Vector.now) }
        }
        var short = Vector.headers
        short.signature = String(short.signature.dropLast(2))
        #expect(throws: FALWebhookError.badSignature) { try FALWebhookSignature.verify(short, body: body, keys: [key], now: Vector.now) }
    }

    @Test func timestampWindowIsFiveMinutes() throws {
        let body = try Vector.fixture("webhook-training-ok.json")
        let key = try Vector.key()
        try FALWebhookSignature.verify(Vector.headers, body: body, keys: [key], now: Date(timeIntervalSince1970: 1_735_689_600 + 300))
        try FALWebhookSignature.verify(Vector.headers, body: body, keys: [key], now: Date(timeIntervalSince1970: 1_735_689_600 - 300))
        #expect(throws: FALWebhookError.staleTimestamp) { try FALWebhookSignature.verify(Vector.headers, body: body, keys: [key], now: Date(timeIntervalSince1970: 1_735_689_600 + 301)) }
        #expect(throws: FALWebhookError.staleTimestamp) { try FALWebhookSignature.verify(Vector.headers, body: body, keys: [key], now: Date(timeIntervalSince1970: 1_735_689_600 - 301)) }
        var text = Vector.headers
        text.timestamp = "2025-01-01T00:00:00Z"
        #expect(throws: FALWebhookError.badTimestamp) { try FALWebhookSignature.verify(text, body: body, keys: [key], now: Vector.now) }
    }

    @Test func missingHeadersAreNamed() {
        let all = ["X-Fal-Webhook-Request-Id": "r", "X-Fal-Webhook-User-Id": "u", "X-Fal-Webhook-Timestamp": "1", "X-Fal-Webhook-Signature": "s"]
        for name in all.keys {
            var headers = all
            headers[name] = nil
            #expect(throws: FALWebhookError.missingHeader(name)) { _ = try FALWebhookSignature.Headers(lookup: { headers[$0] }) }
        }
    }

    @Test func keyRotationAcceptsAnyPublishedKey() throws {
        let body = try Vector.fixture("webhook-training-ok.json")
        let other = Ed25519PrivateKey().publicKey
        let set = try JWKS(json: Data(JWKS.document(for: [other, try Vector.key()]).utf8))
        #expect(set.keys.count == 2)
        try FALWebhookSignature.verify(Vector.headers, body: body, keys: set.keys, now: Vector.now)
        #expect(throws: FALWebhookError.badSignature) { try FALWebhookSignature.verify(Vector.headers, body: body, keys: [other], now: Vector.now) }
    }

    @Test func jwksParsingSkipsForeignKeysAndRejectsJunk() throws {
        let mixed = #"{"keys":[{"kty":"RSA","n":"x","e":"AQAB"},{"kty":"OKP","crv":"X25519","x":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"},{"kty":"OKP","crv":"Ed25519","x":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg","kid":"k1"}]}"#
        #expect(try JWKS(json: Data(mixed.utf8)).keys == [try Vector.key()])
        #expect(throws: FALWebhookError.self) { try JWKS(json: Data("not json".utf8)) }
        #expect(throws: FALWebhookError.self) { try JWKS(json: Data(#"{"keys":[]}"#.utf8)) }
    }

    @Test func payloadsDecode() throws {
        let decoder = JSONDecoder()
        let ok = try decoder.decode(FALWebhookPayload.self, from: Data(try Vector.fixture("webhook-training-ok.json")))
        #expect(ok.status == .ok && ok.error == nil)
        #expect(ok.payload?["diffusers_lora_file"]?["url"]?.stringValue == "https://v3.fal.media/files/x/lora.safetensors")
        let failed = try decoder.decode(FALWebhookPayload.self, from: Data(try Vector.fixture("webhook-error-422.json")))
        #expect(failed.status == .error && failed.error == "Invalid status code: 422")
        #expect(failed.payload?["detail"] != nil)
        let unserialisable = try decoder.decode(FALWebhookPayload.self, from: Data(try Vector.fixture("webhook-payload-error.json")))
        #expect(unserialisable.payload == nil && unserialisable.payloadError?["message"]?.stringValue == "Failed to serialize the result")
    }
}
