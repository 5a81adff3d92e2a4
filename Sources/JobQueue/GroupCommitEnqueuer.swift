import BlockingIO
import Foundation
import Postgres
import Synchronization

/// Enqueues jobs with group commit: callers arriving while a batch is being written wait and
/// share the next statement and the next commit, so N concurrent webhooks cost about one
/// round trip and one fsync instead of N — and each caller still returns only after its own
/// row is committed.
///
/// Batches are written by up to `maxInFlight` threads of the enqueuer's own, each with a
/// PostgreSQL session of its own and blocking calls: a batch costs no task, no hop to the
/// client's threads and back, and a writer that finds more pending goes on without waking
/// anyone. The first caller to find fewer than `maxInFlight` writers busy starts one; it keeps
/// writing until nothing is pending. One writer is the default: a second overlaps its batch with
/// the first's commit, but each batch is then smaller and every statement and commit has a fixed
/// cost, so on 2 cores one writer stored more (docs/benchmarks.md, session 10).
public final class GroupCommitEnqueuer: Sendable {
    public enum Result: Sendable, Equatable {
        /// A new job was stored.
        case enqueued
        /// Its unique key was already taken: stored earlier (a redelivery).
        case duplicate
    }

    /// Called once with the job's fate, on the thread that wrote its batch.
    public typealias Completion = @Sendable (Swift.Result<Result, any Error>) -> Void

    struct Pending: Sendable {
        var job: JobRequest
        var completion: Completion
    }

    struct State: Sendable {
        var pending: [Pending] = []
        var inFlight = 0
        /// Sessions of writers that stopped, for the next ones: at most `maxInFlight` ever open.
        var idleSessions: [PostgresSession] = []
    }

    let configuration: PostgresClient.Configuration
    let maxBatch: Int
    let maxInFlight: Int
    private let writers: BlockingThreadPool
    private let state = Mutex(State())
    private let batches = Atomic<Int>(0)
    private let jobs = Atomic<Int>(0)

    /// An enqueuer writing into `queue`'s database (with its settings, on sessions of its own),
    /// at most `maxBatch` jobs per statement and `maxInFlight` statements at once.
    public init(queue: JobQueue, maxBatch: Int = 500, maxInFlight: Int = 1) {
        precondition(maxBatch > 0 && maxInFlight > 0)
        self.configuration = queue.database.configuration
        self.maxBatch = maxBatch
        self.maxInFlight = maxInFlight
        self.writers = BlockingThreadPool(name: "group-commit", threadCount: maxInFlight)
    }

    deinit { writers.shutdown() }

    /// Stores `job` and returns once it is committed.
    /// - Throws: the database's error when the batch could not be written; nothing was stored.
    public func enqueue(_ job: JobRequest) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in enqueue(job) { continuation.resume(with: $0) } }
    }

    /// Stores `job` and calls `completion` once it is committed (or failed). Returns at once:
    /// this is the form for callers that must not wait, like an event-loop thread.
    public func enqueue(_ job: JobRequest, completion: @escaping Completion) {
        let lead = state.withLock { state -> Bool in
            state.pending.append(Pending(job: job, completion: completion))
            guard state.inFlight < maxInFlight else { return false }
            state.inFlight += 1
            return true
        }
        // The writers live as long as `self`, so the submission cannot be refused.
        if lead { writers.submit { self.drain() } }
    }

    /// Batches and jobs written so far (jobs per batch is the group-commit factor).
    public var counters: (batches: Int, jobs: Int) { (batches.load(ordering: .relaxed), jobs.load(ordering: .relaxed)) }

    /// One writer: takes batches until none is pending. Runs on a writer thread, blocking.
    private func drain() {
        let session = state.withLock { $0.idleSessions.popLast() } ?? PostgresSession(configuration: configuration)
        while true {
            let batch = state.withLock { state -> [Pending] in
                let batch = Array(state.pending.prefix(maxBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty {
                    // In the same critical section as the count, so a writer starting next finds it.
                    state.inFlight -= 1
                    state.idleSessions.append(session)
                }
                return batch
            }
            if batch.isEmpty { return }
            write(batch, on: session)
        }
    }

    private func write(_ batch: [Pending], on session: PostgresSession) {
        do {
            let requests = batch.map(\.job)
            let rows: PostgresRows
            do {
                rows = try session.query(JobQueue.enqueueStatement(requests, assumingNewKeys: true))
            } catch let error as PostgresError where error.sqlState == "23505" {
                // A redelivery is in the batch: the statement stored nothing; skip the taken keys.
                rows = try session.query(JobQueue.enqueueStatement(requests))
            }
            let ids = try JobQueue.enqueuedIDs(requests, rows)
            batches.add(1, ordering: .relaxed)
            jobs.add(batch.count, ordering: .relaxed)
            for (pending, id) in zip(batch, ids) { pending.completion(.success(id == nil ? .duplicate : .enqueued)) }
        } catch let error as PostgresError where batch.count > 1 && error.sqlState?.hasPrefix("22") == true {
            // A data error (say, a payload PostgreSQL cannot store) belongs to one job: write
            // them one by one so only that job fails and the others are not punished for it.
            for pending in batch { write([pending], on: session) }
        } catch {
            for pending in batch { pending.completion(.failure(error)) }
        }
    }
}
