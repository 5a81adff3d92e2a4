import ArgumentParser
import Avatars
import Curl
import FAL
import Foundation
import Imaging
import Logging
import ObjectStorage
import Pipeline
import Postgres
import Sandbox
import Telegram

/// `aisha bench pipeline`: the training preparation (photos from S3 → ZIP → FAL storage) against
/// the plain transfer of the same bytes, and the process's peak memory, for two photo sizes.
struct BenchPipelineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Time the training preparation against a plain transfer of the same bytes; report peak memory.",
        discussion: "Needs the local S3 server (MINIO_* from .local/env). FAL is the in-process Sandbox."
    )

    @Option(help: "Photos per avatar.") var photos = 20
    @Option(help: "Photo sizes in KB, comma-separated.") var sizesKB = "140,5000"
    @Option(help: "Timed runs per measurement; medians are reported.") var runs = 5

    func run() async throws {
        let logger = BenchSupport.logger
        let storage = ObjectStorage(configuration: try ObjectStorage.Configuration.fromEnvironment())
        let sandbox = Sandbox()
        let sizes = sizesKB.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        print("aisha bench pipeline: \(photos) photos per avatar, sizes \(sizes.map { "\($0) KB" }.joined(separator: ", ")), \(runs) runs each")
        try await sandbox.run { endpoints in
            let fal = FALClient(configuration: .init(key: sandbox.fal.configuration.key, queueBaseURL: endpoints.falQueue, restBaseURL: endpoints.falREST))
            var settings = PipelineSettings(falWebhookURL: "http://127.0.0.1:9/unused")
            settings.photoBucket = "bench-\(UUID().uuidString.prefix(8).lowercased())"
            // The database is never touched by the preparation; the client connects lazily.
            let database = try PostgresClient(url: "postgres://unused@127.0.0.1:9/unused", maxConnections: 1, logger: logger)
            defer { database.shutdown() }
            let context = PipelineContext(database: database, storage: storage, fal: fal, telegram: TelegramClient(token: "0:unused", apiBaseURL: "http://127.0.0.1:9"), settings: settings)
            try await storage.createBucketIfMissing(settings.photoBucket)
            for size in sizes {
                let keys = try await seed(size: size * 1000, storage: storage, bucket: settings.photoBucket)
                let total = try await storage.list(bucket: settings.photoBucket, prefix: "\(size)/").reduce(0) { $0 + $1.size }
                // Warm up connections and caches once.
                _ = try await AvatarTraining.uploadArchive(photos: keys.map { ($0, "jpeg") }, context: context)
                var prepare: [Double] = [], plain: [Double] = []
                resetPeakMemory()
                let baseline = residentMemory()
                for _ in 0..<runs {
                    let started = ContinuousClock.now
                    _ = try await AvatarTraining.uploadArchive(photos: keys.map { ($0, "jpeg") }, context: context)
                    prepare.append(seconds(ContinuousClock.now - started))
                    plain.append(try await plainTransfer(keys: keys, totalBytes: total, storage: storage, bucket: settings.photoBucket, fal: fal))
                }
                let peak = peakMemory()
                let (p, t) = (median(prepare), median(plain))
                print("\(photos) × \(size) KB (\(String(format: "%.1f", Double(total) / 1e6)) MB):")
                print("  prepare (download → ZIP → upload): median \(ms(p)) ms   runs: \(prepare.map(ms).joined(separator: ", "))")
                print("  plain transfer of the same bytes:  median \(ms(t)) ms   runs: \(plain.map(ms).joined(separator: ", "))")
                print("  ratio prepare / plain: \(String(format: "%.2f", p / t))")
                print("  process memory: resident \(baseline / 1024) MB before the runs, peak \(peak / 1024) MB during them: growth \((peak - baseline) / 1024) MB (includes the in-process Sandbox FAL)")
                let failed = try await storage.delete(bucket: settings.photoBucket, keys: keys)
                if !failed.isEmpty { print("  (\(failed.count) seeded objects were not deleted)") }
            }
        }
    }

    /// Uploads `photos` distinct JPEGs of about `size` bytes under `<size KB>/`.
    private func seed(size: Int, storage: ObjectStorage, bucket: String) async throws -> [String] {
        var keys: [String] = []
        for index in 0..<photos {
            let jpeg = JPEGEncoder.encode(width: 1024, height: 1024, padding: max(0, size - 30_000), seed: UInt64(index + 1)) { x, y in UInt8(truncatingIfNeeded: x ^ y ^ index) }
            let key = "\(size / 1000)/photo-\(index).jpg"
            _ = try await storage.put(bucket: bucket, key: key, data: Data(jpeg), contentType: "image/jpeg")
            keys.append(key)
        }
        return keys
    }

    /// The floor: download all the photos at once (to files), then upload one file of the
    /// ZIP's size to FAL storage — no archive step.
    private func plainTransfer(keys: [String], totalBytes: Int, storage: ObjectStorage, bucket: String, fal: FALClient) async throws -> Double {
        let folder = NSTemporaryDirectory() + "/aisha-bench-plain-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A real file of the archive's size (not sparse: the upload must read real pages, as it
        // reads the freshly written ZIP's).
        let blob = folder + "/blob"
        try Data(count: totalBytes).write(to: URL(fileURLWithPath: blob))
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for (index, key) in keys.enumerated() {
                if running >= 20 { try await group.next(); running -= 1 }
                running += 1
                group.addTask { try await storage.get(bucket: bucket, key: key, toFile: folder + "/\(index)") }
            }
            try await group.waitForAll()
        }
        _ = try await fal.upload(fileAt: blob, contentType: "application/octet-stream", fileName: "blob.bin")
        return seconds(ContinuousClock.now - started)
    }

    private func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
    private func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    private func ms(_ seconds: Double) -> String { String(format: "%.0f", seconds * 1000) }

    /// Linux: writing 5 to clear_refs resets the peak resident size (VmHWM).
    private func resetPeakMemory() { try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8) }
    private func residentMemory() -> Int { statusField("VmRSS:") }
    private func peakMemory() -> Int { statusField("VmHWM:") }
    private func statusField(_ name: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "0") ?? 0  // kB
    }
}
