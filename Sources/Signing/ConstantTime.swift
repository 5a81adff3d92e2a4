internal import COpenSSL

/// Comparison whose running time does not depend on where two secrets differ.
public enum ConstantTime {
    /// Whether `a` and `b` are equal, compared in constant time for equal lengths
    /// (the length itself is not secret: webhook secrets and MACs have public lengths).
    public static func equals(_ a: some Sequence<UInt8>, _ b: some Sequence<UInt8>) -> Bool {
        let a = Array(a)
        let b = Array(b)
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return CRYPTO_memcmp(a, b, a.count) == 0
    }
}

/// Cryptographically secure random bytes from libcrypto's DRBG.
public enum SecureRandom {
    /// `count` random bytes.
    public static func bytes(count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        // RAND_bytes only fails if the DRBG cannot be seeded; carrying on would hand out predictable secrets.
        precondition(RAND_bytes(&out, Int32(count)) == 1, "RAND_bytes failed: \(SigningError.library("RAND_bytes"))")
        return out
    }

    /// A random token of `byteCount` bytes, base64url-encoded (for secrets and ids).
    public static func token(byteCount: Int = 32) -> String { Base64.urlEncode(bytes(count: byteCount)) }
}
