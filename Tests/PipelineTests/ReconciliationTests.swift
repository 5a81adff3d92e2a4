import Avatars
import FAL
import Foundation
import Logging
import Pipeline
import Sandbox
import Testing

/// Lost webhooks and stuck trainings end, by reconciliation.
@Suite struct ReconciliationTests {
    static let quick: @Sendable (inout PipelineSettings) -> Void = { settings in
        settings.reconcileTrainingAfter = 0.5
        settings.trainingTimeout = 3
    }

    func trainReady(_ h: Harness, user: Int64, seedBase: UInt64) async throws -> Avatar {
        let avatar = try await h.userWithAvatar(user)
        for seed in 1...10 { try await h.sendPhoto(Harness.jpeg(seedBase + UInt64(seed)), userID: user, avatarID: avatar.id) }
        #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .ready })
        return avatar
    }

    @Test func aLostWebhookIsCompletedByPolling() async throws {
        try await Harness.run(configure: Self.quick) { h in
            let user: Int64 = 7101
            let avatar = try await trainReady(h, user: user, seedBase: 500)
            h.sandbox.fal.inject(.lostWebhook)
            _ = try await h.store.startTraining(avatarID: avatar.id, userID: user, settings: h.context.settings)
            #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.falRequestID != nil })
            let requestID = try #require(try await h.store.avatar(avatar.id)?.falRequestID)
            #expect(try await h.eventually { h.sandbox.fal.request(requestID)?.status == .completed })
            try await Task.sleep(for: .seconds(1))
            #expect(try await h.store.avatar(avatar.id)?.status == .training, "no webhook came")
            let report = try await Reconciliation.run(context: h.context, logger: Logger(label: "test"))
            #expect(report == .init(checked: 1, finished: 1, timedOut: 0))
            let done = try #require(try await h.store.avatar(avatar.id))
            #expect(done.status == .completed && done.loraURL != nil && h.sandbox.fal.request(requestID)?.webhookDeliveries == 0)
            #expect(try await h.eventually { h.botTexts(user).contains { $0.contains("is ready") } })
            // Running it again finds nothing to do.
            #expect(try await Reconciliation.run(context: h.context, logger: Logger(label: "test")) == .init())
        }
    }

    @Test func aStuckTrainingIsCancelledAndRefunded() async throws {
        try await Harness.run(configure: Self.quick) { h in
            let user: Int64 = 7102
            let avatar = try await trainReady(h, user: user, seedBase: 600)
            h.sandbox.fal.inject(.stuck)
            _ = try await h.store.startTraining(avatarID: avatar.id, userID: user, settings: h.context.settings)
            #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.falRequestID != nil })
            #expect(try await Reconciliation.run(context: h.context, logger: Logger(label: "test")).timedOut == 0, "not yet past the timeout")
            try await Task.sleep(for: .seconds(3))
            #expect(try await Reconciliation.run(context: h.context, logger: Logger(label: "test")).timedOut == 1)
            let failed = try #require(try await h.store.avatar(avatar.id))
            #expect(failed.status == .failed && failed.error == "training.reason.timeout")
            #expect(h.sandbox.fal.request(try #require(failed.falRequestID))?.cancelled == true, "cancelled at FAL too")
            #expect(try await h.balance(user) == 150)
            #expect(try await h.eventually { h.botTexts(user).contains { $0.contains("far longer") } })
        }
    }
}

@Suite struct GenerationReconciliationTests {
    @Test func aLostGenerationWebhookIsCompletedByPolling() async throws {
        try await Harness.run(configure: { $0.reconcileGenerationAfter = 0.3 }) { h in
            let user: Int64 = 7103
            let avatar = try await GenerationTests().trained(h, user: user, seedBase: 1100)
            h.sandbox.fal.inject(.lostWebhook)
            let generations = GenerationStore(database: h.database)
            guard case .started(let id, _) = try await generations.request(userID: user, avatarID: avatar.id, chatID: user, prompt: "a lighthouse", aspectRatio: "4:3", count: 1, settings: h.context.settings) else { Issue.record("no generation"); return }
            #expect(try await h.eventually { try await generations.generation(id)?.status == "submitted" })
            try await Task.sleep(for: .seconds(1))
            #expect(try await generations.generation(id)?.status == "submitted", "no webhook came")
            let report = try await Reconciliation.run(context: h.context, logger: Logger(label: "test"))
            #expect(report.finished == 1)
            #expect(try await generations.generation(id)?.status == "completed")
            #expect(try await h.eventually { h.sandbox.telegram.messages(inChat: user).contains { $0.fromBot && !$0.fileIDs.isEmpty } })
        }
    }
}
