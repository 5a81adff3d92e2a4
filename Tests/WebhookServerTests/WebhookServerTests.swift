import Curl
import FAL
import Foundation
import Hummingbird
import JobQueue
import Logging
import Postgres
import Sandbox
import TestSupport
import Testing
import WebhookServer

/// The in-process server with this suite's Telegram secret.
func withServer<T: Sendable>(
    databaseURL: String, jwksURL: String = "http://127.0.0.1:9/none", falUserID: String? = nil,
    _ body: @Sendable (_ base: String, _ app: WebhookApplication) async throws -> T
) async throws -> T {
    try await InProcessServer.run(databaseURL: databaseURL, telegramSecret: WebhookServerTests.secret, jwksURL: jwksURL, falUserID: falUserID, body)
}

@Suite struct WebhookServerTests {
    static let secret = "test_secret-123"
    let http = CurlClient()

    func post(_ url: String, _ body: [UInt8], headers: [(name: String, value: String)] = [("X-Telegram-Bot-Api-Secret-Token", secret)], timeout: Duration = .seconds(10)) async throws -> Int {
        try await http.execute(CurlRequest(.post, url: url, headers: [("Content-Type", "application/json")] + headers, body: .bytes(Data(body)), timeout: timeout)).status
    }

    func jobs(_ client: PostgresClient, kind: String) async throws -> [(key: String, serial: String?)] {
        try await client.query("SELECT unique_key, serial_key FROM jobs WHERE kind = \(kind) ORDER BY id").map { try $0.decode(String.self, String?.self) }.map { ($0.0, $0.1) }
    }

    @Test func telegramWebhookStoresEveryAuthenticUpdateOnce() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            try await withServer(databaseURL: database.url) { base, app in
                let url = base + "/telegram/webhook"
                let update = Array(#"{"update_id":1001,"message":{"message_id":1,"date":1764060000,"chat":{"id":42,"type":"private"},"text":"hi"}}"#.utf8)
                // Not authenticated: nothing stored.
                #expect(try await post(url, update, headers: []) == 401)
                #expect(try await post(url, update, headers: [("X-Telegram-Bot-Api-Secret-Token", "wrong")]) == 401)
                #expect(try await post(url, update, headers: [("X-Telegram-Bot-Api-Secret-Token", Self.secret + "x")]) == 401)
                // Malformed or oversized: refused, nothing stored.
                #expect(try await post(url, Array("{not json".utf8)) == 400)
                #expect(try await post(url, Array(#"{"message":{}}"#.utf8)) == 400)
                // Not UTF-8: refused by the scanner (PostgreSQL would refuse the bytes too); never stored altered.
                #expect(try await post(url, Array(#"{"update_id":7,"message":{"text":""#.utf8) + [0xFF, 0xFE] + Array(#""}}"#.utf8)) == 400)
                var huge = Array(#"{"update_id":1002,"message":{"text":""#.utf8)
                huge += Array(repeating: UInt8(ascii: "a"), count: (1 << 20) + 10) + Array(#""}}"#.utf8)
                #expect(try await post(url, huge) == 413)
                #expect(try await jobs(client, kind: "telegram.update").isEmpty)

                // Every fixture kind: 200 and stored; a redelivery: 200, still one job.
                let files = try FileManager.default.contentsOfDirectory(atPath: WebhookIngestTests.fixtures.path + "/telegram").filter { !$0.hasPrefix("error-") && $0 != "getfile-ok.json" }
                for file in files { #expect(try await post(url, try WebhookIngestTests.fixture("telegram/" + file)) == 200, "\(file)") }
                // Stored as sent, byte for byte, a \u0000 escape included (jsonb refused it; see migration 0010).
                let withNul = #"{"update_id":7, "message":{"text":"\u0000","chat":{"id":42,"type":"private"}}}"#
                #expect(try await post(url, Array(withNul.utf8)) == 200)
                #expect(try await client.query("SELECT payload::text FROM jobs WHERE unique_key = 'tg:update:7'").first?.decode(String.self, at: 0) == withNul)
                #expect(try await post(url, update) == 200)
                #expect(try await post(url, update) == 200)
                let stored = try await jobs(client, kind: "telegram.update")
                #expect(stored.count == files.count + 2 && stored.last?.key == "tg:update:1001" && stored.last?.serial == "tg:chat:42")
                #expect(app.metrics.requests(route: "/telegram/webhook", status: 401) == 3)
                #expect(app.metrics.requests(route: "/telegram/webhook", status: 413) == 1)

                // Metrics: Prometheus text with the counters, the queue depth and the pool.
                let metrics = String(decoding: try await http.get(base + "/metrics").body, as: UTF8.self)
                #expect(metrics.contains(#"aisha_http_requests_total{route="/telegram/webhook",status="200"} \#(files.count + 3)"#))
                #expect(metrics.contains(#"aisha_jobs_pending{kind="telegram.update",state="available"} \#(files.count + 2)"#))
                #expect(metrics.contains(#"aisha_webhooks_ingested_total{kind="telegram.update",result="duplicate"} 1"#))
                #expect(metrics.contains("aisha_db_pool_connections{state=\"open\"}") && metrics.contains("aisha_database_up 1"))
                let ready = try await http.get(base + "/readyz").status, healthy = try await http.get(base + "/healthz").status
                #expect(ready == 200 && healthy == 200)
            }
        }
    }

    @Test func concurrentWebhooksShareCommits() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            try await withServer(databaseURL: database.url) { base, app in
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for index in 0..<400 {
                        group.addTask {
                            // 400 at once in a test process shared with every other suite: in full
                            // runs this test takes ~30 s (1.5 s alone), and one request once took
                            // over 10 s. Deadlines are tested elsewhere; here every answer counts.
                            try await post(base + "/telegram/webhook", Array(#"{"update_id":\#(5000 + index % 300),"message":{"message_id":1,"date":1,"chat":{"id":\#(index % 7),"type":"private"},"text":"x"}}"#.utf8), timeout: .seconds(60))
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(statuses.allSatisfy { $0 == 200 })
                #expect(try await jobs(client, kind: "telegram.update").count == 300, "100 redeliveries were dropped")
                let metrics = String(decoding: try await http.get(base + "/metrics").body, as: UTF8.self)
                let commits = metrics.split(separator: "\n").first { $0.hasPrefix(#"aisha_ingest_commits{counter="commits"}"#) }.flatMap { Int($0.split(separator: " ").last ?? "") }
                #expect((commits ?? 400) < 400, "concurrent requests shared commits (\(commits ?? -1) for 400 requests)")
            }
        }
    }

    @Test func falWebhooksFromTheSandboxVerifyAndStoreOnce() async throws {
        let sandbox = Sandbox(fal: .init(generationDuration: .milliseconds(20), webhookRetryDelay: .milliseconds(50)))
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            try await sandbox.run { endpoints in
                try await withServer(databaseURL: database.url, jwksURL: endpoints.falJWKS, falUserID: sandbox.fal.configuration.userID) { base, _ in
                    let fal = FALClient(configuration: .init(key: sandbox.fal.configuration.key, queueBaseURL: endpoints.falQueue, restBaseURL: endpoints.falREST))
                    // A real delivery, and a duplicated one: one job.
                    sandbox.fal.inject(.duplicateWebhook)
                    let handle = try await fal.submit(model: FALModel.fluxLora, input: ["prompt": "a cat"], webhookURL: base + "/fal/webhook")
                    let deadline = ContinuousClock.now + .seconds(10)
                    while sandbox.fal.request(handle.requestID)?.webhookDeliveries ?? 0 < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                    #expect(try await jobs(client, kind: "fal.result").map(\.key) == ["fal:result:\(handle.requestID)"])

                    // Forgeries: each is 401 and stores nothing.
                    let body = Array(#"{"request_id":"r-1","gateway_request_id":"r-1","status":"OK","payload":{}}"#.utf8)
                    func send(_ headers: FALWebhookSignature.Headers, _ body: [UInt8]) async throws -> Int {
                        try await post(base + "/fal/webhook", body, headers: [
                            ("X-Fal-Webhook-Request-Id", headers.requestID), ("X-Fal-Webhook-User-Id", headers.userID),
                            ("X-Fal-Webhook-Timestamp", headers.timestamp), ("X-Fal-Webhook-Signature", headers.signature),
                        ])
                    }
                    let good = sandbox.fal.signedHeaders(requestID: "r-1", body: body)
                    var tampered = body
                    tampered[tampered.count - 3] = UInt8(ascii: "x")
                    #expect(try await send(good, tampered) == 401, "a changed body")
                    var otherUser = good
                    otherUser.userID = "someone-else"
                    #expect(try await send(otherUser, body) == 401, "a changed user id")
                    #expect(try await send(sandbox.fal.signedHeaders(requestID: "r-1", body: body, timestamp: Date().addingTimeInterval(-400)), body) == 401, "a stale timestamp")
                    var badSignature = good
                    badSignature.signature = String(good.signature.reversed())
                    #expect(try await send(badSignature, body) == 401)
                    #expect(try await post(base + "/fal/webhook", body, headers: []) == 401, "no headers at all")
                    let mismatched = Array(#"{"request_id":"r-2","status":"OK","payload":{}}"#.utf8)
                    #expect(try await send(sandbox.fal.signedHeaders(requestID: "r-1", body: mismatched), mismatched) == 401, "signed for another request id")
                    #expect(try await jobs(client, kind: "fal.result").count == 1)
                    // The genuine one, then key rotation: both verify.
                    #expect(try await send(good, body) == 200)
                    sandbox.fal.rotateKey()
                    let rotated = Array(#"{"request_id":"r-3","status":"ERROR","error":"x","payload":null}"#.utf8)
                    #expect(try await send(sandbox.fal.signedHeaders(requestID: "r-3", body: rotated), rotated) == 200)
                    #expect(try await jobs(client, kind: "fal.result").count == 3)
                }
            }
        }
    }

    @Test func unreachableSigningKeysFailClosed() async throws {
        try await TestDatabase.withMigrated { database in
            try await withServer(databaseURL: database.url, jwksURL: "http://127.0.0.1:9/jwks.json") { base, _ in
                let sandbox = Sandbox()
                let body = Array(#"{"request_id":"r-9","status":"OK","payload":{}}"#.utf8)
                let headers = sandbox.fal.signedHeaders(requestID: "r-9", body: body)
                let status = try await post(base + "/fal/webhook", body, headers: [
                    ("X-Fal-Webhook-Request-Id", headers.requestID), ("X-Fal-Webhook-User-Id", headers.userID),
                    ("X-Fal-Webhook-Timestamp", headers.timestamp), ("X-Fal-Webhook-Signature", headers.signature),
                ])
                #expect(status == 503)
            }
        }
    }
}

/// A cluster of its own, stopped while the server runs: 503 within seconds, then recovery
/// without restarting the server.
@Suite(.serialized) struct WebhookServerOutageTests {
    let http = CurlClient()

    @Test func databaseOutageIsA503AndRecoveryNeedsNoRestart() async throws {
        let url = try await TestServices.runScript("postgres.sh", ["start", "outage-test"]).trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            try await exercise(url)
        } catch {
            _ = try? await TestServices.runScript("postgres.sh", ["stop", "outage-test"])
            throw error
        }
        try await TestServices.runScript("postgres.sh", ["stop", "outage-test"])
    }

    private func exercise(_ url: String) async throws {
        let setup = try PostgresClient(url: url, maxConnections: 1, logger: TestServices.logger)
        try await setup.query("DROP SCHEMA public CASCADE")
        try await setup.query("CREATE SCHEMA public")
        _ = try await Migrator(client: setup, logger: TestServices.logger).migrate(try Migration.load(directory: TestServices.repoRoot + "/Migrations"))
        setup.shutdown()

        try await withServer(databaseURL: url) { base, _ in
            func update(_ id: Int) async throws -> (status: Int, seconds: Double) {
                let started = ContinuousClock.now
                let response = try await http.execute(CurlRequest(.post, url: base + "/telegram/webhook", headers: [("X-Telegram-Bot-Api-Secret-Token", WebhookServerTests.secret)],
                                                                  body: .bytes(Data(#"{"update_id":\#(id),"message":{"message_id":1,"date":1,"chat":{"id":1,"type":"private"}}}"#.utf8)), timeout: .seconds(20)))
                let elapsed = ContinuousClock.now - started
                return (response.status, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            }
            #expect(try await update(1).status == 200)
            try await TestServices.runScript("postgres.sh", ["stop", "outage-test"])
            let down = try await update(2)
            #expect(down.status == 503 && down.seconds < 5, "\(down)")
            #expect(try await http.get(base + "/readyz").status == 503)
            _ = try await TestServices.runScript("postgres.sh", ["start", "outage-test"])
            var recovered = false
            for attempt in 0..<20 where !recovered {
                recovered = try await update(3 + attempt).status == 200
                if !recovered { try await Task.sleep(for: .milliseconds(250)) }
            }
            #expect(recovered, "the server recovered by itself")
            let check = try PostgresClient(url: url, maxConnections: 1, logger: TestServices.logger)
            defer { check.shutdown() }
            let keys = try await check.query("SELECT unique_key FROM jobs ORDER BY id").map { try $0.decode(String.self, at: 0) }
            #expect(keys.first == "tg:update:1" && !keys.contains("tg:update:2"), "acknowledged means stored; refused means not")
        }
    }
}
