internal import COpenSSL

/// SHA-256, one-shot or streaming.
public struct SHA256: ~Copyable {
    /// The digest length in bytes.
    public static let byteCount = 32

    // One owner per EVP_MD_CTX: this non-copyable struct frees it in deinit.
    private let context: OpaquePointer

    /// Starts a streaming hash.
    public init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            // Only fails when the process is out of memory; nothing sensible to recover.
            fatalError("EVP_DigestInit_ex(SHA-256) failed: \(SigningError.library("EVP_DigestInit_ex"))")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    /// Feeds bytes into the hash.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        let contiguous: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            update(UnsafeRawBufferPointer(buffer))
        }
        if contiguous == nil {
            let array = Array(bytes)
            array.withUnsafeBytes { update($0) }
        }
    }

    /// Feeds raw memory into the hash.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0 else { return }
        EVP_DigestUpdate(context, buffer.baseAddress, buffer.count)
    }

    /// Finishes the hash and returns the 32-byte digest.
    public consuming func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: SHA256.byteCount)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return digest
    }

    /// The SHA-256 digest of `bytes`.
    public static func hash(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// The lowercase hex SHA-256 digest of `bytes` (the form S3 and FAL signatures use).
    public static func hexDigest(_ bytes: some Sequence<UInt8>) -> String {
        Hex.encode(hash(bytes))
    }
}

/// MD5, only because S3's DeleteObjects requires a `Content-MD5` header; never for security.
public enum MD5 {
    /// The 16-byte digest of `bytes`.
    public static func hash(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        let input = Array(bytes)
        var digest = [UInt8](repeating: 0, count: 16)
        var length: UInt32 = 0
        precondition(EVP_Digest(input, input.count, &digest, &length, EVP_md5(), nil) == 1, "EVP_Digest(MD5) failed")
        return digest
    }
}
