public import Hummingbird
import Logging

/// An HTTP server on a free loopback port for one test: the stand-in peers (echo server, JWKS,
/// Bot API) share this.
public enum LoopbackHTTPServer {
    /// Serves `router` on 127.0.0.1 while `body` runs with the server's base URL, then stops it.
    public static func run<T: Sendable>(_ router: Router<BasicRequestContext>, _ body: @Sendable (_ baseURL: String) async throws -> T) async throws -> T {
        var logger = Logger(label: "loopback-server")
        logger.logLevel = .critical
        return try await serve({ running in
            Application(
                router: router,
                configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: { channel in await running(channel.localAddress?.port ?? 0) },
                logger: logger
            )
        }) { port in try await body("http://127.0.0.1:\(port)") }
    }

    /// Runs the application `make` builds (it must report its port through the callback) while
    /// `body` runs with that port, then stops it.
    static func serve<T: Sendable, App: ApplicationProtocol>(
        _ make: (_ running: @escaping @Sendable (Int) async -> Void) -> App, _ body: (_ port: Int) async throws -> T
    ) async throws -> T {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = make { continuation.yield($0) }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []); return nil }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            let result = try await body(port)
            group.cancelAll()
            return result
        }
    }
}
