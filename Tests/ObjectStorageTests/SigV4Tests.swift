import Foundation
import ObjectStorage
import Signing
import Testing

/// Every vector of reference/external-apis.md §6.5, reproduced exactly.
@Suite struct SigV4Tests {
    static let suite = SigV4(accessKey: "AKIDEXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "service")
    static let s3 = SigV4(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "s3")
    static let minio = SigV4(accessKey: "minioadmin", secretKey: "minioadmin")

    @Test func derivedSigningKey() {
        #expect(Hex.encode(Self.suite.signingKey(day: "20150830")) == "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75")
    }

    @Test(arguments: [
        ("GET", "/", [(String, String)](), "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("GET", "/", [("Param2", "value2"), ("Param1", "value1")], "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        ("POST", "/", [], "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ("GET", "/ሴ", [], "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ])
    func awsSuite(method: String, path: String, query: [(String, String)], signature: String) {
        let header = Self.suite.authorization(
            method: method, path: path, query: query, headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
            payloadHash: SigV4.emptyPayloadHash, amzDate: "20150830T123600Z"
        )
        #expect(header == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=\(signature)")
    }

    @Test func s3GetWithRange() {
        let header = Self.s3.authorization(
            method: "GET", path: "/test.txt", query: [],
            headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"), ("x-amz-content-sha256", SigV4.emptyPayloadHash), ("x-amz-date", "20130524T000000Z")],
            payloadHash: SigV4.emptyPayloadHash, amzDate: "20130524T000000Z"
        )
        #expect(header.hasSuffix("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
    }

    @Test func s3PutWithSpecialCharacterKey() {
        let hash = SHA256.hexDigest(Array("Welcome to Amazon S3.".utf8))
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let header = Self.s3.authorization(
            method: "PUT", path: "/test$file.text", query: [],
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-content-sha256", hash),
                      ("x-amz-date", "20130524T000000Z"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: hash, amzDate: "20130524T000000Z"
        )
        #expect(header.hasSuffix("Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"))
        #expect(Self.s3.canonicalRequest(method: "PUT", path: "/test$file.text", query: [], headers: [], payloadHash: hash).request.contains("/test%24file.text"))
    }

    @Test(arguments: [
        ([("lifecycle", "")], "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        ([("max-keys", "2"), ("prefix", "J")], "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ])
    func s3BucketQueries(query: [(String, String)], signature: String) {
        let header = Self.s3.authorization(
            method: "GET", path: "/", query: query,
            headers: [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-content-sha256", SigV4.emptyPayloadHash), ("x-amz-date", "20130524T000000Z")],
            payloadHash: SigV4.emptyPayloadHash, amzDate: "20130524T000000Z"
        )
        #expect(header.hasSuffix("Signature=\(signature)"))
    }

    @Test func s3Presigned() {
        let query = Self.s3.presignedQuery(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", expires: 86400, amzDate: "20130524T000000Z")
        #expect(query.last?.0 == "X-Amz-Signature")
        #expect(query.last?.1 == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    }

    @Test func minioPutUnsignedAndHashed() {
        for (hash, signature) in [
            (SigV4.unsignedPayload, "e3a145adc52c7538b38847cb95f500dcda01b0e75eb9da35738bc7604ba481ce"),
            ("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "f8e142cc2e52dad28f719599bbcbf9e1106e35ee4cbacd79acd4cf92d833e559"),
        ] {
            let headers = [("content-type", "image/jpeg"), ("host", "localhost:9000"), ("x-amz-content-sha256", hash), ("x-amz-date", "20260115T120000Z")]
            let canonical = Self.minio.canonicalRequest(method: "PUT", path: "/photos/u1/a.jpg", query: [], headers: headers, payloadHash: hash).request
            #expect(canonical == "PUT\n/photos/u1/a.jpg\n\ncontent-type:image/jpeg\nhost:localhost:9000\nx-amz-content-sha256:\(hash)\nx-amz-date:20260115T120000Z\n\ncontent-type;host;x-amz-content-sha256;x-amz-date\n\(hash)")
            let header = Self.minio.authorization(method: "PUT", path: "/photos/u1/a.jpg", query: [], headers: headers, payloadHash: hash, amzDate: "20260115T120000Z")
            #expect(header.hasSuffix("Signature=\(signature)"))
        }
    }

    @Test func minioListAndPresigned() {
        let headers = [("host", "localhost:9000"), ("x-amz-content-sha256", SigV4.emptyPayloadHash), ("x-amz-date", "20260115T120000Z")]
        let list = Self.minio.authorization(method: "GET", path: "/photos", query: [("list-type", "2"), ("prefix", "u1/")], headers: headers,
                                            payloadHash: SigV4.emptyPayloadHash, amzDate: "20260115T120000Z")
        #expect(list.hasSuffix("Signature=87d5d5b4bab00c576cd51c66f6b295ca55a3219a084c973b08351fc0c132c9fd"))
        let presigned = Self.minio.presignedQuery(method: "GET", host: "localhost:9000", path: "/photos/u1/a.jpg", expires: 3600, amzDate: "20260115T120000Z")
        #expect(presigned.last?.1 == "e364e0a04619d57cf3a702a0527487e68726ff56015b0d3ce66c11a78c484095")
    }

    @Test func encodingRules() {
        #expect(SigV4.encode("u1/a b.jpg", keepSlash: true) == "u1/a%20b.jpg")
        #expect(SigV4.encode("u1/", keepSlash: false) == "u1%2F")
        #expect(SigV4.encode("a+b~c_d-e.f", keepSlash: true) == "a%2Bb~c_d-e.f")
    }
}
