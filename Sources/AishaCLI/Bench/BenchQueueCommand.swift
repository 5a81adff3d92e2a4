import ArgumentParser
import Foundation
import JobQueue
import Logging
import Postgres
import Synchronization

/// `aisha bench queue`: the job queue's throughput and latency next to pgbench's ceiling,
/// measured in one run on the same cluster (in a scratch database that is dropped afterwards).
struct BenchQueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Enqueue and processing throughput, enqueue→start latency, and pgbench's INSERT ceiling."
    )

    @OptionGroup var database: BenchDatabaseOptions
    @Option(help: "Jobs for the no-op processing run.") var jobs = 200_000
    @Option(help: "Jobs per statement in the batch enqueue run.") var batchSize = 5_000
    @Option(help: "Seconds per pgbench run.") var pgbenchSeconds = 10
    @Option(help: "Jobs for the latency run (enqueued one at a time at --latency-rate per second).") var latencyJobs = 2_000
    @Option(help: "Enqueues per second in the latency run.") var latencyRate = 200
    @Option(help: "JobWorkers in this process for the processing run.") var workers = 1
    @Option(help: "Override the worker's concurrency (default: the runtime's default).") var concurrency: Int?
    @Option(help: "Override the worker's claim batch (default: the runtime's default).") var claimBatch: Int?
    @Flag(help: "Skip the pgbench and one-per-statement runs.") var quick = false

    func run() async throws {
        let (url, migrations) = try database.resolve()
        let logger = BenchSupport.logger
        let settings = workerConfiguration
        print("aisha bench queue: \(jobs) no-op jobs, batches of \(batchSize), \(workers) worker(s), concurrency \(settings.concurrency), claim batch \(settings.claimBatch)")
        try await BenchSupport.withScratchDatabase(adminURL: url, migrationsDirectory: migrations, logger: logger) { scratch in
            let client = try PostgresClient(url: scratch, maxConnections: 20, logger: logger)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            if !quick {
                let pg1 = try await BenchSupport.pgbenchInsertTPS(url: scratch, clients: 1, seconds: pgbenchSeconds)
                let pg16 = try await BenchSupport.pgbenchInsertTPS(url: scratch, clients: 16, seconds: pgbenchSeconds)
                print("pgbench one-row INSERT transactions/s:   1 client \(BenchSupport.format(pg1)), 16 clients \(BenchSupport.format(pg16))")

                // 1. One job per statement, from one task and from 16.
                let single = try await enqueueRate(queue, count: 3_000, concurrency: 1)
                let single16 = try await enqueueRate(queue, count: 10_000, concurrency: 16)
                print("enqueue one per statement jobs/s:        1 client \(BenchSupport.format(single)), 16 clients \(BenchSupport.format(single16))")
                try await client.query("TRUNCATE jobs")
            }

            // 2. Batches.
            let started = ContinuousClock.now
            var enqueued = 0
            while enqueued < jobs {
                let n = min(batchSize, jobs - enqueued)
                try await queue.enqueue((0..<n).map { _ in JobRequest(kind: "bench.noop") })
                enqueued += n
            }
            let batchRate = Double(jobs) / BenchSupport.seconds(ContinuousClock.now - started)
            print("enqueue in batches of \(batchSize) jobs/s:      \(BenchSupport.format(batchRate))")
            try await client.query("VACUUM ANALYZE jobs")

            // 3. Process them with no-op handlers.
            let processed = try await processRate(queue, client: client, count: jobs, logger: logger)
            print("no-op processing jobs/s (claim→ack):     \(BenchSupport.format(processed))")
            try await client.query("TRUNCATE jobs")

            // 4. Enqueue→start latency on an unsaturated queue.
            let (p50, p99, max) = try await latency(queue, logger: logger)
            print("enqueue→start latency ms at \(latencyRate)/s:     p50 \(BenchSupport.format(p50))  p99 \(BenchSupport.format(p99))  max \(BenchSupport.format(max))")
        }
    }

    private var workerConfiguration: JobWorker.Configuration {
        var configuration = JobWorker.Configuration()
        if let concurrency { configuration.concurrency = concurrency }
        if let claimBatch { configuration.claimBatch = claimBatch }
        return configuration
    }

    private func enqueueRate(_ queue: JobQueue, count: Int, concurrency: Int) async throws -> Double {
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<concurrency {
                group.addTask {
                    for _ in stride(from: lane, to: count, by: concurrency) { try await queue.enqueue(JobRequest(kind: "bench.single")) }
                }
            }
            try await group.waitForAll()
        }
        return Double(count) / BenchSupport.seconds(ContinuousClock.now - started)
    }

    private func processRate(_ queue: JobQueue, client: PostgresClient, count: Int, logger: Logger) async throws -> Double {
        let ran = Counter()
        let handler = JobHandler(kind: "bench.noop") { _, _ in ran.value.add(1, ordering: .relaxed) }
        let started = ContinuousClock.now
        let workers = self.workers
        let configuration = workerConfiguration
        let done: Duration = try await withThrowingTaskGroup(of: Duration?.self) { group in
            for index in 0..<workers {
                group.addTask {
                    try await JobWorker(queue: queue, handlers: [handler], configuration: configuration, logger: logger, id: "bench-\(index)").run()
                    return nil
                }
            }
            group.addTask {
                // Done when every job is acknowledged as completed in the database.
                while true {
                    try await Task.sleep(for: .milliseconds(20))
                    if ran.value.load(ordering: .relaxed) >= count {
                        let completed = try await client.query("SELECT count(*) FROM jobs WHERE state = 'completed'")[0].decode(Int.self, at: 0)
                        if completed >= count { return ContinuousClock.now - started }
                    }
                }
            }
            var elapsed: Duration?
            while elapsed == nil, let next = try await group.next() { elapsed = next }
            group.cancelAll()
            return elapsed!
        }
        return Double(count) / BenchSupport.seconds(done)
    }

    private func latency(_ queue: JobQueue, logger: Logger) async throws -> (Double, Double, Double) {
        struct Stamp: Codable { var at: Double }
        let samples = Mutex<[Double]>([])
        let handler = JobHandler(kind: "bench.latency") { job, _ in
            let stamp = try job.decode(Stamp.self)
            samples.withLock { $0.append((Date().timeIntervalSince1970 - stamp.at) * 1000) }
        }
        let expected = latencyJobs
        let configuration = workerConfiguration
        let rate = latencyRate
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await JobWorker(queue: queue, handlers: [handler], configuration: configuration, logger: logger, id: "bench-latency").run() }
            try await Task.sleep(for: .milliseconds(500))  // let the worker subscribe to NOTIFY
            let interval = Duration.seconds(1) / rate
            let start = ContinuousClock.now
            for index in 0..<expected {
                try await Task.sleep(until: start + interval * index, clock: .continuous)
                try await queue.enqueue(try JobRequest(kind: "bench.latency", json: Stamp(at: Date().timeIntervalSince1970)))
            }
            while samples.withLock({ $0.count }) < expected { try await Task.sleep(for: .milliseconds(20)) }
            group.cancelAll()
        }
        let values = samples.withLock { $0 }
        return (BenchSupport.quantile(values, 0.5), BenchSupport.quantile(values, 0.99), values.max() ?? .nan)
    }
}

/// A shared counter for handlers.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// `aisha bench …`.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks whose numbers are recorded in docs/benchmarks.md.",
        subcommands: [BenchQueueCommand.self, BenchIngestCommand.self, BenchPipelineCommand.self, BenchBotCommand.self]
    )
}
