import FAL
import Foundation
import Hummingbird
import Signing
import Synchronization
import TestSupport
import Testing

/// A loopback JWKS endpoint whose keys the test can rotate, counting fetches.
final class JWKSServer: Sendable {
    let document = Mutex<String?>(nil)  // nil: answer 503
    let hits = Atomic<Int>(0)

    func run<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        router.get(".well-known/jwks.json") { _, _ -> Response in
            self.hits.add(1, ordering: .relaxed)
            guard let json = self.document.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
        }
        return try await LoopbackHTTPServer.run(router) { base in try await body(base + "/.well-known/jwks.json") }
    }
}

@Suite struct FALWebhookVerifierTests {
    @Test func cachesRefetchesOnRotationAndFailsClosed() async throws {
        let body = try Vector.fixture("webhook-training-ok.json")
        let server = JWKSServer()
        server.document.withLock { $0 = Vector.jwks }
        try await server.run { url in
            let verifier = FALWebhookVerifier(jwksURL: url, refetchInterval: 0, fetchTimeout: .seconds(30))  // generous: loaded test machines
            try await verifier.verify(Vector.headers, body: body, now: Vector.now)
            try await verifier.verify(Vector.headers, body: body, now: Vector.now)
            #expect(await verifier.fetchCount == 1, "the second delivery used the cached keys")

            // FAL rotates to a new key: the first delivery signed with it refetches once.
            let newKey = Ed25519PrivateKey()
            server.document.withLock { $0 = JWKS.document(for: [newKey.publicKey]) }
            let rotated = FALWebhookSignature.sign(requestID: "r-2", userID: "user-abc", timestamp: 1_735_689_650, body: body, key: newKey)
            try await verifier.verify(rotated, body: body, now: Vector.now)
            #expect(await verifier.fetchCount == 2)

            // A forgery refetches (interval 0 here) and still fails.
            let forged = FALWebhookSignature.sign(requestID: "r-3", userID: "user-abc", timestamp: 1_735_689_650, body: body, key: Ed25519PrivateKey())
            await #expect(throws: FALWebhookError.badSignature) { try await verifier.verify(forged, body: body, now: Vector.now) }

            // After 24 h the cache is stale; if FAL's keys cannot be fetched, nothing verifies.
            server.document.withLock { $0 = nil }
            let tomorrow = Vector.now.addingTimeInterval(24 * 3600 + 1)
            let late = FALWebhookSignature.sign(requestID: "r-4", userID: "user-abc", timestamp: Int64(tomorrow.timeIntervalSince1970), body: body, key: newKey)
            await #expect { try await verifier.verify(late, body: body, now: tomorrow) } throws: {
                if case .keysUnavailable = $0 as? FALWebhookError { return true } else { return false }
            }
        }
        #expect(server.hits.load(ordering: .relaxed) >= 4)
    }

    @Test func refetchIsRateLimited() async throws {
        let body = try Vector.fixture("webhook-training-ok.json")
        let server = JWKSServer()
        server.document.withLock { $0 = Vector.jwks }
        try await server.run { url in
            let verifier = FALWebhookVerifier(jwksURL: url, fetchTimeout: .seconds(30))  // default: at most one refetch a minute
            try await verifier.verify(Vector.headers, body: body, now: Vector.now)
            for index in 0..<20 {
                let forged = FALWebhookSignature.sign(requestID: "f-\(index)", userID: "u", timestamp: 1_735_689_650, body: body, key: Ed25519PrivateKey())
                await #expect(throws: FALWebhookError.badSignature) { try await verifier.verify(forged, body: body, now: Vector.now) }
            }
            #expect(await verifier.fetchCount == 1, "forged requests never made us refetch within the minute")
        }
    }

    @Test func unreachableJWKSFailsClosed() async throws {
        let verifier = FALWebhookVerifier(jwksURL: "http://127.0.0.1:1/.well-known/jwks.json")
        let body = try Vector.fixture("webhook-training-ok.json")
        await #expect { try await verifier.verify(Vector.headers, body: body, now: Vector.now) } throws: {
            if case .keysUnavailable = $0 as? FALWebhookError { return true } else { return false }
        }
    }
}
