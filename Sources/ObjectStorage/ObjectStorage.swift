import Curl
public import Foundation
import Signing

/// An S3 client for MinIO (and moto in tests): path-style addressing, SigV4 on every request,
/// streamed uploads and downloads, typed errors. Reference: reference/external-apis.md §6.
public struct ObjectStorage: Sendable {
    /// Where the server is and how to sign for it.
    public struct Configuration: Sendable {
        /// `host:port`.
        public var endpoint: String
        /// HTTPS instead of HTTP.
        public var secure: Bool
        /// The signer's credentials and region.
        public var signer: SigV4
        /// Deadline for small requests; transfers of files get `transferTimeout`.
        public var timeout: Duration = .seconds(30)
        /// Deadline for streaming a file up or down.
        public var transferTimeout: Duration = .seconds(600)

        /// A configuration.
        public init(endpoint: String, accessKey: String, secretKey: String, region: String = "us-east-1", secure: Bool = false) {
            self.endpoint = endpoint
            self.secure = secure
            self.signer = SigV4(accessKey: accessKey, secretKey: secretKey, region: region, service: "s3")
        }

        /// Reads `MINIO_ENDPOINT`, `MINIO_ACCESS_KEY`, `MINIO_SECRET_KEY`, `MINIO_REGION`, `MINIO_SECURE`.
        public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
            guard let endpoint = environment["MINIO_ENDPOINT"], let access = environment["MINIO_ACCESS_KEY"], let secret = environment["MINIO_SECRET_KEY"] else {
                throw ObjectStorageError(code: .unknown, status: 0, message: "MINIO_ENDPOINT, MINIO_ACCESS_KEY and MINIO_SECRET_KEY are required")
            }
            return Configuration(endpoint: endpoint, accessKey: access, secretKey: secret, region: environment["MINIO_REGION"] ?? "us-east-1",
                                 secure: environment["MINIO_SECURE"] == "true")
        }
    }

    /// What HEAD and LIST report about an object.
    public struct ObjectInfo: Sendable, Equatable {
        /// The key.
        public var key: String
        /// Its size in bytes.
        public var size: Int
        /// Its ETag, without quotes.
        public var etag: String

        /// An object description.
        public init(key: String, size: Int, etag: String) {
            self.key = key
            self.size = size
            self.etag = etag
        }
    }

    /// The configuration in use.
    public let configuration: Configuration
    private let http = CurlClient()

    /// A client.
    public init(configuration: Configuration) { self.configuration = configuration }

    // MARK: Buckets

    /// Creates `bucket` unless it exists (owned by us).
    public func createBucketIfMissing(_ bucket: String) async throws {
        do {
            _ = try await send("PUT", bucket: bucket, key: nil, body: .bytes(Data()))
        } catch let error as ObjectStorageError where error.code == .bucketAlreadyOwnedByYou {
            return
        }
    }

    // MARK: Objects

    /// Stores `data` at `key`; returns the ETag.
    @discardableResult
    public func put(bucket: String, key: String, data: Data, contentType: String) async throws -> String {
        let response = try await send("PUT", bucket: bucket, key: key, headers: [("content-type", contentType)], body: .bytes(data))
        return Self.unquoted(response.header("ETag"))
    }

    /// Streams the file at `path` to `key` (never held in memory; hashed for the signature first).
    @discardableResult
    public func put(bucket: String, key: String, fileAt path: String, contentType: String) async throws -> String {
        let response = try await send("PUT", bucket: bucket, key: key, headers: [("content-type", contentType)], body: .file(path), timeout: configuration.transferTimeout)
        return Self.unquoted(response.header("ETag"))
    }

    /// The object's bytes.
    /// - Throws: `ObjectStorageError` with `.noSuchKey` when it is absent.
    public func get(bucket: String, key: String) async throws -> Data {
        try await send("GET", bucket: bucket, key: key).body
    }

    /// Streams the object into the file at `path` (replaced; removed again on failure).
    public func get(bucket: String, key: String, toFile path: String) async throws {
        _ = try await send("GET", bucket: bucket, key: key, destination: path, timeout: configuration.transferTimeout)
    }

    /// The object's size and ETag, or nil when it does not exist.
    public func head(bucket: String, key: String) async throws -> ObjectInfo? {
        do {
            let response = try await send("HEAD", bucket: bucket, key: key)
            return ObjectInfo(key: key, size: Int(response.header("Content-Length") ?? "") ?? 0,
                              etag: Self.unquoted(response.header("ETag")))
        } catch let error as ObjectStorageError where error.status == 404 {
            return nil
        }
    }

    /// Deletes `key` (succeeds when it is already gone).
    public func delete(bucket: String, key: String) async throws {
        _ = try await send("DELETE", bucket: bucket, key: key)
    }

    /// Deletes many keys, 1,000 per request (DeleteObjects); returns the keys S3 could not delete.
    @discardableResult
    public func delete(bucket: String, keys: [String]) async throws -> [String] {
        var failed: [String] = []
        for start in stride(from: 0, to: keys.count, by: 1000) {
            let batch = keys[start..<min(keys.count, start + 1000)]
            let xml = "<Delete><Quiet>true</Quiet>" + batch.map { "<Object><Key>\(XMLScanner.escape($0))</Key></Object>" }.joined() + "</Delete>"
            let body = Data(xml.utf8)
            // S3 requires Content-MD5 on DeleteObjects (§6.4).
            let response = try await send("POST", bucket: bucket, key: nil, query: [("delete", "")],
                                          headers: [("content-type", "application/xml"), ("content-md5", Base64.encode(MD5.hash(body)))], body: .bytes(body))
            let text = String(decoding: response.body, as: UTF8.self)
            for error in XMLScanner.values("Error", in: text[...]) {
                if let key = XMLScanner.value("Key", in: error) { failed.append(key) }
            }
        }
        return failed
    }

    /// Every object under `prefix`, following ListObjectsV2 pagination.
    public func list(bucket: String, prefix: String = "") async throws -> [ObjectInfo] {
        var objects: [ObjectInfo] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("max-keys", "1000"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let text = String(decoding: try await send("GET", bucket: bucket, key: nil, query: query).body, as: UTF8.self)
            for item in XMLScanner.values("Contents", in: text[...]) {
                guard let key = XMLScanner.value("Key", in: item) else { continue }
                objects.append(ObjectInfo(key: key, size: Int(XMLScanner.value("Size", in: item) ?? "") ?? 0,
                                          etag: Self.unquoted(XMLScanner.value("ETag", in: item))))
            }
            token = XMLScanner.value("IsTruncated", in: text[...]) == "true" ? XMLScanner.value("NextContinuationToken", in: text[...]) : nil
        } while token != nil
        return objects
    }

    /// A presigned GET URL, valid for `expires` seconds (at most 7 days), usable without credentials.
    public func presignedGetURL(bucket: String, key: String, expires: Int = 3600, now: Date = Date()) -> String {
        let path = "/\(bucket)/\(key)"
        let query = configuration.signer.presignedQuery(method: "GET", host: configuration.endpoint, path: path, expires: expires, amzDate: SigV4.amzDate(now))
        return baseURL + SigV4.encodePath(path) + "?" + query.map { "\(SigV4.encode($0.0, keepSlash: false))=\(SigV4.encode($0.1, keepSlash: false))" }.joined(separator: "&")
    }

    // MARK: Transport

    private enum Body {
        case empty
        case bytes(Data)
        case file(String)
    }

    private var baseURL: String { (configuration.secure ? "https://" : "http://") + configuration.endpoint }

    private func send(
        _ method: String, bucket: String, key: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
        body: Body = .empty, destination: String? = nil, timeout: Duration? = nil
    ) async throws -> CurlResponse {
        let path = "/" + bucket + (key.map { "/" + $0 } ?? "")
        let payloadHash: String
        let curlBody: CurlRequest.Body
        switch body {
        case .empty:
            payloadHash = SigV4.emptyPayloadHash
            curlBody = .empty
        case .bytes(let data):
            payloadHash = SHA256.hexDigest(data)
            curlBody = .bytes(data)
        case .file(let filePath):
            payloadHash = try Self.hashFile(filePath)
            curlBody = .file(path: filePath)
        }
        let amzDate = SigV4.amzDate(Date())
        // Always send x-amz-content-sha256: without it MinIO assumes the empty body's hash (§6.2).
        let signed = [("host", configuration.endpoint), ("x-amz-content-sha256", payloadHash), ("x-amz-date", amzDate)] + headers
        let authorization = configuration.signer.authorization(method: method, path: path, query: query, headers: signed, payloadHash: payloadHash, amzDate: amzDate)
        let queryString = query.isEmpty ? "" : "?" + SigV4.canonicalQuery(query)
        let request = CurlRequest(
            CurlRequest.Method(rawValue: method)!, url: baseURL + SigV4.encodePath(path) + queryString,
            headers: signed.map { (name: $0.0, value: $0.1) } + [("Authorization", authorization)],
            body: curlBody, destination: destination.map { .file(path: $0) } ?? .memory(limit: 256 << 20),
            timeout: timeout ?? configuration.timeout
        )
        let response: CurlResponse
        do {
            response = try await http.execute(request)
        } catch let error as CurlError {
            throw ObjectStorageError(code: error.code == .fileIO ? .fileIO : .transport, status: 0, message: error.description)
        }
        guard response.isSuccess else {
            if let destination { unlink(destination) }  // an error body must not pose as the object
            let text = String(decoding: response.body, as: UTF8.self)
            throw ObjectStorageError(
                code: XMLScanner.value("Code", in: text[...]).map(ObjectStorageError.Code.init) ?? (response.status == 404 ? .noSuchKey : .unknown),
                status: response.status, message: XMLScanner.value("Message", in: text[...]) ?? "HTTP \(response.status)",
                requestID: XMLScanner.value("RequestId", in: text[...])
            )
        }
        return response
    }

    /// An ETag without its quotes (S3 sends `"<md5>"`).
    static func unquoted(_ etag: String?) -> String { (etag ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }

    /// SHA-256 of a file, read in 1 MiB chunks.
    static func hashFile(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ObjectStorageError(code: .fileIO, status: 0, message: "cannot read the file to upload")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            chunk.withUnsafeBytes { hasher.update($0) }
        }
        return Hex.encode(hasher.finalize())
    }
}
