public import Foundation
public import Logging

/// Runs the jobs of one kind.
public struct JobHandler: Sendable {
    /// The kind it runs, e.g. `telegram.update`.
    public var kind: String
    /// Each attempt's deadline; the task is cancelled when it passes and the attempt fails.
    public var timeout: Duration
    /// The work. Throw `JobFailure` to reschedule without counting the attempt or to fail
    /// permanently; any other error retries with backoff.
    public var run: @Sendable (ClaimedJob, Logger) async throws -> Void

    /// A handler.
    public init(kind: String, timeout: Duration = .seconds(60), run: @escaping @Sendable (ClaimedJob, Logger) async throws -> Void) {
        self.kind = kind
        self.timeout = timeout
        self.run = run
    }
}

/// A job enqueued once per period, however many workers run (its unique key names the period).
public struct PeriodicJob: Sendable {
    /// The kind to enqueue.
    public var kind: String
    /// The period.
    public var period: Duration
    /// The payload.
    public var payload: Data

    /// A periodic job.
    public init(kind: String, every period: Duration, payload: Data = Data("{}".utf8)) {
        self.kind = kind
        self.period = period
        self.payload = payload
    }

    /// The unique key and start of the period containing `date` (pure).
    public func slot(containing date: Date) -> (key: String, start: Date) {
        let seconds = max(1, Backoff.seconds(period))
        let start = (date.timeIntervalSince1970 / seconds).rounded(.down) * seconds
        return ("periodic:\(kind):\(Int64(start))", Date(timeIntervalSince1970: start))
    }
}

extension PeriodicJob {
    /// The slots to enqueue now (pure): the current one, plus any missed since `last` (at most
    /// 10), so a worker that was starved or paused still enqueues one job per period. Other
    /// workers enqueueing the same slots are harmless: the unique key drops the repeats.
    static func slotsDue(_ job: PeriodicJob, since last: Date?, now: Date) -> [(key: String, start: Date)] {
        let current = job.slot(containing: now)
        guard let last else { return [current] }
        guard current.start > last else { return [] }
        let period = max(1, Backoff.seconds(job.period))
        let missed = Int(((current.start.timeIntervalSince1970 - last.timeIntervalSince1970) / period).rounded()) - 1
        let first = max(0, missed - 10) + 1
        return (first...max(first, missed + 1)).map { step in
            job.slot(containing: last.addingTimeInterval(period * Double(step)))
        }
    }
}

/// An attempt that ran past its handler's deadline.
struct JobTimedOut: Error, CustomStringConvertible {
    let timeout: Duration
    var description: String { "timed out after \(timeout)" }
}
