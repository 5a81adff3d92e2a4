public import Foundation

/// A job to enqueue.
public struct JobRequest: Sendable, Equatable {
    /// The handler that runs it, e.g. `telegram.update`.
    public var kind: String
    /// The JSON payload handed to the handler.
    public var payload: Data
    /// Lower runs first; default 0.
    public var priority: Int16
    /// When it may run first (nil: now).
    public var runAt: Date?
    /// Attempts before the job is dead.
    public var maxAttempts: Int
    /// Jobs with a key already in the table (in any state, until pruned) are dropped.
    public var uniqueKey: String?
    /// Jobs sharing a serial key run one at a time, in enqueue order.
    public var serialKey: String?

    /// A job request. `payload` must be JSON.
    public init(
        kind: String, payload: Data = Data("{}".utf8), priority: Int16 = 0, runAt: Date? = nil, maxAttempts: Int = 20,
        uniqueKey: String? = nil, serialKey: String? = nil
    ) {
        self.kind = kind
        self.payload = payload
        self.priority = priority
        self.runAt = runAt
        self.maxAttempts = maxAttempts
        self.uniqueKey = uniqueKey
        self.serialKey = serialKey
    }

    /// A job request whose payload is `value` encoded as JSON.
    public init(
        kind: String, json value: some Encodable, priority: Int16 = 0, runAt: Date? = nil, maxAttempts: Int = 20,
        uniqueKey: String? = nil, serialKey: String? = nil
    ) throws {
        self.init(kind: kind, payload: try JSONEncoder().encode(value), priority: priority, runAt: runAt,
                  maxAttempts: maxAttempts, uniqueKey: uniqueKey, serialKey: serialKey)
    }
}

/// A job a worker claimed and holds a lease on.
public struct ClaimedJob: Sendable {
    /// The row id.
    public var id: Int64
    /// The handler kind.
    public var kind: String
    /// The JSON payload.
    public var payload: Data
    /// This attempt's number, from 1.
    public var attempt: Int
    /// The attempts allowed.
    public var maxAttempts: Int
    /// When it was enqueued.
    public var createdAt: Date
    /// When it became due.
    public var runAt: Date

    /// Decodes the payload.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(T.self, from: payload) }
}

/// Job states as stored.
public enum JobState: String, Sendable, CaseIterable, Codable {
    case available, running, completed, dead, cancelled
}

/// What happened to a claimed job, as the worker reports it.
public enum JobOutcome: Sendable, Equatable {
    /// Done.
    case completed
    /// Failed; try again at `runAt` (backoff), counting the attempt.
    case retry(runAt: Date, error: String)
    /// Try again at `runAt` without counting the attempt (Telegram's `retry_after`, a rate limit).
    case retryWithoutAttempt(runAt: Date, reason: String)
    /// Never retry (bad input, or attempts exhausted): the job is dead.
    case dead(error: String)
    /// Interrupted by a shutdown: available again at once, the attempt not counted.
    case handedBack
}
