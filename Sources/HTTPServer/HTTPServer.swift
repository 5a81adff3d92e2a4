import CEpoll
import Dispatch
import Glibc
public import Logging
import Synchronization

/// A small HTTP/1.1 server on `epoll`: keep-alive, pipelining (answered in order),
/// `Content-Length` bodies with a per-route limit checked before the body is read,
/// `Expect: 100-continue`, idle and slow-request timeouts, and a graceful stop.
///
/// It exists because the webhook's whole job is cheap (check a secret, scan a body, add it to a
/// group commit), so the HTTP layer's own cost decides the ingest rate on a small machine: each
/// loop thread parses, dispatches and writes with no task or thread hops
/// (docs/benchmarks.md, "Webhook ingest").
public final class HTTPServer: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Event-loop threads; each serves the connections it accepted.
        public var threads: Int
        public var maxHeadBytes: Int
        /// A keep-alive connection with nothing in flight is closed after this long.
        public var idleTimeout: Duration
        /// A request whose head and body have not all arrived this long after its first byte is
        /// answered 408.
        public var requestTimeout: Duration

        public init(host: String, port: Int, threads: Int = 1, maxHeadBytes: Int = 16 << 10, idleTimeout: Duration = .seconds(75), requestTimeout: Duration = .seconds(30)) {
            self.host = host
            self.port = port
            self.threads = threads
            self.maxHeadBytes = maxHeadBytes
            self.idleTimeout = idleTimeout
            self.requestTimeout = requestTimeout
        }
    }

    struct State {
        var listener: Int32 = -1
        var loops: [EventLoop] = []
        var port = 0
    }

    public let configuration: Configuration
    let responder: any HTTPResponder
    let logger: Logger
    private let state = Mutex(State())

    public init(configuration: Configuration, responder: any HTTPResponder, logger: Logger) {
        precondition(configuration.threads > 0)
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
    }

    /// Binds, starts the loops, and returns the bound port (useful with port 0).
    @discardableResult
    public func start() throws(HTTPServerError) -> Int {
        let listener = try Self.listen(host: configuration.host, port: configuration.port)
        var loops: [EventLoop] = []
        do {
            let limits = EventLoop.Limits(maxHeadBytes: configuration.maxHeadBytes, idleTimeout: configuration.idleTimeout, requestTimeout: configuration.requestTimeout)
            for _ in 0..<configuration.threads { loops.append(try EventLoop(listener: listener, responder: responder, limits: limits, logger: logger)) }
        } catch {
            close(listener)
            throw error
        }
        for (index, loop) in loops.enumerated() {
            var thread = pthread_t()
            let box = Unmanaged.passRetained(loop)
            let status = pthread_create(&thread, nil, { argument in
                let loop = Unmanaged<EventLoop>.fromOpaque(argument!).takeRetainedValue()
                loop.run()
                return nil
            }, box.toOpaque())
            guard status == 0 else {
                // Stop the loops already running, then fail the start.
                box.release()
                for running in loops[..<index] { running.deliver(.close) }
                close(listener)
                throw .system("pthread_create", status)
            }
            pthread_detach(thread)
        }
        let port = Self.boundPort(listener)
        state.withLock { $0 = State(listener: listener, loops: loops, port: port) }
        return port
    }

    /// Stops accepting, lets requests in flight finish and be answered for up to `grace`, then
    /// closes whatever is left.
    public func shutdown(grace: Duration = .seconds(10)) async {
        let (listener, loops) = state.withLock { state in
            defer { state.listener = -1 }
            return (state.listener, state.loops)
        }
        guard listener >= 0 else { return }
        for loop in loops { loop.deliver(.drain) }
        let deadline = ContinuousClock.now + grace
        while loops.contains(where: { !$0.isDone }) {
            if ContinuousClock.now >= deadline {
                for loop in loops { loop.deliver(.close) }
                logger.warning("shutdown grace period over: closing connections with requests in flight")
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        close(listener)
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    public func run(grace: Duration = .seconds(10)) async throws {
        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        let sources = [SIGTERM, SIGINT].map { signal in
            Glibc.signal(signal, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal)
            source.setEventHandler { continuation.yield(signal) }
            source.resume()
            return source
        }
        defer { for source in sources { source.cancel() } }
        let port = try start()
        logger.info("HTTP server listening", metadata: ["address": "\(configuration.host):\(port)", "threads": "\(configuration.threads)"])
        var iterator = signals.makeAsyncIterator()
        let signal = await iterator.next()
        logger.info("stopping: finishing requests in flight", metadata: ["signal": "\(signal ?? 0)"])
        await shutdown(grace: grace)
    }

    // MARK: - Sockets

    static func listen(host: String, port: Int) throws(HTTPServerError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else { throw .address(host, String(cString: gai_strerror(status))) }
        defer { freeaddrinfo(result) }
        var lastError: Int32 = 0
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let info = candidate {
            candidate = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = errno; continue }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 && Glibc.listen(fd, 1024) == 0 { return fd }
            lastError = errno
            close(fd)
        }
        throw .system("bind \(host):\(port)", lastError)
    }

    static func boundPort(_ fd: Int32) -> Int {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return withUnsafeBytes(of: &address) { bytes in
            // sin_port and sin6_port sit at the same offset, in network order.
            Int(UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
        }
    }
}

/// Why the server could not start.
public enum HTTPServerError: Error, CustomStringConvertible {
    case address(String, String)
    case system(String, Int32)

    public var description: String {
        switch self {
        case .address(let host, let reason): "cannot resolve listen address \(host): \(reason)"
        case .system(let call, let code): "\(call) failed: \(String(cString: strerror(code)))"
        }
    }
}
