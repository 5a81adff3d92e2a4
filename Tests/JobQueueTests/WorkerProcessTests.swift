import Foundation
import JobQueue
import Postgres
import TestSupport
import Testing

/// Real worker processes (`aisha-probe`) killed and stopped with signals.
@Suite struct WorkerProcessTests {
    struct Sleep: Codable { var ms: Int }

    func startProbe(_ database: TestDatabase, lease: Int, grace: Int = 10_000, concurrency: Int = 64, log: String) throws -> pid_t {
        let probe = TestServices.productsDirectory + "/aisha-probe"
        var environment = ProcessInfo.processInfo.environment
        environment["AISHA_DATABASE_URL"] = database.url
        environment["PROBE_LEASE_MS"] = String(lease)
        environment["PROBE_GRACE_MS"] = String(grace)
        environment["PROBE_CONCURRENCY"] = String(concurrency)
        return try TestServices.spawn(probe, [], environment: environment, logPath: log)
    }

    /// A fresh migrated database, a client, its queue and a log file for the probes' output.
    func withProbeSetup(_ body: (TestDatabase, PostgresClient, JobQueue, String) async throws -> Void) async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID()).log").path
            defer { try? FileManager.default.removeItem(atPath: log) }
            try await body(database, client, JobQueue(database: client), log)
        }
    }

    /// A worker holding leased jobs is SIGKILLed; survivors complete every job exactly once after
    /// the leases run out, and none is lost.
    @Test func sigkilledWorkersJobsAreCompletedByTheSurvivor() async throws {
        try await withProbeSetup { database, client, queue, log in
            // 2.5 s jobs: a wide window to kill the worker while it holds leases, even on a loaded machine.
            try await queue.enqueue((0..<40).map { _ in try! JobRequest(kind: "probe.record", json: Sleep(ms: 2500), maxAttempts: 5) })

            let victim = try startProbe(database, lease: 1500, concurrency: 20, log: log)
            let leased = try await eventually { try await count(client, "SELECT count(*) FROM jobs WHERE state = 'running'") >= 5 }
            #expect(leased, "probe log: \(String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self))")
            kill(victim, SIGKILL)
            #expect(await TestServices.waitForExit(victim) == 128 + SIGKILL)
            let orphaned = try await count(client, "SELECT count(*) FROM jobs WHERE state = 'running'")
            #expect(orphaned > 0, "the killed worker left leased jobs behind")

            let survivor = try startProbe(database, lease: 1500, concurrency: 20, log: log)
            let done = try await eventually(timeout: .seconds(60)) { try await count(client, "SELECT count(*) FROM jobs WHERE state = 'completed'") == 40 }
            kill(survivor, SIGTERM)
            let status = await TestServices.waitForExit(survivor)
            // Failed twice in loaded full-suite runs with SIGSEGV in libcrypto at exit (OpenSSL's
            // atexit cleanup racing a thread still in libpq): see OpenSSLProcess. The log says why if it recurs.
            #expect(status == 0, "survivor exit status \(status); probe log: \(String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self).suffix(3000))")
            #expect(done, "every job completed")
            #expect(try await count(client, "SELECT count(*) FROM jobs WHERE state <> 'completed'") == 0, "none lost or stuck")
            #expect(try await count(client, "SELECT count(*) FROM probe_effects") == 40, "every job had its effect")
            // The orphans were rescued: their first attempt counted, and the error history says why.
            #expect(try await count(client, "SELECT count(*) FROM jobs WHERE attempt = 2 AND errors::text LIKE '%lease expired%'") == orphaned)
        }
    }

    /// SIGTERM mid-work: running jobs finish within the grace period or are handed back; the
    /// process exits 0 and leaves nothing running.
    @Test func sigtermDrainsAndHandsBack() async throws {
        try await withProbeSetup { database, client, queue, log in
            try await queue.enqueue((0..<5).map { _ in try! JobRequest(kind: "probe.record", json: Sleep(ms: 300)) }
                + (0..<5).map { _ in try! JobRequest(kind: "probe.record", json: Sleep(ms: 30_000)) })
            let worker = try startProbe(database, lease: 30_000, grace: 1500, log: log)
            // Monotonic, so a starved poller cannot miss it: every job has been claimed.
            let allClaimed = try await eventually { try await count(client, "SELECT count(*) FROM jobs WHERE attempt >= 1") == 10 }
            #expect(allClaimed, "probe log: \(String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self))")
            let stopping = ContinuousClock.now
            kill(worker, SIGTERM)
            #expect(await TestServices.waitForExit(worker) == 0)
            #expect(ContinuousClock.now - stopping < .seconds(10))
            #expect(try await count(client, "SELECT count(*) FROM jobs WHERE state = 'running'") == 0)
            #expect(try await count(client, "SELECT count(*) FROM jobs WHERE state = 'completed'") == 5)
            #expect(try await count(client, "SELECT count(*) FROM jobs WHERE state = 'available' AND attempt = 0 AND run_at <= now()") == 5,
                    "handed back at once, attempt not counted")
            #expect(try await count(client, "SELECT count(*) FROM probe_effects") == 5)
        }
    }
}
