import Foundation

/// One connection of its own, used with blocking calls by one thread at a time: for a caller
/// that already runs on a dedicated thread and must not hop through the cooperative pool and the
/// client's threads for every statement (the webhook's group commit, see `GroupCommitEnqueuer`).
///
/// Opens on first use, and again on the call after the connection was lost, so a PostgreSQL
/// restart costs the calls in flight, like the pool. Not part of the pool's statistics.
///
/// `@unchecked Sendable`: it may be handed from thread to thread, but its owner must make its
/// calls one after another (libpq allows one thread at a time per connection).
public final class PostgresSession: @unchecked Sendable {
    private let configuration: PostgresClient.Configuration
    private var connection: LibpqConnection?

    /// A session with `configuration`'s settings (its timeouts among them); no connection yet.
    public init(configuration: PostgresClient.Configuration) {
        self.configuration = configuration
    }

    /// Runs `query` and returns its rows, blocking the calling thread.
    public func query(_ query: PostgresQuery) throws -> PostgresRows {
        let connection: LibpqConnection
        if let open = self.connection, open.isReusable() {
            connection = open
        } else {
            self.connection = nil
            connection = try LibpqConnection.connect(configuration)
            self.connection = connection
        }
        connection.beginCall()
        do {
            return PostgresRows(try connection.execute(query))
        } catch {
            if !connection.isReusable() { self.connection = nil }
            throw error
        }
    }
}
