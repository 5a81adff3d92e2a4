import BlockingIO

/// A connection leased from a `PostgresClient`, valid only inside the closure that received it.
public struct PostgresConnection: Sendable {
    let connection: LibpqConnection
    let threads: BlockingThreadPool

    /// Runs one parameterized statement and returns its rows.
    ///
    /// Cancelling the calling task sends a cancel request to the server; the call then throws
    /// `CancellationError`.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await self.query(all: [query])[0]
    }

    /// Runs `queries` in order in one round trip (pipelined) and returns each one's rows. The
    /// first failure is thrown; the statements after it were not run. Outside a transaction they
    /// form one implicit transaction (all or nothing), as libpq's pipeline mode does.
    public func query(all queries: [PostgresQuery]) async throws -> [PostgresRows] {
        let connection = self.connection
        connection.beginCall()
        do {
            let storages = try await withTaskCancellationHandler {
                try await threads.run { try connection.execute(all: queries) }
            } onCancel: {
                connection.cancel()
            }
            return storages.map(PostgresRows.init)
        } catch let error as PostgresError where error.isQueryCanceled && Task.isCancelled {
            throw CancellationError()
        }
    }

    /// Sends `query` with this connection's next statement — or its transaction's COMMIT — in
    /// the same round trip, for writes whose rows nobody reads (a queued job, a saved state).
    /// Its error is thrown by that next call, and aborts the transaction like any other.
    /// Outside a transaction it simply runs now.
    public func sendWithNext(_ query: PostgresQuery) async throws {
        if connection.isInTransaction { connection.sendWithNext(query) } else { try await self.query(query) }
    }

    /// Runs `queries`, then COMMIT, in one round trip (with any queued writes before them), and
    /// returns the queries' rows: for a transaction's last statements whose results are needed
    /// only once they are committed. Inside `withTransaction`, which then does not commit again.
    public func commit(after queries: [PostgresQuery]) async throws -> [PostgresRows] {
        Array(try await query(all: queries + ["COMMIT"]).dropLast())
    }

    /// Runs static SQL with no parameters, possibly several statements (migration files).
    public func executeScript(_ sql: String) async throws {
        let connection = self.connection
        connection.beginCall()
        try await withTaskCancellationHandler {
            try await threads.run { try connection.executeScript(sql) }
        } onCancel: {
            connection.cancel()
        }
    }

    /// Transaction isolation levels.
    public enum IsolationLevel: String, Sendable {
        case readCommitted = "READ COMMITTED"
        case repeatableRead = "REPEATABLE READ"
        case serializable = "SERIALIZABLE"
    }

    /// Runs `body` in a transaction on this connection: COMMIT when it returns, ROLLBACK when it throws.
    ///
    /// BEGIN goes out with the body's first statement and COMMIT with any `sendWithNext` writes,
    /// so a transaction of n statements costs n + 1 round trips, not n + 2 or more.
    public func withTransaction<T>(isolation: IsolationLevel = .readCommitted, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let begin: PostgresQuery = switch isolation {
        case .readCommitted: "BEGIN"
        case .repeatableRead: "BEGIN ISOLATION LEVEL REPEATABLE READ"
        case .serializable: "BEGIN ISOLATION LEVEL SERIALIZABLE"
        }
        connection.sendWithNext(begin)
        let result: T
        do {
            result = try await body(self)
        } catch {
            // Unsent statements are dropped; if BEGIN was among them the server never saw the
            // transaction. A broken connection cannot roll back, but the server discards it anyway.
            let unsent = connection.discardPending()
            if unsent.first?.sql != begin.sql { try? await executeScript("ROLLBACK") }
            throw error
        }
        // The body may have committed itself (`commit(after:)`).
        guard connection.isInTransaction else { return result }
        do {
            try await query("COMMIT")
        } catch {
            // A queued write failed on its way out with the COMMIT: the transaction is aborted, not ended.
            if connection.isInTransaction { try? await executeScript("ROLLBACK") }
            throw error
        }
        return result
    }
}
