import Foundation

/// A loopback TCP relay in front of a server that a case can shut: while shut, new connections
/// are refused and open ones are reset — what clients see while a server restarts — without
/// losing the server's state (moto keeps everything in memory, so restarting it would).
final class TCPGate: @unchecked Sendable {
    let port: Int
    private let upstreamPort: Int
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var connections: Set<Int32> = []

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        self.port = try BenchSupport.freePort()
        try open()
    }

    /// Starts accepting again on the same port.
    func open() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 128) == 0 else { close(fd); throw BenchError("gate: cannot listen on \(port)") }
        lock.withLock { listener = fd }
        Thread.detachNewThread { [self] in acceptLoop(fd) }
    }

    /// Refuses new connections and resets the open ones.
    func shut() {
        let (fd, open) = lock.withLock { () -> (Int32, Set<Int32>) in
            defer { listener = -1; connections = [] }
            return (listener, connections)
        }
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
        for connection in open {
            var hard = linger(l_onoff: 1, l_linger: 0)  // RST, as a dying server's kernel would send
            setsockopt(connection, SOL_SOCKET, SO_LINGER, &hard, socklen_t(MemoryLayout<linger>.size))
            shutdown(connection, Int32(SHUT_RDWR))
        }
    }

    private func acceptLoop(_ fd: Int32) {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }  // shut
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(upstreamPort)
            let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard connected == 0 else { close(client); close(upstream); continue }
            lock.withLock { connections.formUnion([client, upstream]) }
            let finished = Finished()
            Thread.detachNewThread { [self] in pump(from: client, to: upstream, finished) }
            Thread.detachNewThread { [self] in pump(from: upstream, to: client, finished) }
        }
    }

    /// Counts the two directions of a connection; the second to end closes both sockets.
    private final class Finished: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func one() -> Bool { lock.withLock { count += 1; return count == 2 } }
    }

    private func pump(from source: Int32, to destination: Int32, _ finished: Finished) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        copying: while true {
            let count = read(source, &buffer, buffer.count)
            guard count > 0 else { break }
            var sent = 0
            while sent < count {
                let written = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { break copying }
                sent += written
            }
        }
        shutdown(destination, Int32(SHUT_WR))
        guard finished.one() else { return }
        lock.withLock { connections.subtract([source, destination]) }
        close(source)
        close(destination)
    }

    private static func loopback(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
