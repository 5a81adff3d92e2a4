public import Foundation
import Postgres

extension JobQueue {
    /// Cancels a job that has not started; false if it is running or already finished.
    public func cancel(id: Int64) async throws -> Bool {
        try await database.query("""
            UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = \(id) AND state = 'available'
            """).affectedRows == 1
    }

    /// Makes a dead or cancelled job available again with a fresh set of attempts; its error
    /// history is kept. False if the job is not dead or cancelled.
    public func retry(id: Int64) async throws -> Bool {
        try await database.query("""
            UPDATE jobs SET state = 'available', run_at = now(), attempt = 0, finished_at = NULL
            WHERE id = \(id) AND state IN ('dead', 'cancelled')
            """).affectedRows == 1
    }

    /// Deletes finished jobs older than the retention periods, in batches; returns how many.
    /// Unique keys of deleted jobs become free again, so keep `retention` longer than any
    /// redelivery window (Telegram retries for up to 24 hours; the default is 7 days).
    @discardableResult
    public func prune(retention: Duration = .seconds(7 * 86_400), deadRetention: Duration = .seconds(30 * 86_400)) async throws -> Int {
        var total = 0
        while true {
            let deleted = try await database.query("""
                DELETE FROM jobs WHERE id IN (
                    SELECT id FROM jobs
                    WHERE (state IN ('completed', 'cancelled') AND finished_at < now() - \(JobQueue.milliseconds(retention)) * interval '1 millisecond')
                       OR (state = 'dead' AND finished_at < now() - \(JobQueue.milliseconds(deadRetention)) * interval '1 millisecond')
                    LIMIT 5000)
                """).affectedRows
            total += deleted
            if deleted < 5000 { return total }
        }
    }

    /// Queue figures: depth by kind and state, the oldest due job's wait, dead jobs.
    public struct Statistics: Sendable, Equatable {
        /// Row counts by kind and state.
        public var counts: [Count]
        /// How long the longest-waiting due job has waited (0 when none is waiting).
        public var oldestAvailableAge: Duration
        /// Jobs that ran out of attempts or failed permanently (not yet pruned).
        public var dead: Int
        /// Jobs running with an expired lease (their worker is gone; the next rescue takes them).
        public var expiredLeases: Int

        /// Count of jobs of one kind in one state.
        public struct Count: Sendable, Equatable {
            /// The kind.
            public var kind: String
            /// The state.
            public var state: JobState
            /// How many.
            public var count: Int

            /// A count.
            public init(kind: String, state: JobState, count: Int) {
                self.kind = kind
                self.state = state
                self.count = count
            }
        }
    }

    /// Pending work only (available and running jobs by kind): cheap enough for every metrics
    /// scrape, since it reads the partial indexes rather than every finished row.
    public func depth() async throws -> [Statistics.Count] {
        try await database.query("""
            SELECT kind, 'available', count(*) FROM jobs WHERE state = 'available' GROUP BY kind
            UNION ALL
            SELECT kind, 'running', count(*) FROM jobs WHERE state = 'running' GROUP BY kind
            """).map { row in
            let (kind, state, count) = try row.decode(String.self, String.self, Int.self)
            return Statistics.Count(kind: kind, state: JobState(rawValue: state) ?? .available, count: count)
        }
    }

    /// Reads the queue figures.
    public func statistics() async throws -> Statistics {
        let counts = try await database.query("SELECT kind, state, count(*) FROM jobs GROUP BY kind, state ORDER BY kind, state").map { row in
            let (kind, state, count) = try row.decode(String.self, String.self, Int.self)
            return Statistics.Count(kind: kind, state: JobState(rawValue: state) ?? .available, count: count)
        }
        let row = try await database.query("""
            SELECT coalesce((SELECT extract(epoch FROM now() - min(run_at)) FROM jobs WHERE state = 'available' AND run_at <= now()), 0)::float8,
                   (SELECT count(*) FROM jobs WHERE state = 'running' AND lease_expires_at < now())
            """)[0]
        let (age, expired) = try row.decode(Double.self, Int.self)
        return Statistics(
            counts: counts, oldestAvailableAge: .milliseconds(Int64(age * 1000)),
            dead: counts.filter { $0.state == .dead }.reduce(0) { $0 + $1.count }, expiredLeases: expired
        )
    }

    /// One job as an operator sees it.
    public struct Record: Sendable {
        public var id: Int64
        public var kind: String
        public var state: JobState
        public var attempt: Int
        public var maxAttempts: Int
        public var priority: Int
        public var runAt: Date
        public var createdAt: Date
        public var finishedAt: Date?
        public var uniqueKey: String?
        public var serialKey: String?
        public var lockedBy: String?
        /// The JSON payload (may hold user data: shown only by `aisha jobs show`).
        public var payload: String
        /// The JSON array of failed attempts.
        public var errors: String
    }

    /// The columns `record(_:)` reads, in its order.
    private static let recordColumns: PostgresQuery = """
        SELECT id, kind, state, attempt, max_attempts, priority, run_at, created_at, finished_at, unique_key, serial_key,
               locked_by, payload::text, errors::text FROM jobs
        """

    /// The newest jobs, optionally of one state and kind.
    public func list(state: JobState? = nil, kind: String? = nil, limit: Int = 50) async throws -> [Record] {
        try await database.query("""
            \(Self.recordColumns) WHERE (\(state?.rawValue)::text IS NULL OR state = \(state?.rawValue))
                        AND (\(kind)::text IS NULL OR kind = \(kind))
            ORDER BY id DESC LIMIT \(limit)
            """).map(Self.record)
    }

    /// One job by id.
    public func job(id: Int64) async throws -> Record? {
        try await database.query("""
            \(Self.recordColumns) WHERE id = \(id)
            """).map(Self.record).first
    }

    private static func record(_ row: PostgresRow) throws -> Record {
        Record(
            id: try row.decode(Int64.self, at: 0), kind: try row.decode(String.self, at: 1),
            state: JobState(rawValue: try row.decode(String.self, at: 2)) ?? .available,
            attempt: try row.decode(Int.self, at: 3), maxAttempts: try row.decode(Int.self, at: 4), priority: try row.decode(Int.self, at: 5),
            runAt: try row.decode(Date.self, at: 6), createdAt: try row.decode(Date.self, at: 7), finishedAt: try row.decode(Date?.self, at: 8),
            uniqueKey: try row.decode(String?.self, at: 9), serialKey: try row.decode(String?.self, at: 10), lockedBy: try row.decode(String?.self, at: 11),
            payload: try row.decode(String.self, at: 12), errors: try row.decode(String.self, at: 13)
        )
    }
}
