public import Hummingbird
import Logging

/// An HTTP server on a free loopback port for one test: the stand-in peers (echo server, JWKS,
/// Bot API) share this.
public enum LoopbackHTTPServer {
    /// Serves `router` on 127.0.0.1 while `body` runs with the server's base URL, then stops it.
    public static func run<T: Sendable>(_ router: Router<BasicRequestContext>, _ body: @Sendable (_ baseURL: String) async throws -> T) async throws -> T {
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "loopback-server")
        logger.logLevel = .critical
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []); return nil }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            let result = try await body("http://127.0.0.1:\(port)")
            group.cancelAll()
            return result
        }
    }
}
