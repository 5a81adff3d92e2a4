import Avatars
import Foundation
import Postgres
import TestSupport
import Testing

/// The database rules under concurrency, on real PostgreSQL.
@Suite struct DomainConcurrencyTests {
    @Test func twentyFiveAlbumPhotosAtOnceLeaveTwenty() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 10)
            defer { client.shutdown() }
            let store = AvatarStore(database: client)
            try await store.ensureUser(id: 1, firstName: "A", language: "en", welcomeCredits: 0)
            let avatar = try await store.createAvatar(userID: 1, name: "Album", kind: .portrait, gender: .male)
            let settings = PipelineSettings(falWebhookURL: "http://x")
            let outcomes = try await withThrowingTaskGroup(of: AvatarStore.PhotoAdded.self) { group in
                for index in 0..<25 {
                    group.addTask {
                        try await store.addPhoto(avatarID: avatar.id, photoID: UUID(), objectKey: "k/\(index)", sha256: "sha\(index)", fileUniqueID: "f\(index)",
                                                 format: "jpeg", size: 1000, width: 800, height: 800, settings: settings)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { if case .accepted = $0 { true } else { false } }.count == 20)
            #expect(outcomes.filter { $0 == .rejected(.limitReached) }.count == 5)
            let final = try #require(try await store.avatar(avatar.id))
            #expect(final.photoCount == 20 && final.status == .ready)
            #expect(try await client.query("SELECT count(*) FROM avatar_photos")[0].decode(Int.self, at: 0) == 20)
        }
    }

    @Test func fiftyChargesWithCreditForTenChargeTen() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client(maxConnections: 10)
            defer { client.shutdown() }
            let store = AvatarStore(database: client)
            try await store.ensureUser(id: 2, firstName: "B", language: "en", welcomeCredits: 50)
            let results = try await withThrowingTaskGroup(of: CreditLedger.Movement.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        try await client.withTransaction { tx in
                            try await CreditLedger.move(userID: 2, amount: -5, reference: "generation:\(index)", reason: "generation", on: tx)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { if case .applied = $0 { true } else { false } }.count == 10)
            #expect(results.filter { $0 == .insufficient }.count == 40)
            let (balance, sum) = try await client.query("SELECT balance, (SELECT sum(amount) FROM credit_ledger WHERE user_id = 2)::int FROM users WHERE id = 2")[0].decode(Int.self, Int.self)
            #expect(balance == 0 && sum == 0, "the balance is the ledger's sum and never went below zero")
            // The same reference again changes nothing.
            let again = try await client.withTransaction { tx in try await CreditLedger.move(userID: 2, amount: 5, reference: "welcome:2", reason: "x", on: tx) }
            #expect(again == .alreadyApplied)
        }
    }

    @Test func illegalTransitionsAreRefusedByTheDatabase() async throws {
        try await TestDatabase.withMigrated { database in
            let client = try database.client()
            defer { client.shutdown() }
            let store = AvatarStore(database: client)
            try await store.ensureUser(id: 3, firstName: "C", language: "en", welcomeCredits: 0)
            let avatar = try await store.createAvatar(userID: 3, name: "Rules", kind: .style, gender: .other)
            await #expect(throws: PostgresError.self) { try await client.query("UPDATE avatars SET status = 'training' WHERE id = \(avatar.id)") }
            await #expect(throws: PostgresError.self) { try await client.query("UPDATE avatars SET status = 'completed', lora_url = 'x' WHERE id = \(avatar.id)") }
            for from in AvatarStatus.allCases { for to in AvatarStatus.allCases where from != to {
                #expect(from.canMove(to: to) == [("draft", "ready"), ("ready", "draft"), ("ready", "training"), ("training", "completed"), ("training", "failed"),
                                                 ("training", "cancelled"), ("failed", "ready"), ("cancelled", "ready")].contains { $0 == (from.rawValue, to.rawValue) })
            } }
            #expect(AvatarRules.validName("  Ann  ") == "Ann" && AvatarRules.validName("A") == nil && AvatarRules.validName("bad\u{0007}name") == nil)
            #expect(AvatarRules.triggerPhrase(avatarID: avatar.id, kind: .portrait, gender: .female).hasSuffix(" woman"))
        }
    }
}
