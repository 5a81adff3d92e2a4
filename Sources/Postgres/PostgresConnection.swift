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
        let connection = self.connection
        connection.beginCall()
        do {
            let storage = try await withTaskCancellationHandler {
                try await threads.run { try connection.execute(query) }
            } onCancel: {
                connection.cancel()
            }
            return PostgresRows(storage)
        } catch let error as PostgresError where error.isQueryCanceled && Task.isCancelled {
            throw CancellationError()
        }
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
    public func withTransaction<T>(isolation: IsolationLevel = .readCommitted, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        switch isolation {
        case .readCommitted: try await executeScript("BEGIN")
        case .repeatableRead: try await executeScript("BEGIN ISOLATION LEVEL REPEATABLE READ")
        case .serializable: try await executeScript("BEGIN ISOLATION LEVEL SERIALIZABLE")
        }
        let result: T
        do {
            result = try await body(self)
        } catch {
            // A broken connection cannot roll back, but the server already discarded the transaction.
            try? await executeScript("ROLLBACK")
            throw error
        }
        try await executeScript("COMMIT")
        return result
    }
}
