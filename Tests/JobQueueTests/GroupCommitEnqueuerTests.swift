import Foundation
import JobQueue
import Postgres
import Synchronization
import TestSupport
import Testing

/// The webhook's group commit against real PostgreSQL. Batches are made deterministic by
/// holding a lock that blocks the writer's INSERT: whatever arrives meanwhile is one batch.
@Suite struct GroupCommitEnqueuerTests {
    /// A batch whose statement assumed new keys meets a redelivery and a key repeated inside the
    /// batch: it is written again with `ON CONFLICT`, the new jobs are stored once, the repeats
    /// are reported as duplicates.
    @Test func aBatchWithTakenKeysStoresTheNewOnesOnce() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 2)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            try await queue.enqueue(JobRequest(kind: "telegram.update", uniqueKey: "tg:update:1"))
            let enqueuer = GroupCommitEnqueuer(queue: queue, maxInFlight: 1)

            let jobs = [
                JobRequest(kind: "telegram.update", uniqueKey: "tg:update:2"),
                JobRequest(kind: "telegram.update", uniqueKey: "tg:update:1"),  // stored before
                JobRequest(kind: "telegram.update", uniqueKey: "tg:update:3"),
                JobRequest(kind: "telegram.update", uniqueKey: "tg:update:3"),  // repeated in the batch
                JobRequest(kind: "keyless"),
            ]
            let results = try await Self.inOneBatch(jobs, enqueuer: enqueuer, client: client)
            #expect(try results.map { try $0.get() } == [.enqueued, .duplicate, .enqueued, .duplicate, .enqueued])
            let rows = try await client.query("SELECT coalesce(unique_key, kind), count(*) FROM jobs GROUP BY 1 ORDER BY 1")
            let counts = try rows.map { try $0.decode(String.self, Int.self) }
            #expect(counts.map(\.0) == ["keyless", "probe", "tg:update:1", "tg:update:2", "tg:update:3"])
            #expect(counts.allSatisfy { $0.1 == 1 })
            #expect(enqueuer.counters.jobs == jobs.count + 1 && enqueuer.counters.batches == 2, "the probe's batch, then the five jobs'")
        }
    }

    /// A payload PostgreSQL refuses fails its own job only; the rest of the batch is stored.
    @Test func aRefusedPayloadFailsOnlyItsJob() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 2)
            defer { client.shutdown() }
            let enqueuer = GroupCommitEnqueuer(queue: JobQueue(database: client), maxInFlight: 1)
            let jobs = [
                JobRequest(kind: "good", uniqueKey: "a"),
                JobRequest(kind: "bad", payload: Data("{not json".utf8), uniqueKey: "b"),
                JobRequest(kind: "good", uniqueKey: "c"),
            ]
            let results = try await Self.inOneBatch(jobs, enqueuer: enqueuer, client: client)
            #expect((try? results[0].get()) == .enqueued && (try? results[2].get()) == .enqueued)
            guard case .failure(let error as PostgresError) = results[1] else { Issue.record("the bad payload was stored: \(results[1])"); return }
            #expect(error.sqlState == "22P02")
            #expect(try await client.query("SELECT string_agg(unique_key, ',' ORDER BY id) FROM jobs")[0].decode(String.self, at: 0) == "a,c")
        }
    }

    /// Enqueues `jobs` while a lock blocks the writer, so they are written as one batch (after a
    /// first batch holding at most a lone probe job the writer took before it blocked).
    static func inOneBatch(
        _ jobs: [JobRequest], enqueuer: GroupCommitEnqueuer, client: PostgresClient
    ) async throws -> [Result<GroupCommitEnqueuer.Result, any Error>] {
        let results = Mutex<[Int: Result<GroupCommitEnqueuer.Result, any Error>]>([:])
        try await client.withTransaction { locker in
            try await locker.query("LOCK TABLE jobs IN SHARE MODE")
            enqueuer.enqueue(JobRequest(kind: "probe")) { _ in }
            // The writer is waiting for the lock once it took the probe's batch.
            let deadline = Date().addingTimeInterval(10)
            while try await locker.query("SELECT count(*) FROM pg_locks WHERE relation = 'jobs'::regclass AND NOT granted")[0].decode(Int.self, at: 0) == 0 {
                guard Date() < deadline else { throw TestServicesError("the writer never blocked on the lock") }
                try await Task.sleep(for: .milliseconds(5))
            }
            for (index, job) in jobs.enumerated() { enqueuer.enqueue(job) { result in results.withLock { $0[index] = result } } }
        }
        let deadline = Date().addingTimeInterval(10)
        while results.withLock({ $0.count }) < jobs.count {
            guard Date() < deadline else { throw TestServicesError("the batch was never written") }
            try await Task.sleep(for: .milliseconds(5))
        }
        return results.withLock { collected in jobs.indices.map { collected[$0]! } }
    }
}
