import Foundation
import ObjectStorage
import Signing
import TestSupport
import Testing

/// Against the local moto server with signature checking on (deploy/local/s3.sh).
@Suite struct ObjectStorageTests {
    func storage() throws -> ObjectStorage {
        guard ProcessInfo.processInfo.environment["MINIO_ENDPOINT"] != nil else {
            throw TestServicesError("MINIO_* are not set: run `make test`, or `deploy/local/services.sh start && source .local/env`")
        }
        return ObjectStorage(configuration: try .fromEnvironment())
    }

    func freshBucket(_ storage: ObjectStorage) async throws -> String {
        let bucket = "t-" + UUID().uuidString.lowercased().prefix(18)
        try await storage.createBucketIfMissing(bucket)
        try await storage.createBucketIfMissing(bucket)  // idempotent
        return bucket
    }

    @Test func putGetHeadDeleteRoundTrip() async throws {
        let storage = try storage()
        let bucket = try await freshBucket(storage)
        let key = "u1/a b ✓ & <x>.jpg"
        let bytes = Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let etag = try await storage.put(bucket: bucket, key: key, data: bytes, contentType: "image/jpeg")
        #expect(etag == Hex.encode(MD5.hash(bytes)))
        #expect(try await storage.get(bucket: bucket, key: key) == bytes)
        #expect(try await storage.head(bucket: bucket, key: key) == .init(key: key, size: 5000, etag: etag))
        #expect(try await storage.list(bucket: bucket, prefix: "u1/").map(\.key) == [key])
        try await storage.delete(bucket: bucket, key: key)
        try await storage.delete(bucket: bucket, key: key)  // deleting a missing key succeeds
        #expect(try await storage.head(bucket: bucket, key: key) == nil)
        await #expect { _ = try await storage.get(bucket: bucket, key: key) } throws: { ($0 as? ObjectStorageError)?.code == .noSuchKey }
        await #expect { _ = try await storage.get(bucket: "no-such-bucket-aisha", key: "x") } throws: { ($0 as? ObjectStorageError)?.code == .noSuchBucket }
    }

    @Test func listPaginatesAndBatchDeleteRemovesEverything() async throws {
        let storage = try storage()
        let bucket = try await freshBucket(storage)
        let keys = (0..<1200).map { "user-7/avatar-1/\(String($0).leftPadded(4)).jpg" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<16 {
                group.addTask {
                    for index in stride(from: lane, to: keys.count, by: 16) {
                        try await storage.put(bucket: bucket, key: keys[index], data: Data("photo \(index)".utf8), contentType: "image/jpeg")
                    }
                }
            }
            try await group.waitForAll()
        }
        try await storage.put(bucket: bucket, key: "user-8/other.jpg", data: Data("x".utf8), contentType: "image/jpeg")
        let listed = try await storage.list(bucket: bucket, prefix: "user-7/")
        #expect(listed.count == 1200, "two pages of ListObjectsV2")
        #expect(Set(listed.map(\.key)) == Set(keys))
        #expect(try await storage.delete(bucket: bucket, keys: keys).isEmpty)
        #expect(try await storage.list(bucket: bucket, prefix: "user-7/").isEmpty)
        #expect(try await storage.list(bucket: bucket).map(\.key) == ["user-8/other.jpg"], "other prefixes untouched")
    }

    @Test func fiftyMegabytesStreamBothWays() async throws {
        let storage = try storage()
        let bucket = try await freshBucket(storage)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("s3-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let upload = folder + "/up.bin", download = folder + "/down.bin"
        _ = FileManager.default.createFile(atPath: upload, contents: nil)
        let handle = try #require(FileHandle(forWritingAtPath: upload))
        var hasher = SHA256()
        for chunk in 0..<50 {
            let block = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ chunk) })
            hasher.update(block)
            handle.write(block)
        }
        try handle.close()
        let expected = Hex.encode(hasher.finalize())
        let before = Self.peakResidentBytes()
        try await storage.put(bucket: bucket, key: "big/model.bin", fileAt: upload, contentType: "application/octet-stream")
        try await storage.get(bucket: bucket, key: "big/model.bin", toFile: download)
        let growth = Self.peakResidentBytes() - before
        #expect(try await storage.head(bucket: bucket, key: "big/model.bin")?.size == 50 << 20)
        let downloaded = try Data(contentsOf: URL(fileURLWithPath: download))
        #expect(SHA256.hexDigest(downloaded) == expected)
        // The transfers stream through files: the process's peak memory must not grow by the
        // object's size. (Weak when another test already raised the peak; see docs/benchmarks.md.)
        #expect(growth < 20 << 20, "peak RSS grew by \(growth >> 20) MiB for a 50 MiB object")
    }

    @Test func wrongSecretIsRejected() async throws {
        var configuration = try ObjectStorage.Configuration.fromEnvironment()
        configuration.signer.secretKey = "not-the-secret"
        let storage = ObjectStorage(configuration: configuration)
        await #expect {
            try await storage.createBucketIfMissing("never-created")
        } throws: { ($0 as? ObjectStorageError)?.code == .signatureDoesNotMatch }
    }

    /// VmHWM from /proc/self/status.
    static func peakResidentBytes() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
