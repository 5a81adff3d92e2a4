import Avatars
import Foundation
import Postgres
import Sandbox
import TestSupport
import Testing

/// The bot served by real `aisha-worker` processes that die: the wizard continues on a new
/// worker where the user was, and an update whose worker died right after its commit — before
/// starting the training it asked for — is finished by the rerun: charged once, started once,
/// and the button is not called stale.
@Suite(.serialized) struct BotRestartTests {
    @Test func aKilledWorkerNeitherLosesTheWizardNorTheTrainingItWasStarting() async throws {
        let sandbox = Sandbox(fal: .init(trainingDuration: .milliseconds(500), webhookRetryDelay: .milliseconds(200)))
        try await withServedBot(sandbox) { database, spawnWorker in
            let user = sandbox.telegram.user(id: 8101, firstName: "Rita")
            let transcript = sandbox.transcript
            func botSays(_ fragment: String, after: Int = 0) async -> Bool {
                await transcript.waitFor(chatID: 8101, after: after, timeout: .seconds(30)) { $0.actor == .bot && $0.text.contains(fragment) } != nil
            }

            // Halfway through the wizard, the worker is killed.
            let first = try spawnWorker(nil)
            #expect(await user.send("/start") == 200)
            #expect(await botSays("I am Aisha"))
            #expect(await user.press("Create an avatar") == 200)
            #expect(await botSays("What should the avatar learn?"))
            #expect(await user.press("A person (portrait)") == 200)
            #expect(await botSays("Who is in the photos?"))
            kill(first, SIGKILL)
            _ = await TestServices.waitForExit(first)

            // A new worker continues exactly there; it is armed to die after the commit of
            // the update that starts the training, before the training starts.
            let second = try spawnWorker("bot:before-follow-ups")
            #expect(await user.press("A man") == 200)
            #expect(await botSays("Give the avatar a name"), "the wizard resumed on another worker")
            #expect(await user.send("Rita's brother") == 200)
            #expect(await botSays("18 or older"))
            #expect(await user.press("I confirm") == 200)
            #expect(await botSays("Send 10–20 photos"))
            _ = await user.sendAlbum((1...10).map { Harness.jpeg(UInt64(8100 + $0)) })
            #expect(await botSays("Photos: 10 of 20"))
            let pressed = transcript.events(chatID: 8101).count
            #expect(await user.press("Start training") == 200)
            #expect(await TestServices.waitForExit(second) == 128 + SIGKILL, "the worker died at bot:before-follow-ups")
            let avatarID = try #require(try await database.query("SELECT id FROM avatars WHERE user_id = 8101").first?.decode(UUID.self, at: 0))
            #expect(try await AvatarStore(database: database).avatar(avatarID)?.status == .ready, "the commit happened, the training did not start")

            // The rerun on a third worker starts it, once.
            let third = try spawnWorker(nil)
            #expect(await botSays("Training started", after: pressed))
            #expect(await botSays("is ready", after: pressed))
            kill(third, SIGTERM)
            #expect(await TestServices.waitForExit(third) == 0)
            let events = transcript.events(chatID: 8101).dropFirst(pressed)
            #expect(!events.contains { $0.kind == "toast" && $0.text.contains("no longer valid") }, "the rerun did not call the press stale")
            #expect(try await database.query("SELECT balance FROM users WHERE id = 8101")[0].decode(Int.self, at: 0) == 50, "charged once")
            #expect(sandbox.fal.requests.count == 1 && sandbox.fal.uploadCount == 1, "trained once")
        }
    }

    /// A reply the rate limiter admitted has no job of its own: it lives in the chat's follow-ups
    /// until sent. A worker killed between the update's commit and the send loses nothing: the
    /// update's rescued job queues the reply, and the user gets it exactly once.
    @Test func aReplyAdmittedWithoutAJobSurvivesItsWorkerDyingBeforeTheSend() async throws {
        let sandbox = Sandbox()
        try await withServedBot(sandbox) { database, spawnWorker in
            let user = sandbox.telegram.user(id: 8201, firstName: "Lena")

            let first = try spawnWorker("bot:before-reply")
            #expect(await user.send("/start") == 200)
            #expect(await TestServices.waitForExit(first) == 128 + SIGKILL, "the worker died at bot:before-reply")
            #expect(try await database.query("SELECT count(*) FROM chat_state WHERE chat_id = 8201 AND follow_ups ? 'reply'")[0].decode(Int.self, at: 0) == 1,
                    "the update committed, keeping its reply")
            #expect(!sandbox.transcript.events(chatID: 8201).contains { $0.actor == .bot }, "and nothing was sent")

            let second = try spawnWorker(nil)
            let welcome = await sandbox.transcript.waitFor(chatID: 8201, timeout: .seconds(30)) { $0.actor == .bot && $0.text.contains("I am Aisha") }
            #expect(welcome != nil, "the rescued update queued the reply")
            #expect(await user.send("/help") == 200)
            #expect(await sandbox.transcript.waitFor(chatID: 8201, timeout: .seconds(30)) { $0.actor == .bot && $0.text.contains("How it works") } != nil)
            kill(second, SIGTERM)
            #expect(await TestServices.waitForExit(second) == 0)
            let welcomes = sandbox.transcript.events(chatID: 8201).filter { $0.actor == .bot && $0.text.contains("I am Aisha") }
            #expect(welcomes.count == 1, "sent once: \(welcomes.map(\.text))")
            let queued = try await database.query("SELECT unique_key, state FROM jobs WHERE kind = 'telegram.send'").map { try $0.decode(String.self, String.self) }
            #expect(queued.count == 1 && queued.first?.1 == "completed" && queued.first?.0.hasSuffix(":1") == true, "the one queued reply: \(queued)")
        }
    }

    /// The stack these tests kill workers in: a migrated database, the Sandbox, the in-process
    /// server with Telegram's webhook set. `body` gets the database and a way to start an
    /// `aisha-worker` process, armed to die at a crash point or not.
    private func withServedBot(_ sandbox: Sandbox, _ body: @Sendable (PostgresClient, _ spawnWorker: @Sendable (_ crashPoint: String?) throws -> pid_t) async throws -> Void) async throws {
        try await TestDatabase.withMigrated { testDatabase in
            let database = try testDatabase.client(maxConnections: 2)
            defer { database.shutdown() }
            try await sandbox.run { endpoints in
                try await Harness.runServer(databaseURL: testDatabase.url, jwksURL: endpoints.falJWKS) { serverBase in
                    sandbox.telegram.setWebhook(.init(url: serverBase + "/telegram/webhook", secretToken: "pipeline_test"))
                    let bucket = "restart-\(UUID().uuidString.prefix(8).lowercased())"
                    let environment = Harness.workerEnvironment(databaseURL: testDatabase.url, serverBase: serverBase, sandbox: sandbox, endpoints: endpoints, bucket: bucket)
                    let log = NSTemporaryDirectory() + "/bot-restart-\(UUID()).log"
                    defer { try? FileManager.default.removeItem(atPath: log) }
                    try await body(database) { crashPoint in
                        try TestServices.spawn(TestServices.productsDirectory + "/aisha-worker", [], environment: crashPoint.map { environment.merging(["AISHA_CRASH_POINT": $0]) { $1 } } ?? environment, logPath: log)
                    }
                }
            }
        }
    }
}
