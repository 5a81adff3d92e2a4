import Foundation
import Hummingbird
import Signing
import TestSupport

/// A Hummingbird server on a free loopback port, started for one test and stopped after it.
enum LoopbackServer {
    static func withServer<T: Sendable>(_ body: @Sendable (_ base: String) async throws -> T) async throws -> T {
        try await LoopbackHTTPServer.run(makeRouter(), body)
    }

    /// The routes the tests call: echo, JSON, bytes of a chosen size, a slow answer, any status.
    static func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("hello") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain", .init("X-Server")!: "loopback"], body: .init(byteBuffer: ByteBuffer(string: "hello")))
        }
        // Echoes the method, the request headers it was asked about and the body's SHA-256 and length.
        router.on("echo", method: .get) { request, _ in echo(request, body: []) }
        router.on("echo", method: .delete) { request, _ in echo(request, body: []) }
        router.on("echo", method: .post) { request, _ in echo(request, body: try await collect(request)) }
        router.on("echo", method: .put) { request, _ in echo(request, body: try await collect(request)) }
        router.on("echo", method: .patch) { request, _ in echo(request, body: try await collect(request)) }
        router.on("echo", method: .head) { _, _ in Response(status: .ok, headers: [.init("X-Head")!: "yes"]) }
        // Returns the raw body with the request's content type, so a test can parse multipart.
        router.post("raw") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 50 << 20)
            let type = request.headers[.contentType] ?? ""
            return Response(status: .ok, headers: [.init("X-Request-Content-Type")!: type], body: .init(byteBuffer: body))
        }
        router.get("bytes") { request, _ -> Response in
            let count = request.uri.queryParameters.get("n", as: Int.self) ?? 0
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: ResponseBody(contentLength: count) { writer in
                var sent = 0
                while sent < count {
                    let chunk = min(64 << 10, count - sent)
                    try await writer.write(ByteBuffer(bytes: pattern(offset: sent, count: chunk)))
                    sent += chunk
                }
                try await writer.finish(nil)
            })
        }
        router.get("slow") { request, _ -> String in
            let milliseconds = request.uri.queryParameters.get("ms", as: Int.self) ?? 1000
            try await Task.sleep(for: .milliseconds(milliseconds))
            return "slept"
        }
        router.get("status/{code}") { _, context -> Response in
            let code = context.parameters.get("code", as: Int.self) ?? 500
            return Response(status: .init(code: code), body: .init(byteBuffer: ByteBuffer(string: "{\"error\":\(code)}")))
        }
        return router
    }

    /// Deterministic bytes for `/bytes`: byte i is (i * 7 + i / 251) mod 256.
    static func pattern(offset: Int, count: Int) -> [UInt8] {
        (offset..<offset + count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 251) }
    }

    private static func collect(_ request: Request) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await buffer in request.body { bytes += buffer.readableBytesView }
        return bytes
    }

    private static func echo(_ request: Request, body: [UInt8]) -> Response {
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let reply: [String: String] = [
            "method": request.method.rawValue,
            "sha256": SHA256.hexDigest(body),
            "length": String(body.count),
            "x-token": headers["x-token"] ?? "",
            "content-type": headers["content-type"] ?? "",
            "expect": headers["expect"] ?? "",
        ]
        let data = try! JSONEncoder().encode(reply)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
