import Foundation
import Hummingbird
import Imaging
import Synchronization
import TestSupport
import Zip

/// What a webhook receiver got: path, headers (lower-cased names) and raw body.
struct Delivery: Sendable {
    var path: String
    var headers: [String: String]
    var body: [UInt8]
}

/// A loopback server standing where `aisha-server` will: records every POST it receives.
final class WebhookReceiver: Sendable {
    let deliveries = Mutex<[Delivery]>([])
    /// The status to answer with.
    let answer = Atomic<Int>(200)

    func run<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        router.post("**") { request, _ -> Response in
            var request = request
            let bytes = Array(try await request.collectBody(upTo: 8 << 20).readableBytesView)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
            self.deliveries.withLock { $0.append(Delivery(path: request.uri.path, headers: headers, body: bytes)) }
            return Response(status: .init(code: self.answer.load(ordering: .relaxed)))
        }
        return try await LoopbackHTTPServer.run(router, body)
    }

    func waitFor(count: Int, timeout: Duration = .seconds(20)) async -> [Delivery] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let all = deliveries.withLock { $0 }
            if all.count >= count { return all }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return deliveries.withLock { $0 }
    }
}

enum Samples {
    static func jpeg(width: Int = 640, height: Int = 640, seed: UInt64 = 1) -> [UInt8] {
        JPEGEncoder.encode(width: width, height: height, padding: 2000, seed: seed) { x, y in UInt8(truncatingIfNeeded: x ^ y ^ Int(seed)) }
    }

    static func temporaryPath(_ suffix: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sandbox-test-\(UUID().uuidString)\(suffix)").path
    }

    /// A ZIP of `images` JPEGs plus extra entries (name → bytes).
    static func zip(images: Int, extra: [(String, [UInt8])] = []) throws -> String {
        let directory = temporaryPath("")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = temporaryPath(".zip")
        var writer = try ZipWriter(path: path)
        var entries = (0..<images).map { ("photo_\($0).jpg", jpeg(seed: UInt64($0 + 1))) }
        entries += extra
        for (name, bytes) in entries {
            let file = directory + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            try writer.addFile(at: file, as: name)
        }
        try writer.finish()
        return path
    }
}
