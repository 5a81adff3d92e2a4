import Foundation
import JobQueue
import Logging
import Postgres
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

/// A worker running in this process inside a ServiceGroup, stopped the way SIGTERM stops it.
struct RunningWorker {
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(_ worker: JobWorker) {
        let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [], logger: TestServices.logger)
        self.group = group
        self.task = Task { try await group.run() }
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
///
/// The condition is an escaping `@Sendable` closure, and callers bind the result before `#expect`:
/// with a non-escaping closure written inside `#expect(…)`, a later `eventually` call in the same
/// function was seen to run the earlier closure (Swift 6.3.1, debug build).
func eventually(timeout: Duration = .seconds(30), _ condition: @escaping @Sendable () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

func count(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int {
    try await client.query(query)[0].decode(Int.self, at: 0)
}

@Suite struct JobWorkerTests {
    func fastConfiguration() -> JobWorker.Configuration {
        var configuration = JobWorker.Configuration()
        configuration.pollInterval = .milliseconds(100)
        configuration.backoff = Backoff(base: .milliseconds(20), cap: .milliseconds(100))
        configuration.rescueInterval = .milliseconds(200)
        return configuration
    }

    /// A chain of one chat's jobs passes between two workers that never poll (a 600 s poll
    /// interval): finishing a job that held back the next of its key must wake the workers by
    /// NOTIFY, whichever of them claims next; and finishing jobs does not make the claimer spin.
    @Test func aSerialChainIsHandedOnByNotifyNotByPolling() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 12)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            try await queue.enqueue((0..<10).map { _ in JobRequest(kind: "chain.step", payload: Data("{}".utf8), serialKey: "chat:1") })
            let handler = JobHandler(kind: "chain.step") { _, _ in }
            var configuration = fastConfiguration()
            configuration.pollInterval = .seconds(600)
            let started = ContinuousClock.now
            let workers = (0..<2).map { index in
                RunningWorker(JobWorker(queue: queue, handlers: [handler], configuration: configuration, logger: TestServices.logger, id: "chain\(index)"))
            }
            // Unloaded this takes well under a second; the bound only has to tell a loaded machine
            // (a clean-clone run once needed more than 20 s for 30 jobs) from a lost wake-up (600 s).
            let done = try await eventually(timeout: .seconds(120)) { try await count(client, "SELECT count(*) FROM jobs WHERE state = 'completed'") == 10 }
            let elapsed = ContinuousClock.now - started
            for worker in workers { try await worker.stop() }
            #expect(done, "a 10-job chain finished in \(elapsed) without polling")
        }
    }

    /// 4 workers, 50 chats × 20 jobs, random handler delays: each chat's jobs run one at a time
    /// in enqueue order, while different chats overlap.
    @Test func serialKeysKeepEachChatInOrderWhileChatsRunInParallel() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 12)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            struct Step: Codable { var chat: Int; var seq: Int }
            var requests: [JobRequest] = []
            for seq in 0..<20 {
                for chat in 0..<50 { requests.append(try JobRequest(kind: "chat.step", json: Step(chat: chat, seq: seq), serialKey: "chat:\(chat)")) }
            }
            try await queue.enqueue(requests)

            struct Run { var chat: Int; var seq: Int; var start: ContinuousClock.Instant; var end: ContinuousClock.Instant }
            let runs = Mutex<[Run]>([])
            let active = Mutex<(now: Int, peak: Int)>((0, 0))
            let handler = JobHandler(kind: "chat.step") { job, _ in
                let step = try job.decode(Step.self)
                let start = ContinuousClock.now
                active.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...4)))
                active.withLock { $0.now -= 1 }
                runs.withLock { $0.append(Run(chat: step.chat, seq: step.seq, start: start, end: ContinuousClock.now)) }
            }
            let workers = (0..<4).map { index in
                RunningWorker(JobWorker(queue: queue, handlers: [handler], configuration: fastConfiguration(), logger: TestServices.logger, id: "w\(index)"))
            }
            let done = try await eventually(timeout: .seconds(90)) { try await count(client, "SELECT count(*) FROM jobs WHERE state = 'completed'") == 1000 }
            for worker in workers { try await worker.stop() }
            #expect(done)
            let all = runs.withLock { $0 }
            #expect(all.count == 1000, "every job ran exactly once")
            for chat in 0..<50 {
                let chatRuns = all.filter { $0.chat == chat }.sorted { $0.start < $1.start }
                #expect(chatRuns.map(\.seq) == Array(0..<20), "chat \(chat) ran in enqueue order")
                for (a, b) in zip(chatRuns, chatRuns.dropFirst()) { #expect(a.end <= b.start, "chat \(chat) never ran two at once") }
            }
            let peak = active.withLock { $0.peak }
            #expect(peak > 4, "chats ran in parallel (peak \(peak) jobs at once)")
            let workersUsed = try await count(client, "SELECT count(DISTINCT locked_by) FROM jobs") // cleared on completion
            #expect(workersUsed == 0)
        }
    }

    @Test func failuresRetryWithBackoffThenDie() async throws {
        struct Flaky: Error {}
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            let attempts = Mutex<[String: Int]>([:])
            let handlers = [
                JobHandler(kind: "always.fails") { _, _ in attempts.withLock { $0["fails", default: 0] += 1 }; throw Flaky() },
                JobHandler(kind: "fails.twice") { _, _ in
                    let n = attempts.withLock { $0["twice", default: 0] += 1; return $0["twice"]! }
                    if n <= 2 { throw Flaky() }
                },
                JobHandler(kind: "bad.input") { _, _ in attempts.withLock { $0["bad", default: 0] += 1 }; throw JobFailure.permanent("not a photo") },
                JobHandler(kind: "rate.limited") { _, _ in
                    let n = attempts.withLock { $0["limited", default: 0] += 1; return $0["limited"]! }
                    if n <= 3 { throw JobFailure.retryAt(Date().addingTimeInterval(0.05), reason: "429") }
                },
                JobHandler(kind: "too.slow", timeout: .milliseconds(100)) { _, _ in try await Task.sleep(for: .seconds(10)) },
            ]
            let ids = try await queue.enqueue([
                JobRequest(kind: "always.fails", maxAttempts: 3), JobRequest(kind: "fails.twice", maxAttempts: 3),
                JobRequest(kind: "bad.input", maxAttempts: 3), JobRequest(kind: "rate.limited", maxAttempts: 1),
                JobRequest(kind: "too.slow", maxAttempts: 2),
            ]).map { $0! }
            let worker = RunningWorker(JobWorker(queue: queue, handlers: handlers, configuration: fastConfiguration(), logger: TestServices.logger))
            let settled = try await eventually(timeout: .seconds(30)) {
                try await count(client, "SELECT count(*) FROM jobs WHERE state IN ('completed', 'dead')") == 5
            }
            try await worker.stop()
            #expect(settled)
            let records = try await ids.asyncMap { try #require(try await queue.job(id: $0)) }
            #expect(records[0].state == .dead && records[0].attempt == 3 && attempts.withLock { $0["fails"] } == 3)
            #expect(records[1].state == .completed && records[1].attempt == 3)
            #expect(records[2].state == .dead && records[2].attempt == 1 && records[2].errors.contains("not a photo"))
            #expect(records[3].state == .completed && records[3].attempt == 1, "three 429s used no attempt of the single one allowed")
            #expect(records[4].state == .dead && records[4].attempt == 2 && records[4].errors.contains("timed out"))
        }
    }

    @Test func periodicJobsAreEnqueuedOncePerPeriodAcrossWorkers() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 8)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            var configuration = fastConfiguration()
            configuration.periodic = [PeriodicJob(kind: "tick", every: .seconds(1))]
            let ran = Mutex(0)
            let handler = JobHandler(kind: "tick") { _, _ in ran.withLock { $0 += 1 } }
            let started = ContinuousClock.now
            let workers = (0..<3).map { _ in RunningWorker(JobWorker(queue: queue, handlers: [handler], configuration: configuration, logger: TestServices.logger)) }
            try await Task.sleep(for: .milliseconds(3500))
            for worker in workers { try await worker.stop() }
            // Slots keep coming until the last worker has stopped, which a loaded machine delays.
            let elapsed = Int((ContinuousClock.now - started).components.seconds)
            let keys = try await client.query("SELECT unique_key FROM jobs WHERE kind = 'tick' ORDER BY unique_key").map { try $0.decode(String.self, at: 0) }
            #expect(keys.count >= 2 && keys.count <= elapsed + 2, "one per elapsed second (fewer only if the workers were starved): \(keys) in \(elapsed) s")
            #expect(Set(keys).count == keys.count)
            let seconds = keys.compactMap { Int($0.split(separator: ":").last!) }
            #expect(zip(seconds, seconds.dropFirst()).allSatisfy { $1 - $0 == 1 }, "consecutive periods, none skipped: \(seconds)")
            #expect(ran.withLock { $0 } == keys.count - (try await count(client, "SELECT count(*) FROM jobs WHERE kind = 'tick' AND state <> 'completed'")))
        }
    }

    @Test func gracefulStopFinishesShortJobsAndHandsBackLongOnes() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            struct Sleep: Codable { var ms: Int }
            try await queue.enqueue((0..<4).map { _ in try! JobRequest(kind: "sleep", json: Sleep(ms: 300)) }
                + (0..<3).map { _ in try! JobRequest(kind: "sleep", json: Sleep(ms: 60_000)) })
            var configuration = fastConfiguration()
            configuration.shutdownGrace = .seconds(1)
            let handler = JobHandler(kind: "sleep") { job, _ in try await Task.sleep(for: .milliseconds(try job.decode(Sleep.self).ms)) }
            let worker = RunningWorker(JobWorker(queue: queue, handlers: [handler], configuration: configuration, logger: TestServices.logger))
            let allClaimed = try await eventually { try await count(client, "SELECT count(*) FROM jobs WHERE attempt >= 1") == 7 }
            #expect(allClaimed)
            let stopping = ContinuousClock.now
            try await worker.stop()
            // The bound only has to tell the 1 s grace from the 60 s jobs; a loaded machine once took 8.5 s.
            #expect(ContinuousClock.now - stopping < .seconds(30), "1 s grace, not the 60 s jobs")
            #expect(try await count(client, "SELECT count(*) FROM jobs WHERE state = 'running'") == 0, "nothing left running")
            #expect(try await count(client, "SELECT count(*) FROM jobs WHERE state = 'completed'") == 4)
            #expect(try await count(client, "SELECT count(*) FROM jobs WHERE state = 'available' AND attempt = 0 AND run_at <= now() AND errors::text LIKE '%handed back%'") == 3)
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
