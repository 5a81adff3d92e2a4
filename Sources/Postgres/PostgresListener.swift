import Foundation
public import Logging
import Synchronization

/// What a `LISTEN` subscription reports.
public enum PostgresListenerEvent: Sendable, Equatable {
    /// The listener is (again) subscribed. Notifications sent while it was not are lost, so a
    /// consumer should look for work it may have missed (a job queue polls once).
    case listening
    /// A notification arrived.
    case notification(PostgresNotification)
}

extension PostgresClient {
    /// Subscribes to `channels` on a dedicated connection and thread of its own.
    ///
    /// The connection is re-established after any failure (with back-off up to 5 s) and the stream
    /// yields `.listening` each time. Stop by ending the iteration (or cancelling its task).
    public func listen(to channels: [String], logger: Logger) -> AsyncStream<PostgresListenerEvent> {
        let (stream, continuation) = AsyncStream<PostgresListenerEvent>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let listener = ListenerThread(configuration: configuration, channels: channels, continuation: continuation, logger: logger)
        continuation.onTermination = { _ in listener.stop() }
        listener.start()
        return stream
    }
}

/// The thread behind `listen(to:)`: polls the connection's socket and a wake-up pipe.
private final class ListenerThread: Sendable {
    let configuration: PostgresClient.Configuration
    let channels: [String]
    let continuation: AsyncStream<PostgresListenerEvent>.Continuation
    let logger: Logger
    private let stopped = Atomic<Bool>(false)
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init(configuration: PostgresClient.Configuration, channels: [String], continuation: AsyncStream<PostgresListenerEvent>.Continuation, logger: Logger) {
        self.configuration = configuration
        self.channels = channels
        self.continuation = continuation
        self.logger = logger
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0, "pipe() failed")
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    func start() {
        let thread = Thread { [self] in
            self.run()
            close(wakeRead)
            close(wakeWrite)
        }
        thread.name = "postgres-listen"
        thread.start()
    }

    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func run() {
        var backoff = 0.05
        while !stopped.load(ordering: .acquiring) {
            let connection: LibpqConnection
            do {
                connection = try LibpqConnection.connect(configuration)
                for channel in channels {
                    try connection.executeScript("LISTEN \"" + channel.replacingOccurrences(of: "\"", with: "\"\"") + "\"")
                }
            } catch {
                logger.warning("postgres listen connection failed; retrying", metadata: ["db.error": "\(error)"])
                if waitForWake(timeoutMilliseconds: Int32(backoff * 1000)) { return }
                backoff = min(backoff * 2, 5)
                continue
            }
            backoff = 0.05
            continuation.yield(.listening)
            while !stopped.load(ordering: .acquiring) {
                var descriptors = [
                    pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                ]
                let ready = poll(&descriptors, 2, 30_000)
                if ready < 0, errno == EINTR { continue }
                if descriptors[1].revents != 0 { return }
                if ready == 0 {
                    // Quiet for 30 s: a cheap round trip proves the connection is still there.
                    if (try? connection.executeScript("SELECT 1")) == nil { break }
                    continue
                }
                guard connection.consumeInput() else { break }
                for notification in connection.drainNotifications() { continuation.yield(.notification(notification)) }
            }
            logger.warning("postgres listen connection lost; reconnecting")
        }
    }

    /// Sleeps up to the timeout; true if woken by `stop()`.
    private func waitForWake(timeoutMilliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, timeoutMilliseconds)
        return stopped.load(ordering: .acquiring)
    }
}
