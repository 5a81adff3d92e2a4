import Foundation
import Postgres
import Sandbox

/// Case 5: another user presses every button of the first user's objects — every verb on
/// every avatar, photo and generation, plus every button the first user was ever shown. Nothing
/// may change for either of them, and each press gets a polite refusal.
struct ForgedCallbacksCase: ReliabilityCase {
    static let name = "forged"
    static let title = "another user replays every button of the first user's avatars, photos and images"

    static let avatarVerbs = ["av:open", "av:cont", "av:del", "av:delok", "av:status", "av:cancel", "av:main", "av:ren", "av:retry", "gen:av", "train", "ph:list"]
    static let generationVerbs = ["gen:fav", "gen:show", "gen:del", "gen:delok", "gen:again", "gen:prompt"]

    func run(_ context: ReliabilityContext) async throws -> CaseReport {
        let sandbox = Sandbox(fal: .init(trainingDuration: .seconds(1), generationDuration: .milliseconds(200)))
        let report = try await ReliabilityStack.run(adminURL: context.adminURL, migrations: context.migrations, workers: 2, sandbox: sandbox,
                                       logDirectory: context.logDirectory(Self.name)) { stack in
            var report = CaseReport(name: Self.name)
            let owner = Journey(sandbox: sandbox, userID: 970_001), intruder = Journey(sandbox: sandbox, userID: 970_002)
            var seen = Set<String>()
            func collect() { for message in sandbox.telegram.messages(inChat: owner.user.id) { for button in message.keyboard.joined() { if let data = button.callbackData { seen.insert(data) } } } }
            // The owner: a trained avatar with images, then a second avatar left as a draft with 3 photos.
            try await owner.run(); collect()
            try await owner.tap("★ Favourite", expect: "Favourites updated"); collect()
            try await owner.say("/avatars", expect: "Your avatars"); collect()
            try await owner.createAvatar(name: "Second draft", returning: true); collect()
            try await owner.sendPhotos(3); collect()
            try await owner.tap("My photos", expect: "Tap one to remove it"); collect()

            let ids = try await Self.ownedIDs(stack.database, userID: owner.user.id)
            var forged = seen
            for avatar in ids.avatars { for verb in Self.avatarVerbs { forged.insert("\(verb):\(avatar)") } }
            for photo in ids.photos { forged.insert("ph:del:\(photo)") }
            for generation in ids.generations { for verb in Self.generationVerbs { forged.insert("\(verb):\(generation)") } }
            // Buttons that name nothing of the owner's (menus, "help") are legitimate for anyone.
            let owned = forged.filter { data in (ids.avatars + ids.photos + ids.generations).contains { data.contains($0) } }.sorted()

            try await intruder.say("/start", expect: "I am Aisha")
            let before = try await Self.snapshot(stack.database, owner: owner.user.id, intruder: intruder.user.id)
            let ownerEvents = sandbox.transcript.events(chatID: owner.user.id).count
            let intruderEvents = sandbox.transcript.events(chatID: intruder.user.id).count
            let message = sandbox.telegram.lastBotMessage(inChat: intruder.user.id)?.id ?? 1
            for data in owned { await intruder.user.forgeCallback(data: data, messageID: message) }
            let refusals = await Self.waitForToasts(sandbox, chat: intruder.user.id, after: intruderEvents, count: owned.count)
            _ = try await stack.waitForQuiet(timeout: .seconds(30))
            try await Task.sleep(for: .seconds(1))
            let after = try await Self.snapshot(stack.database, owner: owner.user.id, intruder: intruder.user.id)
            let ownerHeard = sandbox.transcript.events(chatID: owner.user.id).dropFirst(ownerEvents).filter { $0.actor == .bot }.count
            let falCalls = sandbox.fal.requests.count

            report.line("owner: 2 avatars (one trained, one draft), \(ids.photos.count) photos, \(ids.generations.count) generation(s); \(seen.count) distinct buttons shown to them")
            report.line("the intruder pressed \(owned.count) forged buttons naming the owner's things (\(Self.avatarVerbs.count) avatar verbs, photo removal, \(Self.generationVerbs.count) image verbs, and every button the owner saw)")
            report.line("polite refusals (“no longer valid”): \(refusals)/\(owned.count); owner's rows changed: \(before.owner != after.owner); intruder's money, avatars or images changed: \(before.intruder != after.intruder); messages the owner got meanwhile: \(ownerHeard); FAL requests: \(falCalls)")
            report.check(refusals == owned.count, "\(owned.count - refusals) forged presses were not refused")
            report.check(before.owner == after.owner, "the owner's data changed")
            report.check(before.intruder == after.intruder, "the intruder's data changed")
            report.check(ownerHeard == 0, "the owner was sent \(ownerHeard) messages")
            return report
        }
        return report
    }

    static func ownedIDs(_ database: PostgresClient, userID: Int64) async throws -> (avatars: [String], photos: [String], generations: [String]) {
        func ids(_ query: PostgresQuery) async throws -> [String] { try await database.query(query).map { try $0.decode(String.self, at: 0) } }
        return (try await ids("SELECT id::text FROM avatars WHERE user_id = \(userID)"),
                try await ids("SELECT p.id::text FROM avatar_photos p JOIN avatars a ON a.id = p.avatar_id WHERE a.user_id = \(userID)"),
                try await ids("SELECT id::text FROM generations WHERE user_id = \(userID)"))
    }

    /// Digests of everything the owner has (rows and chat state) and of the intruder's money and things.
    static func snapshot(_ database: PostgresClient, owner: Int64, intruder: Int64) async throws -> (owner: String, intruder: String) {
        func digest(_ query: PostgresQuery) async throws -> String { try await database.query(query)[0].decode(String.self, at: 0) }
        let ownerDigest = try await digest("""
            SELECT md5(concat_ws('|',
              (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM users t WHERE id = \(owner)),
              (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM avatars t WHERE user_id = \(owner)),
              (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM avatar_photos t JOIN avatars a ON a.id = t.avatar_id WHERE a.user_id = \(owner)),
              (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM credit_ledger t WHERE user_id = \(owner)),
              (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM generations t WHERE user_id = \(owner)),
              (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM generated_images t WHERE user_id = \(owner)),
              (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM chat_state t WHERE chat_id = \(owner))))
            """)
        let intruderDigest = try await digest("""
            SELECT md5(concat_ws('|',
              (SELECT balance::text FROM users WHERE id = \(intruder)),
              (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM credit_ledger t WHERE user_id = \(intruder)),
              (SELECT count(*)::text FROM avatars WHERE user_id = \(intruder)),
              (SELECT count(*)::text FROM generations WHERE user_id = \(intruder))))
            """)
        return (ownerDigest, intruderDigest)
    }

    static func waitForToasts(_ sandbox: Sandbox, chat: Int64, after: Int, count: Int) async -> Int {
        let deadline = ContinuousClock.now + .seconds(60)
        var found = 0
        while ContinuousClock.now < deadline {
            found = sandbox.transcript.events(chatID: chat).dropFirst(after).filter { $0.kind == "toast" && $0.text.contains("no longer valid") }.count
            if found >= count { break }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return found
    }
}
