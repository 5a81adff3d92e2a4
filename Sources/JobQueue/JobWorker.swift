import Foundation
public import Logging
import Postgres
public import ServiceLifecycle
import Synchronization

/// The worker runtime: claims jobs in batches, runs them in N concurrent slots with a deadline
/// each, keeps their leases alive, acknowledges in batches, rescues jobs whose worker died,
/// enqueues periodic jobs, and on SIGTERM stops claiming, lets running jobs finish within a
/// grace period, then hands the rest back so another worker takes them at once.
public final class JobWorker: Service, Sendable {
    /// Runtime settings.
    public struct Configuration: Sendable {
        /// Jobs run at once in this process.
        public var concurrency = 512
        /// Most jobs claimed per round trip.
        public var claimBatch = 256
        /// How long a claim is valid without a heartbeat; heartbeats run every third of it.
        public var lease: Duration = .seconds(30)
        /// How often to look for work when no NOTIFY arrives.
        public var pollInterval: Duration = .seconds(1)
        /// How long running jobs may finish after SIGTERM before they are handed back.
        public var shutdownGrace: Duration = .seconds(10)
        /// How often this worker looks for expired leases.
        public var rescueInterval: Duration = .seconds(5)
        /// Retry delays.
        public var backoff = Backoff()
        /// Jobs enqueued once per period.
        public var periodic: [PeriodicJob] = []
        /// Wake up on NOTIFY (turn off behind PgBouncer transaction pooling; polling remains).
        public var listen = true

        /// The defaults.
        public init() {}
    }

    /// This worker's identity in `jobs.locked_by`.
    public let id: String
    private let queue: JobQueue
    private let handlers: [String: JobHandler]
    private let configuration: Configuration
    private let logger: Logger
    private let state = Mutex(RuntimeState())
    private let claimSignal = Signal()
    private let flushSignal = Signal()
    private let stopping = Atomic<Bool>(false)
    /// Set once no job runs any more: the flush loop then exits as soon as the buffer is empty.
    private let draining = Atomic<Bool>(false)

    private struct RuntimeState {
        /// Claimed and not yet acknowledged: id → attempt (heartbeats extend these).
        var held: [Int64: Int] = [:]
        /// Jobs whose handler is still running.
        var running = 0
        var completions: [JobQueue.Completion] = []
        /// The last claim was cut short by free slots, not by the queue running dry: a finishing
        /// job should wake the claimer. (Otherwise only NOTIFYs and the poll do: an empty claim
        /// after every job cost PostgreSQL as much as the useful one.)
        var claimerStarved = false
    }

    /// A worker for `handlers` on `queue`.
    public init(queue: JobQueue, handlers: [JobHandler], configuration: Configuration = Configuration(), logger: Logger, id: String? = nil) {
        self.queue = queue
        self.handlers = Dictionary(handlers.map { ($0.kind, $0) }, uniquingKeysWith: { $1 })
        self.configuration = configuration
        self.logger = logger
        self.id = id ?? "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UUID().uuidString.prefix(8))"
    }

    /// Runs until cancelled or a graceful shutdown; then drains as described above.
    public func run() async throws {
        logger.info("worker started", metadata: ["worker.id": "\(id)", "worker.kinds": "\(handlers.keys.sorted())", "worker.concurrency": "\(configuration.concurrency)"])
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { background in
                if configuration.listen { background.addTask { await self.listenLoop() } }
                // Heartbeats keep running until every acknowledgement is written.
                background.addTask { await self.heartbeatLoop() }
                background.addTask { await self.maintenanceLoop() }
                await withDiscardingTaskGroup { core in
                    core.addTask { await self.flushLoop() }
                    await self.claimAndRun()
                    self.draining.store(true, ordering: .releasing)
                    self.flushSignal.notify()
                }
                background.cancelAll()
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .releasing)
            self.claimSignal.notify()
        }
        logger.info("worker stopped", metadata: ["worker.id": "\(id)"])
    }

    // MARK: Claiming and running

    private func claimAndRun() async {
        let kinds = Array(handlers.keys)
        await withDiscardingTaskGroup { jobs in
            var failures = 0
            while !isStopping {
                let free = configuration.concurrency - state.withLock { $0.running }
                guard free > 0 else {
                    state.withLock { $0.claimerStarved = true }
                    await claimSignal.wait(timeout: configuration.pollInterval)
                    continue
                }
                let limit = min(free, configuration.claimBatch)
                let claimed: [ClaimedJob]
                do {
                    claimed = try await queue.claim(limit: limit, kinds: kinds, worker: id, lease: configuration.lease)
                    failures = 0
                } catch {
                    failures += 1
                    logger.warning("claim failed; retrying", metadata: ["db.error": "\(error)"])
                    await claimSignal.wait(timeout: .milliseconds(min(5000, 100 * (1 << min(failures, 6)))))
                    continue
                }
                state.withLock { state in
                    state.running += claimed.count
                    for job in claimed { state.held[job.id] = job.attempt }
                    state.claimerStarved = claimed.count == limit && limit < configuration.claimBatch
                }
                for job in claimed { jobs.addTask { await self.execute(job) } }
                if claimed.count < limit { await claimSignal.wait(timeout: configuration.pollInterval) }
            }
            // Stopping: let running jobs finish within the grace period, then cancel them.
            let deadline = ContinuousClock.now + configuration.shutdownGrace
            while state.withLock({ $0.running }) > 0, ContinuousClock.now < deadline {
                await claimSignal.wait(timeout: .milliseconds(50))
            }
            let left = state.withLock { $0.running }
            if left > 0 { logger.warning("grace period over; handing jobs back", metadata: ["worker.jobs": "\(left)"]) }
            jobs.cancelAll()
        }
    }

    private var isStopping: Bool { stopping.load(ordering: .acquiring) || Task.isCancelled }

    private func execute(_ job: ClaimedJob) async {
        var jobLogger = logger
        jobLogger[metadataKey: "job.id"] = "\(job.id)"
        jobLogger[metadataKey: "job.kind"] = "\(job.kind)"
        jobLogger[metadataKey: "job.attempt"] = "\(job.attempt)"
        let started = ContinuousClock.now
        let handlerLogger = jobLogger
        let outcome: JobOutcome
        if let handler = handlers[job.kind] {
            do {
                try await Self.withDeadline(handler.timeout) { try await handler.run(job, handlerLogger) }
                outcome = .completed
            } catch is CancellationError where isStopping {
                outcome = .handedBack
            } catch {
                outcome = JobOutcome.forFailure(error, attempt: job.attempt, maxAttempts: job.maxAttempts, now: Date(), backoff: configuration.backoff, unit: Double.random(in: 0..<1))
            }
        } else {
            outcome = .dead(error: "no handler for kind \(job.kind)")  // unreachable: claims filter by kind
        }
        let duration = ContinuousClock.now - started
        switch outcome {
        case .completed: jobLogger.debug("job completed", metadata: ["job.duration": "\(duration)"])
        case .handedBack: jobLogger.info("job handed back", metadata: ["job.duration": "\(duration)"])
        case .retry(let runAt, let error): jobLogger.warning("job failed; will retry", metadata: ["job.duration": "\(duration)", "job.error": "\(error)", "job.run_at": "\(runAt)"])
        case .retryWithoutAttempt(let runAt, let reason): jobLogger.info("job rescheduled", metadata: ["job.reason": "\(reason)", "job.run_at": "\(runAt)"])
        case .dead(let error): jobLogger.error("job dead", metadata: ["job.duration": "\(duration)", "job.error": "\(error)"])
        }
        let (free, starved) = state.withLock { state in
            state.running -= 1
            state.completions.append(JobQueue.Completion(id: job.id, attempt: job.attempt, outcome: outcome))
            return (configuration.concurrency - state.running, state.claimerStarved)
        }
        flushSignal.notify()
        // A claimer held back by full slots wakes once enough are free for a worthwhile batch.
        if starved, free >= max(1, min(configuration.claimBatch, configuration.concurrency) / 2) { claimSignal.notify() }
    }

    static func withDeadline(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw JobTimedOut(timeout: timeout)
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    // MARK: Acknowledgements

    /// Writes acknowledgements until the worker is draining and none are left. Bounded by one
    /// lease after draining starts: past that the jobs would be rescued anyway.
    private func flushLoop() async {
        var deadline: ContinuousClock.Instant?
        while true {
            let empty = state.withLock { $0.completions.isEmpty }
            if draining.load(ordering: .acquiring) {
                if empty { return }
                if deadline == nil { deadline = ContinuousClock.now + configuration.lease }
                if let deadline, ContinuousClock.now > deadline {
                    logger.error("could not write acknowledgements before stopping; their jobs will be rescued")
                    return
                }
            }
            if empty { await flushSignal.wait(timeout: .seconds(1)) }
            await flushOnce()
        }
    }

    /// Writes the buffered completions in one statement. On a database error they stay buffered
    /// (their leases keep being extended), so an acknowledgement is never dropped. The statement
    /// runs in an unstructured task so that cancelling the worker never cancels it half-way.
    private func flushOnce() async {
        let batch = state.withLock { state in defer { state.completions = [] }; return state.completions }
        guard !batch.isEmpty else { return }
        let queue = self.queue
        let worker = id
        do {
            let accepted = try await Task { try await queue.finish(batch, worker: worker) }.value
            state.withLock { state in for completion in batch { state.held[completion.id] = nil } }
            for lost in batch where !accepted.contains(lost.id) {
                logger.warning("acknowledgement rejected: lease lost", metadata: ["job.id": "\(lost.id)", "job.attempt": "\(lost.attempt)"])
            }
            // A job put back to run now is claimable again; a finished one that held back the next
            // of its serial key made `finish` NOTIFY (which reaches this worker unless it polls).
            if !configuration.listen || batch.contains(where: \.outcome.isRequeued) { claimSignal.notify() }
        } catch {
            logger.warning("acknowledgement failed; will retry", metadata: ["db.error": "\(error)"])
            state.withLock { $0.completions.insert(contentsOf: batch, at: 0) }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    // MARK: Background loops

    private func listenLoop() async {
        for await event in queue.database.listen(to: [JobQueue.channel], logger: logger) {
            if Task.isCancelled { break }
            // Both a new job and a (re)subscription mean "look now": NOTIFYs may have been missed.
            _ = event
            claimSignal.notify()
        }
    }

    private func heartbeatLoop() async {
        let interval = configuration.lease / 3
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let held = state.withLock { $0.held.map { (id: $0.key, attempt: $0.value) } }
            guard !held.isEmpty else { continue }
            do {
                let kept = try await queue.extendLeases(held, worker: id, lease: configuration.lease)
                for lost in held where !kept.contains(lost.id) {
                    logger.warning("lease lost; the job will run elsewhere", metadata: ["job.id": "\(lost.id)", "job.attempt": "\(lost.attempt)"])
                }
            } catch {
                logger.warning("heartbeat failed", metadata: ["db.error": "\(error)"])
            }
        }
    }

    private func maintenanceLoop() async {
        var lastRescue = ContinuousClock.now - configuration.rescueInterval
        var lastSlots: [String: Date] = [:]
        while !Task.isCancelled {
            if ContinuousClock.now - lastRescue >= configuration.rescueInterval {
                lastRescue = ContinuousClock.now
                do {
                    let rescued = try await queue.rescueExpiredLeases()
                    if rescued > 0 {
                        logger.warning("rescued jobs with expired leases", metadata: ["jobs.rescued": "\(rescued)"])
                        claimSignal.notify()
                    }
                } catch {
                    logger.warning("lease rescue failed", metadata: ["db.error": "\(error)"])
                }
            }
            for periodic in configuration.periodic {
                let due = PeriodicJob.slotsDue(periodic, since: lastSlots[periodic.kind], now: Date())
                guard !due.isEmpty else { continue }
                do {
                    try await queue.enqueue(due.map { JobRequest(kind: periodic.kind, payload: periodic.payload, runAt: $0.start, uniqueKey: $0.key) })
                    lastSlots[periodic.kind] = due.last!.start
                } catch {
                    logger.warning("periodic enqueue failed", metadata: ["job.kind": "\(periodic.kind)", "db.error": "\(error)"])
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}

extension JobOutcome {
    /// Back in the queue as available (a retry, a reschedule or a hand-back), not finished.
    var isRequeued: Bool {
        switch self {
        case .completed, .dead: false
        case .retry, .retryWithoutAttempt, .handedBack: true
        }
    }
}
