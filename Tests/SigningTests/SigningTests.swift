import Foundation
import Signing
import Testing

@Suite struct SHA256Tests {
    @Test func knownAnswers() {
        #expect(SHA256.hexDigest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hexDigest([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // FIPS 180-2 two-block message.
        #expect(SHA256.hexDigest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func streamingEqualsOneShot() {
        let message = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var hasher = SHA256()
        var index = 0
        for size in [1, 63, 64, 65, 1000, 4096] + Array(repeating: 9999, count: 20) where index < message.count {
            hasher.update(message[index..<min(message.count, index + size)])
            index += size
        }
        hasher.update(message[min(index, message.count)...])
        #expect(hasher.finalize() == SHA256.hash(message))
    }
}

@Suite struct HMACTests {
    /// RFC 4231 test cases 1–4, 6 and 7 (case 5 is a truncated output).
    @Test(arguments: [
        ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (Array(1...25), [UInt8](repeating: 0xcd, count: 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        ([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ([UInt8](repeating: 0xaa, count: 131),
         Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ] as [([UInt8], [UInt8], String)])
    func rfc4231(key: [UInt8], data: [UInt8], expected: String) {
        #expect(Hex.encode(HMACSHA256.authenticationCode(for: data, key: key)) == expected)
    }
}

@Suite struct Ed25519Tests {
    /// RFC 8032 §7.1 tests 1–3: secret key, public key, message, signature.
    static let vectors: [(String, String, String, String)] = [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]

    @Test(arguments: 0..<3)
    func rfc8032SignAndVerify(index: Int) throws {
        let (secret, publicHex, message, signature) = Self.vectors[index]
        let privateKey = try Ed25519PrivateKey(rawRepresentation: Hex.decode(secret))
        #expect(Hex.encode(privateKey.publicKey.rawRepresentation) == publicHex)
        #expect(Hex.encode(privateKey.signature(for: try Hex.decode(message))) == signature)
        let publicKey = try Ed25519PublicKey(rawRepresentation: Hex.decode(publicHex))
        #expect(publicKey.isValidSignature(try Hex.decode(signature), for: try Hex.decode(message)))
    }

    @Test(arguments: 0..<3)
    func tamperedInputsFail(index: Int) throws {
        let (_, publicHex, message, signature) = Self.vectors[index]
        let key = try Ed25519PublicKey(rawRepresentation: Hex.decode(publicHex))
        let sig = try Hex.decode(signature)
        let msg = try Hex.decode(message)
        for byte in [0, 31, 32, 63] {
            var bad = sig
            bad[byte] ^= 0x01
            #expect(!key.isValidSignature(bad, for: msg), "flipped signature byte \(byte)")
        }
        #expect(!key.isValidSignature(sig, for: msg + [0x00]), "extended message")
        #expect(!key.isValidSignature(sig.dropLast(), for: msg), "short signature")
        let other = try Ed25519PublicKey(rawRepresentation: Hex.decode(Self.vectors[(index + 1) % 3].1))
        #expect(!other.isValidSignature(sig, for: msg), "another key")
    }

    @Test func badKeysAreRejected() {
        #expect(throws: SigningError.self) { try Ed25519PublicKey(rawRepresentation: [UInt8](repeating: 1, count: 31)) }
        #expect(throws: SigningError.self) { try Ed25519PrivateKey(rawRepresentation: [UInt8](repeating: 1, count: 33)) }
    }

    @Test func freshKeysRoundTrip() {
        let key = Ed25519PrivateKey()
        let message = Array("request_id\nuser_id\n1732530000\nabc".utf8)
        #expect(key.publicKey.isValidSignature(key.signature(for: message), for: message))
        #expect(Ed25519PrivateKey().rawRepresentation != key.rawRepresentation)
    }
}

@Suite struct EncodingTests {
    @Test func hexRoundTrip() throws {
        let bytes = (0...255).map { UInt8($0) }
        let hex = Hex.encode(bytes)
        #expect(hex.hasPrefix("000102") && hex.hasSuffix("fdfeff") && hex.count == 512)
        #expect(try Hex.decode(hex) == bytes)
        #expect(try Hex.decode(hex.uppercased()) == bytes)
        #expect(throws: SigningError.self) { try Hex.decode("abc") }
        #expect(throws: SigningError.self) { try Hex.decode("zz") }
    }

    /// RFC 4648 §10 vectors.
    @Test func base64KnownAnswers() throws {
        let cases = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in cases {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(try Base64.decode(encoded) == Array(plain.utf8))
            #expect(Base64.urlEncode(Array(plain.utf8)) == encoded.replacingOccurrences(of: "=", with: ""))
        }
    }

    @Test func base64urlAlphabetAndRoundTrip() throws {
        #expect(Base64.urlEncode([0xfb, 0xff]) == "-_8")
        #expect(Base64.encode([0xfb, 0xff]) == "+/8=")
        #expect(try Base64.decode("-_8") == [0xfb, 0xff])
        for length in 0..<70 {
            let bytes = SecureRandom.bytes(count: length)
            #expect(try Base64.decode(Base64.urlEncode(bytes)) == bytes)
            #expect(try Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(throws: SigningError.self) { try Base64.decode("ab$d") }
        #expect(throws: SigningError.self) { try Base64.decode("abcde") }
        #expect(throws: SigningError.self) { try Base64.decode("ab=c") }
    }

    @Test func constantTimeEquality() {
        #expect(ConstantTime.equals(Array("secret-token".utf8), Array("secret-token".utf8)))
        #expect(!ConstantTime.equals(Array("secret-token".utf8), Array("secret-tokeN".utf8)))
        #expect(!ConstantTime.equals(Array("secret".utf8), Array("secret-token".utf8)))
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
    }

    @Test func randomBytesDiffer() {
        let a = SecureRandom.bytes(count: 32)
        let b = SecureRandom.bytes(count: 32)
        #expect(a.count == 32 && a != b)
        #expect(SecureRandom.token().count == 43)
    }
}
