import CEpoll
import Glibc
import Logging
import Synchronization

/// One thread running `epoll`: it accepts connections from the shared listening socket, reads
/// and parses requests, hands each to the responder, and writes the answers back in order.
/// Answers may come from any thread; they travel through `inbox` and an `eventfd` wake-up.
///
/// Everything but `inbox` and `threadID` belongs to the loop's thread alone, hence
/// `@unchecked Sendable`.
final class EventLoop: @unchecked Sendable {
    enum Delivery {
        case response(connection: UInt64, HTTPResponse)
        case drain
        case close
    }

    struct Limits {
        var maxHeadBytes: Int
        var idleTimeout: Duration
        var requestTimeout: Duration
    }

    static let listenerID: UInt64 = 0
    static let wakeID: UInt64 = 1

    let listener: Int32
    let responder: any HTTPResponder
    let limits: Limits
    let logger: Logger
    private let epoll: Int32
    private let wake: Int32
    private let inbox = Mutex<[Delivery]>([])
    private let threadID = Atomic<UInt>(0)
    private let done = Atomic<Bool>(false)

    // The loop thread's own state.
    private var connections: [UInt64: Connection] = [:]
    private var nextID: UInt64 = 2
    private var draining = false
    private var listening = false
    private var acceptPausedUntil: ContinuousClock.Instant?
    private var lastSweep = ContinuousClock.now
    private var date = HTTPDate()
    private var scratch = [UInt8](repeating: 0, count: 1 << 16)

    init(listener: Int32, responder: any HTTPResponder, limits: Limits, logger: Logger) throws(HTTPServerError) {
        self.listener = listener
        self.responder = responder
        self.limits = limits
        self.logger = logger
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw .system("epoll_create1", errno) }
        wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wake >= 0 else { throw .system("eventfd", errno) }  // deinit closes the epoll descriptor
        register(wake, id: Self.wakeID, events: EPOLLIN.rawValue, operation: EPOLL_CTL_ADD)
        // EPOLLEXCLUSIVE: a new connection wakes one loop, not all of them.
        register(listener, id: Self.listenerID, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue, operation: EPOLL_CTL_ADD)
        listening = true
    }

    /// True once the loop has closed every connection and returned.
    var isDone: Bool { done.load(ordering: .acquiring) }

    /// Hands `delivery` to the loop from any thread.
    func deliver(_ delivery: Delivery) {
        let wasEmpty = inbox.withLock { inbox in
            defer { inbox.append(delivery) }
            return inbox.isEmpty
        }
        // The loop drains the inbox after every batch of events, so a delivery made on its own
        // thread needs no wake-up; an empty inbox means nobody has rung since the last drain.
        if wasEmpty && pthread_self() != threadID.load(ordering: .relaxed) {
            var one: UInt64 = 1
            _ = write(wake, &one, 8)
        }
    }

    // MARK: - The loop

    func run() {
        threadID.store(pthread_self(), ordering: .relaxed)
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while !(draining && connections.isEmpty) {
            let count = epoll_wait(epoll, &events, Int32(events.count), 250)
            if count < 0 && errno != EINTR {
                logger.critical("epoll_wait failed", metadata: ["errno": "\(errno)"])
                break
            }
            for index in 0..<max(Int(count), 0) {
                let event = events[index]
                switch event.data.u64 {
                case Self.listenerID: acceptConnections()
                case Self.wakeID:
                    var value: UInt64 = 0
                    _ = read(wake, &value, 8)
                default:
                    guard let connection = connections[event.data.u64] else { continue }
                    if event.events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { readable(connection) }
                    if event.events & EPOLLOUT.rawValue != 0, connections[connection.id] != nil {
                        flush(connection)
                        if connections[connection.id] != nil { process(connection) }  // what waited for the answer to leave
                    }
                }
            }
            drainInbox()
            if ContinuousClock.now - lastSweep >= .seconds(1) { sweep() }
        }
        for connection in Array(connections.values) { closeConnection(connection) }
        done.store(true, ordering: .releasing)
    }

    deinit {
        // Not at the end of `run`: an answer can still arrive after the loop is gone (a task
        // outliving the shutdown's grace), and a write to a closed eventfd whose number the
        // kernel has reused would land in someone else's socket (seen: a libpq connection).
        // Every closure that can deliver holds this loop, so here nobody can. This also frees
        // a loop that never ran (another loop failed to start).
        if wake >= 0 { close(wake) }
        close(epoll)
    }

    private func drainInbox() {
        while true {
            let deliveries = inbox.withLock { inbox in
                defer { inbox.removeAll(keepingCapacity: true) }
                return inbox
            }
            if deliveries.isEmpty { return }
            for delivery in deliveries {
                switch delivery {
                case .response(let id, let response): complete(id, response)
                case .drain: startDraining()
                case .close: for connection in Array(connections.values) { closeConnection(connection) }; draining = true
                }
            }
        }
    }

    private func acceptConnections() {
        while !draining {
            let fd = cepoll_accept(listener)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE {
                    // Out of descriptors: stop accepting for a second instead of spinning.
                    logger.error("accept failed: out of file descriptors; pausing accepts for 1 s")
                    setListening(false)
                    acceptPausedUntil = .now + .seconds(1)
                }
                return
            }
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let connection = Connection(id: nextID, fd: fd)
            nextID += 1
            connections[connection.id] = connection
            register(fd, id: connection.id, events: EPOLLIN.rawValue, operation: EPOLL_CTL_ADD)
        }
    }

    // MARK: - Reading and dispatching

    private func readable(_ connection: Connection) {
        if connection.lingerUntil != nil { return discardInput(connection) }
        var endOfInput = false
        while true {
            let count = scratch.withUnsafeMutableBytes { read(connection.fd, $0.baseAddress, $0.count) }
            if count > 0 {
                scratch.withUnsafeBufferPointer { connection.input.append(contentsOf: $0[0..<count]) }
                if count < scratch.count || connection.mustStopReading { break }
            } else if count == 0 {
                endOfInput = true
                break
            } else {
                if errno == EAGAIN || errno == EINTR { break }
                closeConnection(connection)
                return
            }
        }
        connection.lastActivity = .now
        guard endOfInput else {
            process(connection)
            if connections[connection.id] != nil { updateInterest(connection) }
            return
        }
        // The peer will send nothing more: a complete request that came with its end is still
        // answered, then the connection closes.
        connection.peerClosed = true
        updateInterest(connection)
        process(connection)
        guard connections[connection.id] != nil else { return }
        if connection.awaiting || !connection.output.isEmpty {
            connection.closeAfterWrite = true
        } else {
            closeConnection(connection)
        }
    }

    /// Parses and dispatches requests one at a time: the next pipelined request waits in the
    /// buffer until the previous answer is written, so answers leave in order.
    private func process(_ connection: Connection) {
        // Backpressure: nothing new starts while an answer is still unwritten.
        while !connection.awaiting && !connection.closeAfterWrite && connection.output.isEmpty && connections[connection.id] != nil {
            if connection.head == nil {
                let available = connection.input.count - connection.consumed
                guard available > 0 else {
                    connection.requestStarted = nil
                    return
                }
                if connection.requestStarted == nil { connection.requestStarted = .now }
                let outcome = connection.input.withUnsafeBufferPointer {
                    HTTPHeadParser.parse(UnsafeBufferPointer(rebasing: $0[connection.consumed...]), maxLength: limits.maxHeadBytes)
                }
                switch outcome {
                case .incomplete: return
                case .refuse(let status, let reason):
                    responder.refused(status: status, path: nil)
                    refuse(connection, status: status, reason: reason)
                    return
                case .head(let head):
                    connection.consumed += head.length
                    if head.contentLength > responder.bodyLimit(method: head.method, path: head.path) {
                        responder.refused(status: 413, path: head.path)
                        refuse(connection, status: 413, reason: "request body too large")
                        return
                    }
                    connection.head = head
                    connection.sentContinue = false
                }
            }
            guard let head = connection.head else { return }
            guard connection.input.count - connection.consumed >= head.contentLength else {
                if head.expectsContinue && !connection.sentContinue {
                    connection.sentContinue = true
                    connection.output += Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
                    flush(connection)
                }
                return
            }
            let body = Array(connection.input[connection.consumed..<connection.consumed + head.contentLength])
            connection.consumed += head.contentLength
            connection.compactInput()
            connection.head = nil
            connection.requestStarted = nil
            connection.awaiting = true
            connection.keepAlive = head.keepAlive
            let request = HTTPRequest(method: head.method, path: head.path, query: head.query, headers: head.headers, body: body)
            let id = connection.id
            responder.respond(to: request) { [self] response in deliver(.response(connection: id, response)) }
        }
    }

    /// Answers a request the server itself refuses, then closes: after a bad head the rest of
    /// the stream cannot be trusted to be framed.
    private func refuse(_ connection: Connection, status: Int, reason: String) {
        connection.closeAfterWrite = true
        connection.output += HTTPResponse.text(status, reason + "\n").serialized(date: date.current(), close: true)
        flush(connection)
    }

    private func complete(_ id: UInt64, _ response: HTTPResponse) {
        // The connection may have failed while the answer was being prepared.
        guard let connection = connections[id], connection.awaiting else { return }
        connection.awaiting = false
        if !connection.keepAlive || draining || connection.peerClosed { connection.closeAfterWrite = true }
        connection.output += response.serialized(date: date.current(), close: connection.closeAfterWrite)
        flush(connection)
        process(connection)
    }

    // MARK: - Writing and closing

    private func flush(_ connection: Connection) {
        while connection.written < connection.output.count {
            // MSG_NOSIGNAL: writing to a connection the client reset must be an error, not a
            // SIGPIPE that kills the process.
            let count = connection.output.withUnsafeBytes { bytes in
                send(connection.fd, bytes.baseAddress! + connection.written, bytes.count - connection.written, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                connection.written += count
                connection.lastActivity = .now
            } else if count < 0 && (errno == EAGAIN || errno == EINTR) {
                updateInterest(connection)
                return
            } else {
                closeConnection(connection)
                return
            }
        }
        connection.output.removeAll(keepingCapacity: true)
        connection.written = 0
        if connection.closeAfterWrite && !connection.awaiting {
            linger(connection)
        } else {
            updateInterest(connection)
        }
    }

    /// Closes after an answer without losing it: closing with unread input (a refused body
    /// still arriving, a pipelined request) makes the kernel send a reset, which can destroy
    /// the answer before the client reads it. So the sending side is shut, and input is read
    /// and dropped until the client closes or two seconds pass (what nginx calls a lingering close).
    private func linger(_ connection: Connection) {
        guard !connection.peerClosed else { return closeConnection(connection) }
        Glibc.shutdown(connection.fd, Int32(SHUT_WR))
        connection.lingerUntil = .now + .seconds(2)
        connection.input = []
        connection.consumed = 0
        updateInterest(connection)
        discardInput(connection)
    }

    private func discardInput(_ connection: Connection) {
        while true {
            let count = scratch.withUnsafeMutableBytes { read(connection.fd, $0.baseAddress, $0.count) }
            if count > 0 { continue }
            if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
            return closeConnection(connection)  // the client's end, or an error
        }
    }

    private func updateInterest(_ connection: Connection) {
        var events: UInt32 = connection.peerClosed || connection.mustStopReading ? 0 : EPOLLIN.rawValue
        if connection.lingerUntil != nil { events = EPOLLIN.rawValue }
        if connection.written < connection.output.count { events |= EPOLLOUT.rawValue }
        guard events != connection.interest else { return }
        connection.interest = events
        register(connection.fd, id: connection.id, events: events, operation: EPOLL_CTL_MOD)
    }

    private func closeConnection(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.id) != nil else { return }
        close(connection.fd)  // also leaves the epoll set
    }

    /// Stops accepting; idle connections close now, busy ones after their answer. A request a
    /// client has already sent is read first, so it is answered rather than dropped.
    private func startDraining() {
        draining = true
        setListening(false)
        for connection in Array(connections.values) where !connection.peerClosed && connections[connection.id] != nil { readable(connection) }
        for connection in Array(connections.values) where connection.isIdle { closeConnection(connection) }
    }

    /// Closes idle keep-alive connections and requests that take too long to arrive.
    private func sweep() {
        let now = ContinuousClock.now
        lastSweep = now
        if let until = acceptPausedUntil, now >= until, !draining {
            acceptPausedUntil = nil
            setListening(true)
        }
        for connection in Array(connections.values) where !connection.awaiting {
            if !connection.output.isEmpty {
                // A client that stopped reading its answer.
                if now - connection.lastActivity > limits.idleTimeout { closeConnection(connection) }
            } else if let until = connection.lingerUntil {
                if now >= until { closeConnection(connection) }
            } else if let started = connection.requestStarted, now - started > limits.requestTimeout {
                responder.refused(status: 408, path: connection.head?.path)
                refuse(connection, status: 408, reason: "request took too long to arrive")
            } else if connection.requestStarted == nil && now - connection.lastActivity > limits.idleTimeout {
                closeConnection(connection)
            }
        }
    }

    private func setListening(_ on: Bool) {
        guard on != listening else { return }
        listening = on
        if on {
            register(listener, id: Self.listenerID, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue, operation: EPOLL_CTL_ADD)
        } else {
            _ = epoll_ctl(epoll, EPOLL_CTL_DEL, listener, nil)
        }
    }

    private func register(_ fd: Int32, id: UInt64, events: UInt32, operation: Int32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = id
        if epoll_ctl(epoll, operation, fd, &event) != 0 {
            logger.error("epoll_ctl failed", metadata: ["errno": "\(errno)", "operation": "\(operation)"])
        }
    }
}

/// One client connection's buffers and state, owned by its loop.
final class Connection {
    let id: UInt64
    let fd: Int32
    var input: [UInt8] = []
    var consumed = 0
    var head: HTTPHeadParser.Head?
    var sentContinue = false
    /// A request is with the responder; nothing more is parsed until it is answered.
    var awaiting = false
    var keepAlive = true
    var output: [UInt8] = []
    var written = 0
    var closeAfterWrite = false
    var peerClosed = false
    /// Set once the answer is out and the connection only waits for the client to close.
    var lingerUntil: ContinuousClock.Instant?
    var interest = EPOLLIN.rawValue
    var lastActivity = ContinuousClock.now
    /// When the first byte of a request not yet complete arrived.
    var requestStarted: ContinuousClock.Instant?

    init(id: UInt64, fd: Int32) {
        self.id = id
        self.fd = fd
    }

    /// Nothing owed either way (a lingering connection closes by itself).
    /// Backpressure: while a request is with the application or its answer is unwritten,
    /// input is buffered only up to 1 MiB; beyond that the client waits (TCP pushes back).
    var mustStopReading: Bool { (awaiting || !output.isEmpty) && input.count - consumed >= 1 << 20 }

    var isIdle: Bool { !awaiting && output.isEmpty && input.count == consumed && lingerUntil == nil }

    func compactInput() {
        if consumed == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 1 << 16)
            consumed = 0
        } else if consumed >= 1 << 16 {
            input.removeFirst(consumed)
            consumed = 0
        }
    }
}

/// The `Date` header's value (RFC 9110 IMF-fixdate), rebuilt at most once a second.
struct HTTPDate {
    private var second = -1
    private var text = ""

    mutating func current() -> String {
        var now = time(nil)
        guard Int(now) != second else { return text }
        second = Int(now)
        var parts = tm()
        gmtime_r(&now, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"], months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        text = "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        return text
    }
}
