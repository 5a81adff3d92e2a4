import Foundation
import Postgres
import TestSupport
import Testing

/// A cluster of its own (so other suites are not disturbed), restarted mid-test with pg_ctl.
@Suite(.serialized) struct PostgresRestartTests {
    @Test func poolAndListenerSurviveARestart() async throws {
        let url = try await TestServices.runScript("postgres.sh", ["start", "restart-test"])
        do {
            try await exercise(url)
        } catch {
            _ = try? await TestServices.runScript("postgres.sh", ["stop", "restart-test"])
            throw error
        }
        try await TestServices.runScript("postgres.sh", ["stop", "restart-test"])
    }

    private func exercise(_ url: String) async throws {
        let client = try PostgresClient(url: url, maxConnections: 4, logger: TestServices.logger)
        defer { client.shutdown() }

        // Open four connections, so four idle ones sit in the pool when the server goes away.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { try await client.query("SELECT pg_sleep(0.1)") } }
            try await group.waitForAll()
        }
        #expect(client.statistics.open == 4)
        let events = client.listen(to: ["restart_probe"], logger: TestServices.logger)
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == .listening)

        try await TestServices.runScript("postgres.sh", ["restart", "restart-test"])

        // Idle connections closed by the restart are noticed on lease and replaced: no call fails.
        var failures = 0
        for attempt in 0..<20 {
            do {
                let value = try await client.query("SELECT \(attempt)::int").first?.decode(Int.self, at: 0)
                #expect(value == attempt)
            } catch {
                failures += 1
            }
        }
        #expect(failures == 0)

        // The listener reconnects by itself and says so, then delivers again.
        #expect(await iterator.next() == .listening)
        try await client.query("SELECT pg_notify('restart_probe', 'after')")
        guard case .notification(let notification) = await iterator.next() else {
            Issue.record("no notification after the restart")
            return
        }
        #expect(notification.channel == "restart_probe" && notification.payload == "after")
    }
}
