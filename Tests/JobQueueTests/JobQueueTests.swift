import Foundation
import JobQueue
import Postgres
import TestSupport
import Testing

/// The queue's SQL against real PostgreSQL, each test in a fresh migrated database.
@Suite struct JobQueueTests {
    @Test func uniqueKeysUnderConcurrentEnqueue() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 10)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            let ids = try await withThrowingTaskGroup(of: Int64?.self) { group in
                for _ in 0..<40 { group.addTask { try await queue.enqueue(JobRequest(kind: "telegram.update", uniqueKey: "tg:1001")) } }
                return try await group.reduce(into: [Int64?]()) { $0.append($1) }
            }
            #expect(ids.compactMap { $0 }.count == 1)
            #expect(try await client.query("SELECT count(*) FROM jobs").first?.decode(Int.self, at: 0) == 1)
            // Inside one batch: the repeat is dropped, keyless jobs map to their ids in order.
            let batch = try await queue.enqueue([
                JobRequest(kind: "a"), JobRequest(kind: "b", uniqueKey: "k2"), JobRequest(kind: "c", uniqueKey: "k2"),
                JobRequest(kind: "d", uniqueKey: "tg:1001"), JobRequest(kind: "e"),
            ])
            #expect(batch[2] == nil && batch[3] == nil)
            let kinds = try await client.query("SELECT id, kind FROM jobs").reduce(into: [Int64: String]()) { $0[try $1.decode(Int64.self, at: 0)] = try $1.decode(String.self, at: 1) }
            #expect(kinds[batch[0]!] == "a" && kinds[batch[1]!] == "b" && kinds[batch[4]!] == "e")
            // All new (the usual webhook batch): the ids map one to one, in order.
            let fresh = try await queue.enqueue([JobRequest(kind: "f", uniqueKey: "k3"), JobRequest(kind: "g"), JobRequest(kind: "h", uniqueKey: "k4")])
            let freshKinds = try await client.query("SELECT id, kind FROM jobs").reduce(into: [Int64: String]()) { $0[try $1.decode(Int64.self, at: 0)] = try $1.decode(String.self, at: 1) }
            #expect(fresh.map { $0.flatMap { freshKinds[$0] } } == ["f", "g", "h"])
            // A finished job still holds its key: a redelivered webhook is dropped.
            let claimed = try await queue.claim(limit: 10, kinds: ["telegram.update"], worker: "w", lease: .seconds(30))
            try await queue.finish(claimed.map { .init(id: $0.id, attempt: $0.attempt, outcome: .completed) }, worker: "w")
            #expect(try await queue.enqueue(JobRequest(kind: "telegram.update", uniqueKey: "tg:1001")) == nil)
        }
    }

    /// `enqueueUnlessAdmitted` writes no row when the lane is clear and the admission admits;
    /// with the lane busy it queues the job now without asking for admission (nothing consumed);
    /// refused, it queues it for the time the admission names; a key already taken is not queued twice.
    @Test func jobsAdmittedAtEnqueueWriteNoRowTheOthersWaitTheirTurn() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 2)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            // An admission that counts its calls and admits, or refuses for an hour.
            try await client.query("CREATE TABLE admissions (at timestamptz NOT NULL DEFAULT clock_timestamp())")
            try await client.query("""
                CREATE FUNCTION admit(refuse boolean) RETURNS timestamptz LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO admissions DEFAULT VALUES; RETURN CASE WHEN refuse THEN now() + interval '1 hour' END; END $$
                """)
            func offer(_ key: String, lane: String, refuse: Bool) async throws -> Bool {
                let job = JobRequest(kind: "follow", payload: Data(#"{"key":"\#(key)"}"#.utf8), uniqueKey: key, serialKey: lane)
                return try await client.withTransaction { tx in
                    try JobQueue.admitted(try await tx.commit(after: [JobQueue.enqueueUnlessAdmitted(job, admission: "admit(\(refuse))")])[0])
                }
            }
            // Lane "busy" already holds a job, due in an hour.
            try await queue.enqueue(JobRequest(kind: "follow", runAt: Date().addingTimeInterval(3600), uniqueKey: "busy-first", serialKey: "lane:busy"))
            #expect(try await offer("open", lane: "lane:open", refuse: false), "a clear lane, admitted")
            #expect(try await !offer("busy", lane: "lane:busy", refuse: false), "behind an earlier job of its lane")
            #expect(try await !offer("shut", lane: "lane:shut", refuse: true), "refused by the admission")
            #expect(try await !offer("shut", lane: "lane:shut", refuse: false), "its lane now holds the refused one")
            let rows = try await client.query("SELECT unique_key, state, attempt, run_at > now() + interval '50 minutes' FROM jobs WHERE unique_key <> 'busy-first' ORDER BY unique_key")
            #expect(try rows.map { try $0.decode(String.self, String.self, Int.self, Bool.self) }.map { "\($0.0) \($0.1) \($0.2) \($0.3)" }
                    == ["busy available 0 false", "shut available 0 true"], "no row for the admitted one; a busy lane queues now, a refusal at its retry time, once")
            #expect(try await count(client, "SELECT count(*) FROM admissions") == 2, "admission asked only on a clear lane: the open and the first shut")
        }
    }

    /// Acknowledgements are planned once per connection (a generic plan), not once per call:
    /// PostgreSQL on its own kept making a custom plan for every call (0.5 ms each).
    @Test func claimsAndAcknowledgementsReuseOneGenericPlan() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 1)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            try await queue.enqueue((0..<8).map { _ in JobRequest(kind: "ack.me") })
            var claimed: [ClaimedJob] = []
            for limit in 1...3 { claimed += try await queue.claim(limit: limit, kinds: ["ack.me"], worker: "w", lease: .seconds(30)) }
            claimed += try await queue.claim(limit: 8, kinds: ["ack.me"], worker: "w", lease: .seconds(30))
            #expect(claimed.count == 8 && Set(claimed.map { $0.id }).count == 8)
            for job in claimed {
                let accepted = try await queue.finish([.init(id: job.id, attempt: job.attempt, outcome: .completed)], worker: "w")
                #expect(accepted == [job.id])
            }
            for (statement, calls) in [("SELECT FROM jobs WHERE id = ANY%FOR UPDATE", 8), ("WITH done AS%unblocked%", 8), ("%SET state = 'running'%SKIP LOCKED%", 4)] {
                let plans = try await client.query("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE \(statement)")
                let (generic, custom) = try #require(plans.first).decode(Int.self, Int.self)
                #expect(generic == calls && custom == 0, "\(statement): generic \(generic), custom \(custom)")
            }
            #expect(try await client.query("SELECT current_setting('plan_cache_mode')")[0].decode(String.self, at: 0) == "auto", "the setting ended with each acknowledgement")
        }
    }

    /// A cumulative statistic of this test's one connection, with its own counters included: a
    /// backend's counters reach the shared statistics only at its next transaction end.
    static func statistic(_ query: PostgresQuery, _ client: PostgresClient) async throws -> Int {
        try await client.query("SELECT pg_stat_force_next_flush()")
        try await client.query("SELECT 1")
        return try await client.query(query)[0].decode(Int.self, at: 0)
    }

    /// Those generic plans are made once, from the statistics of the moment: on a new, empty
    /// queue they would seq-scan `jobs` and keep doing so as it grows, until an ANALYZE. Made on
    /// an empty table, then used on 20,000 rows (autovacuum off, so nothing re-plans them), the
    /// claim and the acknowledgement still touch `jobs` through indexes only.
    @Test func plansMadeOnAnEmptyQueueStillUseIndexesWhenItGrows() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 1)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            try await client.query("ALTER TABLE jobs SET (autovacuum_enabled = false)")
            func cycle() async throws {
                try await queue.enqueue(JobRequest(kind: "grow"))
                for job in try await queue.claim(limit: 4, kinds: ["grow"], worker: "w", lease: .seconds(30)) {
                    #expect(try await queue.finish([.init(id: job.id, attempt: job.attempt, outcome: .completed)], worker: "w") == [job.id])
                }
            }
            // Rows read by sequential scans, not their number: migration 0010 rewrites `jobs` (a
            // sequential scan of the empty table) from another backend, whose statistics can
            // reach the shared counters late, in the middle of this test.
            func sequentialScans() async throws -> Int {
                try await Self.statistic("SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'jobs'", client)
            }
            for _ in 0..<6 { try await cycle() }  // plans made (the first ones while empty) and cached
            try await client.query("INSERT INTO jobs (kind, payload, state, finished_at) SELECT 'old', '{}', 'completed', now() FROM generate_series(1, 20000)")
            let before = try await sequentialScans()
            for _ in 0..<3 { try await cycle() }
            #expect(try await sequentialScans() == before, "the claim or the acknowledgement scanned the whole jobs table")
        }
    }

    /// Acknowledgements and heartbeats find their rows by id. Plans made while few jobs ran must
    /// not reach them through `jobs_running_lease` (a walk of every running job per batch): under
    /// overload that made each acknowledgement cost more the further they fell behind.
    @Test func acknowledgementsAndHeartbeatsNeverWalkTheRunningJobs() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 1)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            try await client.query("ALTER TABLE jobs SET (autovacuum_enabled = false)")
            func cycle() async throws {
                try await queue.enqueue([JobRequest(kind: "grow"), JobRequest(kind: "grow")])
                let jobs = try await queue.claim(limit: 2, kinds: ["grow"], worker: "w", lease: .seconds(30))
                #expect(try await queue.extendLeases(jobs.map { ($0.id, $0.attempt) }, worker: "w", lease: .seconds(30)) == Set(jobs.map(\.id)))
                #expect(try await queue.finish(jobs.map { .init(id: $0.id, attempt: $0.attempt, outcome: .completed) }, worker: "w") == Set(jobs.map(\.id)))
            }
            func leaseIndexScans() async throws -> Int {
                try await Self.statistic("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'jobs_running_lease'", client)
            }
            try await client.query("ANALYZE jobs")
            for _ in 0..<6 { try await cycle() }  // generic plans made while (almost) nothing runs
            try await client.query("""
                INSERT INTO jobs (kind, payload, state, attempt, locked_by, lease_expires_at)
                SELECT 'other', '{}', 'running', 1, 'another worker', now() + interval '1 hour' FROM generate_series(1, 5000)
                """)
            let before = try await leaseIndexScans()
            for _ in 0..<3 { try await cycle() }
            #expect(try await leaseIndexScans() == before, "an acknowledgement or a heartbeat walked the running jobs")
        }
    }

    /// The lane checks (a claim's "nothing earlier pending in this lane", an acknowledgement's
    /// "a later job of this lane was waiting") must probe `jobs_serial_pending` for their own
    /// lane. A generic plan made on a near-empty queue instead read the whole index once per
    /// acknowledged job: 890,127 rows compared for a batch of 497, 3.5 s, and under load every
    /// acknowledgement queued behind it (`aisha bench bot` at 1,000/s).
    @Test func laneChecksProbeOnlyTheirOwnLane() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 1)
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            try await client.query("ALTER TABLE jobs SET (autovacuum_enabled = false)")
            func cycle(_ round: Int) async throws {
                try await queue.enqueue((0..<4).map { JobRequest(kind: "lane", serialKey: "lane-\(round)-\($0 % 2)") })
                for _ in 0..<2 {
                    let jobs = try await queue.claim(limit: 4, kinds: ["lane"], worker: "w", lease: .seconds(30))
                    #expect(jobs.count == 2, "one job per lane at a time")
                    #expect(try await queue.extendLeases(jobs.map { ($0.id, $0.attempt) }, worker: "w", lease: .seconds(30)) == Set(jobs.map(\.id)))
                    #expect(try await queue.finish(jobs.map { .init(id: $0.id, attempt: $0.attempt, outcome: .completed) }, worker: "w") == Set(jobs.map(\.id)))
                }
            }
            func laneIndexReads() async throws -> Int {
                try await Self.statistic("SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'jobs_serial_pending'", client)
            }
            try await client.query("ANALYZE jobs")
            for round in 0..<6 { try await cycle(round) }  // generic plans made while the lanes are nearly empty
            try await client.query("""
                INSERT INTO jobs (kind, payload, serial_key, run_at)
                SELECT 'other', '{}', 'other-' || n, now() + interval '1 hour' FROM generate_series(1, 5000) AS n
                """)
            let before = try await laneIndexReads()
            for round in 6..<9 { try await cycle(round) }
            let read = try await laneIndexReads() - before
            #expect(read < 500, "the lane checks read \(read) entries of jobs_serial_pending for 12 jobs in 6 lanes")
        }
    }

    /// Migration 0009: `jobs` is vacuumed after a fixed number of dead rows, unthrottled, however
    /// large a week of finished jobs makes it (docs/operations.md).
    @Test func theQueueTableIsVacuumedByCountNotBySize() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 1)
            defer { client.shutdown() }
            let options = try await client.query("SELECT reloptions FROM pg_class WHERE oid = 'jobs'::regclass")[0].decode([String].self, at: 0)
            #expect(Set(options).isSuperset(of: ["autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=5000", "autovacuum_vacuum_cost_delay=0"]), "\(options)")
        }
    }

    @Test func enqueueJoinsTheCallersTransaction() async throws {
        struct Rollback: Error {}
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            try await client.query("CREATE TABLE things (id int PRIMARY KEY)")
            await #expect(throws: Rollback.self) {
                try await client.withTransaction { tx in
                    try await tx.query("INSERT INTO things VALUES (1)")
                    try await queue.enqueue(JobRequest(kind: "avatar.train"), on: tx)
                    throw Rollback()
                }
            }
            #expect(try await client.query("SELECT count(*) FROM jobs").first?.decode(Int.self, at: 0) == 0)
            try await client.withTransaction { tx in
                try await tx.query("INSERT INTO things VALUES (1)")
                try await queue.enqueue(JobRequest(kind: "avatar.train"), on: tx)
            }
            #expect(try await client.query("SELECT count(*) FROM jobs").first?.decode(Int.self, at: 0) == 1)
        }
    }

    @Test func claimHonoursPriorityRunAtAndSerialKeys() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            let ids = try await queue.enqueue([
                JobRequest(kind: "k", priority: 5),
                JobRequest(kind: "k", priority: 0, serialKey: "chat:1"),
                JobRequest(kind: "k", priority: -1, serialKey: "chat:1"),  // behind its chat's earlier job
                JobRequest(kind: "k", runAt: Date().addingTimeInterval(3600)),
                JobRequest(kind: "other"),
            ]).map { $0! }
            let first = try await queue.claim(limit: 10, kinds: ["k"], worker: "w", lease: .seconds(30))
            #expect(first.map(\.id) == [ids[1], ids[0]], "priority order; serial follower and future job wait; other kinds untouched")
            #expect(first.allSatisfy { $0.attempt == 1 })
            #expect(try await queue.claim(limit: 10, kinds: ["k"], worker: "w", lease: .seconds(30)).isEmpty)
            try await queue.finish([.init(id: ids[1], attempt: 1, outcome: .completed)], worker: "w")
            #expect(try await queue.claim(limit: 10, kinds: ["k"], worker: "w", lease: .seconds(30)).map(\.id) == [ids[2]])
        }
    }

    @Test func aLostLeaseIsReclaimedAndTheStaleAcknowledgementRejected() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            let id = try #require(try await queue.enqueue(JobRequest(kind: "k", maxAttempts: 5)))
            let stale = try #require(try await queue.claim(limit: 1, kinds: ["k"], worker: "A", lease: .milliseconds(200)).first)
            try await Task.sleep(for: .milliseconds(400))
            // A late heartbeat still renews a lease nobody has rescued yet…
            #expect(try await queue.extendLeases([(id, 1)], worker: "A", lease: .seconds(30)) == [id])
            #expect(try await queue.rescueExpiredLeases() == 0)
            try await client.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = \(id)")
            #expect(try await queue.rescueExpiredLeases() == 1)
            let fresh = try #require(try await queue.claim(limit: 1, kinds: ["k"], worker: "B", lease: .seconds(30)).first)
            #expect(fresh.id == id && fresh.attempt == 2, "the rescued attempt counts")
            #expect(try await queue.finish([.init(id: id, attempt: stale.attempt, outcome: .completed)], worker: "A").isEmpty)
            #expect(try await queue.extendLeases([(id, stale.attempt)], worker: "A", lease: .seconds(30)).isEmpty)
            #expect(try await queue.finish([.init(id: id, attempt: fresh.attempt, outcome: .completed)], worker: "B") == [id])
            let record = try #require(try await queue.job(id: id))
            #expect(record.state == .completed && record.errors.contains("lease expired: worker A"))
        }
    }

    /// A heartbeat does not wait for a row another transaction holds (an acknowledgement in
    /// flight): it extends the rest at once and reports the busy one by its committed state.
    @Test func aHeartbeatNeverWaitsForABusyRow() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            _ = try await queue.enqueue([JobRequest(kind: "k"), JobRequest(kind: "k"), JobRequest(kind: "k")])
            let jobs = try await queue.claim(limit: 3, kinds: ["k"], worker: "A", lease: .seconds(5))
            let other = try #require(try await queue.enqueue(JobRequest(kind: "k")))
            _ = try await queue.claim(limit: 1, kinds: ["k"], worker: "B", lease: .seconds(5))
            let held = jobs.map { (id: $0.id, attempt: $0.attempt) } + [(id: other, attempt: 1)]  // the last is B's
            let busy = jobs[1].id
            let holder = try database.client(maxConnections: 1)
            defer { holder.shutdown() }
            try await holder.withTransaction { tx in
                try await tx.query("SELECT 1 FROM jobs WHERE id = \(busy) FOR UPDATE")
                // With the row held until this transaction ends, a heartbeat that waited would
                // come back only when the watchdog cancels it.
                let beat = Task { try await queue.extendLeases(held, worker: "A", lease: .seconds(60)) }
                let watchdog = Task { () -> Bool in
                    do { try await Task.sleep(for: .seconds(10)) } catch { return false }
                    beat.cancel()
                    return true
                }
                let kept = try? await beat.value
                watchdog.cancel()
                #expect(await watchdog.value == false, "the heartbeat waited for the busy row")
                #expect(kept == Set(jobs.map(\.id)), "A's three are still held, B's is not")
            }
            let leases = try await client.query("SELECT id, lease_expires_at > now() + interval '30 seconds' FROM jobs WHERE id = ANY(\(jobs.map(\.id))::int8[])")
            let extended = Dictionary(uniqueKeysWithValues: try leases.map { try ($0.decode(Int64.self, at: 0), $0.decode(Bool.self, at: 1)) })
            #expect(extended == [jobs[0].id: true, busy: false, jobs[2].id: true], "the busy row waits for the next beat")
        }
    }

    @Test func outcomesRetryDieAndRescheduleWithoutBurningAttempts() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            let id = try #require(try await queue.enqueue(JobRequest(kind: "k", maxAttempts: 2)))
            func claimOne() async throws -> ClaimedJob { try #require(try await queue.claim(limit: 1, kinds: ["k"], worker: "w", lease: .seconds(30)).first) }
            var job = try await claimOne()
            try await queue.finish([.init(id: id, attempt: job.attempt, outcome: .retryWithoutAttempt(runAt: Date(), reason: "429 retry_after 1"))], worker: "w")
            job = try await claimOne()
            #expect(job.attempt == 1, "retry-at did not use up an attempt")
            try await queue.finish([.init(id: id, attempt: 1, outcome: .retry(runAt: Date().addingTimeInterval(3600), error: "timeout"))], worker: "w")
            #expect(try await queue.claim(limit: 1, kinds: ["k"], worker: "w", lease: .seconds(30)).isEmpty, "backoff keeps it waiting")
            try await client.query("UPDATE jobs SET run_at = now() WHERE id = \(id)")
            job = try await claimOne()
            try await queue.finish([.init(id: id, attempt: job.attempt, outcome: .dead(error: "boom"))], worker: "w")
            let record = try #require(try await queue.job(id: id))
            #expect(record.state == .dead && record.finishedAt != nil)
            let errors = try JSONSerialization.jsonObject(with: Data(record.errors.utf8)) as! [[String: Any]]
            #expect(errors.map { $0["error"] as? String } == ["rescheduled: 429 retry_after 1", "timeout", "boom"])
            #expect(try await queue.statistics().dead == 1)
            #expect(try await queue.retry(id: id))
            #expect(try await queue.job(id: id)?.state == .available)
        }
    }

    @Test func cancelAndPrune() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            let ids = try await queue.enqueue((0..<4).map { _ in JobRequest(kind: "k") }).map { $0! }
            #expect(try await queue.cancel(id: ids[0]))
            #expect(try await queue.cancel(id: ids[0]) == false, "already cancelled")
            let running = try await queue.claim(limit: 2, kinds: ["k"], worker: "w", lease: .seconds(30))
            #expect(try await queue.cancel(id: running[0].id) == false, "a running job cannot be cancelled")
            try await queue.finish(running.map { .init(id: $0.id, attempt: $0.attempt, outcome: .completed) }, worker: "w")
            #expect(try await queue.prune(retention: .seconds(3600)) == 0, "nothing old enough")
            try await client.query("UPDATE jobs SET finished_at = now() - interval '2 hours' WHERE state IN ('completed', 'cancelled')")
            #expect(try await queue.prune(retention: .seconds(3600)) == 3)
            #expect(try await client.query("SELECT id FROM jobs").map { try $0.decode(Int64.self, at: 0) } == [ids[3]])
        }
    }

    @Test func statisticsReportDepthAndAge() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let queue = JobQueue(database: client)
            try await queue.enqueue([JobRequest(kind: "a"), JobRequest(kind: "a"), JobRequest(kind: "b")])
            try await client.query("UPDATE jobs SET run_at = now() - interval '90 seconds' WHERE kind = 'b'")
            let stats = try await queue.statistics()
            #expect(stats.counts == [.init(kind: "a", state: .available, count: 2), .init(kind: "b", state: .available, count: 1)])
            #expect(stats.oldestAvailableAge >= .seconds(89) && stats.oldestAvailableAge < .seconds(120))
            #expect(stats.dead == 0 && stats.expiredLeases == 0)
        }
    }
}
