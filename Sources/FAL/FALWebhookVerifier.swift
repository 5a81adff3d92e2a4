import Curl
public import Foundation
import Signing

/// Verifies incoming FAL webhooks against FAL's published keys (external-apis §2.2).
///
/// The JWKS is fetched from `jwksURL` and cached for up to 24 hours. When a signature fails
/// with cached keys, the set is refetched once (keys rotate) — at most once a minute, so
/// forged requests cannot make us hammer FAL. If the keys cannot be fetched, verification
/// fails closed.
public actor FALWebhookVerifier {
    private let jwksURL: String
    private let http = CurlClient()
    private let cacheDuration: TimeInterval
    private let refetchInterval: TimeInterval
    private let fetchTimeout: Duration
    private var cached: (keys: [Ed25519PublicKey], fetchedAt: Date)?
    /// How many times the JWKS was fetched (for metrics and tests).
    public private(set) var fetchCount = 0

    /// A verifier reading keys from `jwksURL`.
    public init(jwksURL: String, cacheDuration: TimeInterval = 24 * 3600, refetchInterval: TimeInterval = 60, fetchTimeout: Duration = .seconds(5)) {
        self.jwksURL = jwksURL
        self.fetchTimeout = fetchTimeout
        self.cacheDuration = cacheDuration
        self.refetchInterval = refetchInterval
    }

    /// Verifies one delivery; returns normally when it is authentic.
    /// - Throws: `FALWebhookError` (the caller answers 401).
    public func verify(_ headers: FALWebhookSignature.Headers, body: [UInt8], now: Date = Date()) async throws(FALWebhookError) {
        let fresh = cached.map { now.timeIntervalSince($0.fetchedAt) < cacheDuration } ?? false
        let keys = fresh ? cached!.keys : try await fetch(now: now)
        do {
            try FALWebhookSignature.verify(headers, body: body, keys: keys, now: now)
        } catch .badSignature where fresh && now.timeIntervalSince(cached!.fetchedAt) >= refetchInterval {
            // Maybe FAL rotated its keys since we fetched them: look once more.
            try FALWebhookSignature.verify(headers, body: body, keys: try await fetch(now: now), now: now)
        }
    }

    private func fetch(now: Date) async throws(FALWebhookError) -> [Ed25519PublicKey] {
        fetchCount += 1
        let response: CurlResponse
        do {
            response = try await http.execute(CurlRequest(.get, url: jwksURL, destination: .memory(limit: 1 << 20), timeout: fetchTimeout, connectTimeout: min(fetchTimeout, .seconds(3))))
        } catch {
            throw .keysUnavailable("\(error)")
        }
        guard response.status == 200 else { throw .keysUnavailable("JWKS answered HTTP \(response.status)") }
        let keys = try JWKS(json: response.body).keys
        cached = (keys, now)
        return keys
    }
}
