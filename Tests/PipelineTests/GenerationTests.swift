import Avatars
import FAL
import Foundation
import JSON
import Imaging
import JobQueue
import ObjectStorage
import Pipeline
import Postgres
import Sandbox
import TestSupport
import Testing

@Suite struct GenerationTests {
    /// A user with a trained avatar (through the real path) and `credits` left.
    func trained(_ h: Harness, user: Int64, seedBase: UInt64) async throws -> Avatar {
        let avatar = try await h.userWithAvatar(user)
        for seed in 1...10 { try await h.sendPhoto(Harness.jpeg(seedBase + UInt64(seed)), userID: user, avatarID: avatar.id) }
        #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .ready })
        _ = try await h.store.startTraining(avatarID: avatar.id, userID: user, settings: h.context.settings)
        #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .completed })
        return try #require(try await h.store.avatar(avatar.id))
    }

    @Test func twoImagesInNineBySixteenReachTheChatAndOurStorage() async throws {
        try await Harness.run { h in
            let user: Int64 = 7201
            let avatar = try await trained(h, user: user, seedBase: 700)
            let generations = GenerationStore(database: h.database)
            let started = try await generations.request(userID: user, avatarID: avatar.id, chatID: user, prompt: "on a rainy street in Tokyo at night", aspectRatio: "9:16", count: 2, settings: h.context.settings)
            guard case .started(let id, let balance) = started else { Issue.record("\(started)"); return }
            #expect(balance == 40, "150 − 100 training − 2 × 5")
            #expect(try await h.eventually { try await generations.generation(id)?.status == "completed" })
            // FAL got the LoRA, the trigger phrase first, and the exact 9:16 size.
            let request = try #require(h.sandbox.fal.requests.last { $0.model == FALModel.fluxLora })
            #expect(request.input["prompt"]?.stringValue == "\(avatar.triggerPhrase), on a rainy street in Tokyo at night")
            #expect(request.input["image_size"]?.stringValue == "portrait_16_9" && request.input["num_images"] == .number(2))
            guard case .array(let loras)? = request.input["loras"] else { Issue.record("no loras"); return }
            #expect(loras.first?["path"]?.stringValue == avatar.loraURL)
            // Our copies: real 576×1024 JPEGs in the generated bucket.
            let keys = try await h.database.query("SELECT object_key FROM generated_images WHERE generation_id = \(id) ORDER BY position").map { try $0.decode(String.self, at: 0) }
            #expect(keys.count == 2)
            for key in keys {
                let bytes = try await h.context.storage.get(bucket: h.context.settings.generatedBucket, key: key)
                #expect(ImageHeader.parse(bytes) == ImageHeader(format: .jpeg, width: 576, height: 1024))
            }
            // The chat: an album of two, then the buttons; Telegram's file ids remembered.
            #expect(try await h.eventually { h.sandbox.telegram.messages(inChat: user).contains { $0.text == "More?" } })
            let album = h.sandbox.telegram.messages(inChat: user).filter { $0.fromBot && $0.mediaGroupID != nil }
            #expect(album.count == 2)
            let buttons = try #require(h.sandbox.telegram.messages(inChat: user).last { $0.text == "More?" })
            #expect(buttons.keyboard.flatMap { $0 }.map(\.text) == ["Again", "★ Favourite", "Show prompt"])
            #expect(try await h.eventually { try await h.database.query("SELECT count(*) FROM generated_images WHERE generation_id = \(id) AND telegram_file_id IS NOT NULL")[0].decode(Int.self, at: 0) == 2 })
            // The same request again (a double tap with the same id) charges nothing more.
            #expect(try await generations.request(id: id, userID: user, avatarID: avatar.id, chatID: user, prompt: "on a rainy street in Tokyo at night", aspectRatio: "9:16", count: 2, settings: h.context.settings) == .started(id: id, balance: 40))
        }
    }

    @Test func aFailedGenerationIsRefunded() async throws {
        try await Harness.run { h in
            let user: Int64 = 7202
            let avatar = try await trained(h, user: user, seedBase: 800)
            h.sandbox.fal.inject(.errorResult("NSFW"))
            let generations = GenerationStore(database: h.database)
            guard case .started(let id, _) = try await generations.request(userID: user, avatarID: avatar.id, chatID: user, prompt: "a knight", aspectRatio: "1:1", count: 4, settings: h.context.settings) else { Issue.record("not started"); return }
            #expect(try await h.eventually { try await generations.generation(id)?.status == "failed" })
            #expect(try await h.balance(user) == 50)
            #expect(try await h.eventually { h.botTexts(user).contains { $0.contains("could not be made") && $0.contains("20 credits") } })
        }
    }

    @Test func fiftyConcurrentRequestsWithCreditForTenChargeTen() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 10)
            defer { client.shutdown() }
            let store = AvatarStore(database: client)
            try await store.ensureUser(id: 9, firstName: "Z", language: "en", welcomeCredits: 50)
            let avatar = try await store.createAvatar(userID: 9, name: "Done", kind: .portrait, gender: .male)
            try await client.query("UPDATE avatars SET status = 'ready' WHERE id = \(avatar.id)")
            try await client.query("UPDATE avatars SET status = 'training' WHERE id = \(avatar.id)")
            try await client.query("UPDATE avatars SET status = 'completed', lora_url = 'x' WHERE id = \(avatar.id)")
            let generations = GenerationStore(database: client)
            let settings = PipelineSettings(falWebhookURL: "http://x")
            let results = try await withThrowingTaskGroup(of: GenerationStore.Request.self) { group in
                for _ in 0..<50 {
                    group.addTask { try await generations.request(userID: 9, avatarID: avatar.id, chatID: 9, prompt: "a cat", aspectRatio: "1:1", count: 1, settings: settings) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { if case .started = $0 { true } else { false } }.count == 10)
            #expect(try await client.query("SELECT balance FROM users WHERE id = 9")[0].decode(Int.self, at: 0) == 0)
            #expect(try await client.query("SELECT count(*) FROM generations")[0].decode(Int.self, at: 0) == 10)
            #expect(try await client.query("SELECT count(*) FROM jobs WHERE kind = 'generation.run'")[0].decode(Int.self, at: 0) == 10, "a job for each charge, none without")
        }
    }
}

@Suite struct PurgeTests {
    @Test func deletingAnAvatarAndAUserRemovesRowsAndObjects() async throws {
        try await Harness.run { h in
            let user: Int64 = 7301
            let avatar = try await GenerationTests().trained(h, user: user, seedBase: 900)
            let generations = GenerationStore(database: h.database)
            guard case .started(let id, _) = try await generations.request(userID: user, avatarID: avatar.id, chatID: user, prompt: "a castle", aspectRatio: "1:1", count: 1, settings: h.context.settings) else { Issue.record("no generation"); return }
            #expect(try await h.eventually { try await generations.generation(id)?.status == "completed" })
            let second = try await h.store.createAvatar(userID: user, name: "Second", kind: .style, gender: .other)
            try await h.sendPhoto(Harness.jpeg(999), userID: user, avatarID: second.id)
            #expect(try await h.eventually { try await h.store.avatar(second.id)?.photoCount == 1 })

            try await JobQueue(database: h.database).enqueue(try Purge.avatarJob(userID: user, avatarID: avatar.id))
            #expect(try await h.eventually { try await h.store.avatar(avatar.id) == nil })
            #expect(try await h.context.storage.list(bucket: h.context.settings.photoBucket, prefix: "\(user)/\(avatar.id.uuidString.lowercased())/").isEmpty)
            #expect(try await h.context.storage.list(bucket: h.context.settings.photoBucket, prefix: "\(user)/\(second.id.uuidString.lowercased())/").count == 1, "the other avatar is untouched")
            #expect(try await h.context.storage.list(bucket: h.context.settings.generatedBucket, prefix: "\(user)/").count == 1, "generated images stay in the gallery")

            try await JobQueue(database: h.database).enqueue(try Purge.userJob(userID: user))
            #expect(try await h.eventually { try await h.database.query("SELECT count(*) FROM users WHERE id = \(user)")[0].decode(Int.self, at: 0) == 0 })
            #expect(try await h.context.storage.list(bucket: h.context.settings.photoBucket, prefix: "\(user)/").isEmpty)
            #expect(try await h.context.storage.list(bucket: h.context.settings.generatedBucket, prefix: "\(user)/").isEmpty)
            for table in ["avatars", "credit_ledger", "generations", "generated_images"] {
                #expect(try await h.database.query("SELECT count(*) FROM \(identifier: table) WHERE user_id = \(user)")[0].decode(Int.self, at: 0) == 0, "\(table)")
            }
        }
    }
}
