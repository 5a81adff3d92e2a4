import BlockingIO
import Foundation
import Signing
public import Logging
import Synchronization

/// A pool of PostgreSQL connections over libpq.
///
/// Every libpq call runs on the pool's own threads (one per connection), never on the Swift
/// cooperative pool or an event loop. A connection the server closed — a restart, an idle
/// timeout — is noticed when it is next leased and replaced, so a PostgreSQL restart costs at
/// most the calls that were in flight, never the process.
public final class PostgresClient: Sendable {
    /// How the pool was configured.
    public let configuration: Configuration
    let threads: BlockingThreadPool
    private let state = Mutex(PoolState())
    private let logger: Logger

    /// Creates a pool; connections are opened lazily, on first use.
    public init(configuration: Configuration, logger: Logger) {
        OpenSSLProcess.initialize()  // before libpq's first use of it (see there)
        self.configuration = configuration
        self.logger = logger
        self.threads = BlockingThreadPool(name: "postgres", threadCount: configuration.maxConnections)
    }

    /// A pool for a URL or conninfo string with default settings.
    public convenience init(url: String, maxConnections: Int = 10, logger: Logger) throws {
        self.init(configuration: try Configuration(connectionString: url, maxConnections: maxConnections), logger: logger)
    }

    deinit { threads.shutdown() }

    /// Closes idle connections, fails waiting callers and refuses new work. Leased connections
    /// close when their holders finish.
    public func shutdown() {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer { state.idle = []; state.waiters = [] }
            state.open -= state.idle.count
            return (state.idle, state.waiters)
        }
        _ = idle  // released here: deinit finishes each PGconn
        for waiter in waiters { waiter.continuation.resume(throwing: PostgresError(.clientClosed)) }
        threads.shutdown()
    }

    /// Pool figures for metrics.
    public var statistics: Statistics {
        state.withLock { Statistics(open: $0.open, idle: $0.idle.count, leased: $0.leased, waiting: $0.waiters.count) }
    }

    /// Pool figures for metrics.
    public struct Statistics: Sendable, Equatable {
        /// Connections open or opening.
        public var open: Int
        /// Connections waiting in the pool.
        public var idle: Int
        /// Connections held by callers.
        public var leased: Int
        /// Callers waiting for a connection.
        public var waiting: Int
    }

    // MARK: Queries

    /// Runs one statement on a pooled connection.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await withConnection { try await $0.query(query) }
    }

    /// Leases a connection for the duration of `body`. Do not keep the connection past `body`.
    public func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await lease()
        let lease = PostgresConnection(connection: connection, threads: threads)
        do {
            let result = try await body(lease)
            release(connection)
            return result
        } catch {
            release(connection)
            throw error
        }
    }

    /// Runs `body` in a transaction that commits when it returns and rolls back when it throws.
    public func withTransaction<T>(
        isolation: PostgresConnection.IsolationLevel = .readCommitted,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withConnection { try await $0.withTransaction(isolation: isolation, body) }
    }

    // MARK: Pool

    private struct PoolState {
        var idle: [LibpqConnection] = []
        /// Open or being opened: idle + leased + connecting.
        var open = 0
        var leased = 0
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var closed = false
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Slot, any Error>
    }

    /// What a caller receives: a connection to reuse, or the right to open one.
    private enum Slot: @unchecked Sendable {  // LibpqConnection is confined to its leaseholder
        case existing(LibpqConnection)
        case openNew
    }

    private func lease() async throws -> LibpqConnection {
        var slot = try await acquireSlot()
        while true {
            switch slot {
            case .existing(let connection):
                if connection.isReusable() { return connection }
                logger.debug("postgres connection found closed; replacing")
                slot = .openNew
            case .openNew:
                do {
                    let configuration = self.configuration
                    let connection = try await threads.run { try LibpqConnection.connect(configuration) }
                    return connection
                } catch {
                    giveBackSlot(nil)
                    throw error
                }
            }
        }
    }

    private func acquireSlot() async throws -> Slot {
        enum Immediate { case slot(Slot), closed, wait(Int) }
        let immediate: Immediate = state.withLock { state in
            if state.closed { return .closed }
            if let connection = state.idle.popLast() {
                state.leased += 1
                return .slot(.existing(connection))
            }
            if state.open < configuration.maxConnections {
                state.open += 1
                state.leased += 1
                return .slot(.openNew)
            }
            state.nextWaiterID += 1
            return .wait(state.nextWaiterID)
        }
        switch immediate {
        case .slot(let slot): return slot
        case .closed: throw PostgresError(.clientClosed)
        case .wait(let id): return try await waitForSlot(id: id)
        }
    }

    private func waitForSlot(id: Int) async throws -> Slot {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Slot, any Error>) in
                let added = state.withLock { state -> Bool in
                    guard !state.closed else { return false }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return true
                }
                guard added else { return continuation.resume(throwing: PostgresError(.clientClosed)) }
                let timeout = configuration.acquireTimeout
                let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
                DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) { [weak self] in
                    self?.removeWaiter(id: id, error: PostgresError(.poolTimeout, context: "no connection free within \(timeout)"))
                }
            }
        } onCancel: {
            removeWaiter(id: id, error: CancellationError())
        }
    }

    private func removeWaiter(id: Int, error: any Error) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: error)
    }

    private func release(_ connection: LibpqConnection) {
        giveBackSlot(connection.isReusable() ? connection : nil)
    }

    /// Returns a leased slot: to the longest waiter if there is one, else to the idle list.
    /// `connection` is nil when the leased connection is gone (or was never opened).
    private func giveBackSlot(_ connection: LibpqConnection?) {
        let handOff = state.withLock { state -> (Waiter, Slot)? in
            if !state.waiters.isEmpty, !state.closed {
                let waiter = state.waiters.removeFirst()
                return (waiter, connection.map { .existing($0) } ?? .openNew)
            }
            state.leased -= 1
            if let connection, !state.closed {
                state.idle.append(connection)
            } else {
                state.open -= 1
            }
            return nil
        }
        if let (waiter, slot) = handOff { waiter.continuation.resume(returning: slot) }
    }
}
