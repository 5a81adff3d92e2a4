internal import COpenSSL

/// An Ed25519 public key (RFC 8032), for verifying signatures such as FAL's webhooks.
public struct Ed25519PublicKey: Sendable, Equatable {
    /// The raw 32-byte key.
    public let rawRepresentation: [UInt8]

    /// Wraps a raw 32-byte public key.
    /// - Throws: `SigningError.Code.invalidKey` if the key is not 32 bytes or libcrypto rejects it.
    public init(rawRepresentation: some Sequence<UInt8>) throws(SigningError) {
        let raw = Array(rawRepresentation)
        guard raw.count == 32 else { throw SigningError(.invalidKey, operation: "Ed25519PublicKey(count: \(raw.count))") }
        // Parse once here so a bad key fails at load time, not at the first webhook.
        _ = try EVPKey(publicEd25519: raw)
        self.rawRepresentation = raw
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` under this key.
    /// Any malformed input simply fails verification.
    public func isValidSignature(_ signature: some Sequence<UInt8>, for message: some Sequence<UInt8>) -> Bool {
        let signature = Array(signature)
        guard signature.count == 64, let key = try? EVPKey(publicEd25519: rawRepresentation) else { return false }
        return key.verify(signature: signature, message: Array(message))
    }
}

/// An Ed25519 private key: the Sandbox signs its FAL webhooks with one.
public struct Ed25519PrivateKey: Sendable {
    /// The raw 32-byte seed.
    public let rawRepresentation: [UInt8]
    /// The matching public key.
    public let publicKey: Ed25519PublicKey

    /// A new random key.
    public init() {
        // SecureRandom cannot fail short of a broken libcrypto, and a 32-byte seed is always valid.
        try! self.init(rawRepresentation: SecureRandom.bytes(count: 32))
    }

    /// Loads a key from its raw 32-byte seed.
    /// - Throws: `SigningError.Code.invalidKey` if the seed is not 32 bytes.
    public init(rawRepresentation: some Sequence<UInt8>) throws(SigningError) {
        let raw = Array(rawRepresentation)
        guard raw.count == 32 else { throw SigningError(.invalidKey, operation: "Ed25519PrivateKey(count: \(raw.count))") }
        let key = try EVPKey(privateEd25519: raw)
        self.rawRepresentation = raw
        self.publicKey = try Ed25519PublicKey(rawRepresentation: key.rawPublicKey())
    }

    /// The 64-byte signature of `message`.
    public func signature(for message: some Sequence<UInt8>) -> [UInt8] {
        // The key was validated in init, so signing cannot fail for lack of a key.
        let key = try! EVPKey(privateEd25519: rawRepresentation)
        return key.sign(message: Array(message))
    }
}

/// The single owner of one `EVP_PKEY`; freed in deinit. Used only inside one call, never shared.
private final class EVPKey {
    let pointer: OpaquePointer

    init(publicEd25519 raw: [UInt8]) throws(SigningError) {
        guard let key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, raw, raw.count) else {
            throw SigningError.library("EVP_PKEY_new_raw_public_key")
        }
        pointer = key
    }

    init(privateEd25519 raw: [UInt8]) throws(SigningError) {
        guard let key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, raw, raw.count) else {
            throw SigningError.library("EVP_PKEY_new_raw_private_key")
        }
        pointer = key
    }

    deinit { EVP_PKEY_free(pointer) }

    func rawPublicKey() throws(SigningError) -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: 32)
        var length = raw.count
        guard EVP_PKEY_get_raw_public_key(pointer, &raw, &length) == 1, length == 32 else {
            throw SigningError.library("EVP_PKEY_get_raw_public_key")
        }
        return raw
    }

    func verify(signature: [UInt8], message: [UInt8]) -> Bool {
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        // Ed25519 is a one-shot scheme: no digest is named, EVP_DigestVerify takes the whole message.
        guard EVP_DigestVerifyInit(context, nil, nil, nil, pointer) == 1 else {
            ERR_clear_error()
            return false
        }
        let ok = EVP_DigestVerify(context, signature, signature.count, message, message.count) == 1
        if !ok { ERR_clear_error() }
        return ok
    }

    func sign(message: [UInt8]) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(context) }
        var signature = [UInt8](repeating: 0, count: 64)
        var length = signature.count
        guard EVP_DigestSignInit(context, nil, nil, nil, pointer) == 1,
              EVP_DigestSign(context, &signature, &length, message, message.count) == 1, length == 64
        else { fatalError("Ed25519 signing failed: \(SigningError.library("EVP_DigestSign"))") }
        return signature
    }
}
