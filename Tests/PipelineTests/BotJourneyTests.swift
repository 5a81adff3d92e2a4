import Avatars
import Bot
import FAL
import Foundation
import JSON
import ObjectStorage
import Pipeline
import Postgres
import Sandbox
import Testing

/// The bot through the real webhook: Sandbox user → aisha-server → telegram.update → replies.
@Suite struct BotJourneyTests {
    @Test func startCreateSendPhotosAndTrain() async throws {
        try await Harness.run(withBot: true) { h in
            let user = h.sandbox.telegram.user(id: 7501, firstName: "Anna", languageCode: "en")
            let transcript = h.sandbox.transcript
            func botSays(_ fragment: String) async -> Bool {
                await transcript.waitFor(chatID: 7501, timeout: .seconds(20)) { $0.actor == .bot && $0.text.contains(fragment) } != nil
            }
            #expect(await user.send("/start") == 200)
            #expect(await botSays("I am Aisha"))
            // The reply was admitted by the rate limiter in the update's own transaction and sent
            // right after its COMMIT, with no job of its own: not queued for a claimer.
            let queuedReplies = try await h.database.query("SELECT count(*) FROM jobs WHERE kind = 'telegram.send'")[0].decode(Int.self, at: 0)
            #expect(queuedReplies == 0)
            #expect(await user.press("Create an avatar") == 200)
            #expect(await botSays("What should the avatar learn?"))
            #expect(await user.press("A person (portrait)") == 200)
            #expect(await botSays("Who is in the photos?"))
            #expect(await user.press("A woman") == 200)
            #expect(await botSays("Give the avatar a name"))
            #expect(await user.send("x") == 200)
            #expect(await botSays("must be 2–40 characters"))
            #expect(await user.send("  Anna at work  ") == 200)
            #expect(await botSays("you are 18 or older"))
            #expect(await user.press("I confirm") == 200)
            #expect(await botSays("Send 10–20 photos for “Anna at work”"))
            let consented = try await h.database.query("SELECT consented_at IS NOT NULL FROM users WHERE id = 7501")[0].decode(Bool.self, at: 0)
            #expect(consented)
            _ = await user.sendAlbum((1...10).map { Harness.jpeg(UInt64(2000 + $0)) })
            #expect(await botSays("Photos: 10 of 20"))
            // One progress message, edited in place — not one message per photo.
            let progress = h.sandbox.telegram.messages(inChat: 7501).filter { $0.fromBot && $0.text?.hasPrefix("Photos:") == true }
            #expect(progress.count == 1 && progress[0].text?.contains("Enough to train") == true, "\(progress.map { $0.text ?? "" })")
            #expect(h.sandbox.telegram.floodRejections == 0)
            #expect(await user.press("Start training") == 200)
            #expect(await botSays("Training started"))
            #expect(await botSays("is ready"))
            let avatar = try #require(try await h.database.query("SELECT \(Avatar.columns) FROM avatars WHERE user_id = 7501").first.map(Avatar.init(row:)))
            #expect(avatar.name == "Anna at work" && avatar.status == .completed && avatar.photoCount == 10)
            #expect(try await h.balance(7501) == 50)
            // Pressing the old "Start training" again changes nothing: no second charge.
            #expect(await user.press("Start training") == 200)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await h.balance(7501) == 50)
            #expect(h.sandbox.fal.requests.filter { $0.model == "fal-ai/flux-lora-portrait-trainer" }.count == 1)
        }
    }

    @Test func anotherUsersTrainButtonIsRefused() async throws {
        try await Harness.run(withBot: true) { h in
            let owner = try await h.userWithAvatar(7502)
            for seed in 1...10 { try await h.sendPhoto(Harness.jpeg(UInt64(3000 + seed)), userID: 7502, avatarID: owner.id) }
            #expect(try await h.eventually { try await h.store.avatar(owner.id)?.status == .ready })
            let intruder = h.sandbox.telegram.user(id: 7503, firstName: "Eve")
            #expect(await intruder.send("/start") == 200)
            _ = await h.sandbox.transcript.waitFor(chatID: 7503) { $0.actor == .bot }
            // Eve forges the owner's button on her own chat's message.
            let message = try #require(h.sandbox.telegram.lastBotMessage(inChat: 7503))
            #expect(await intruder.forgeCallback(data: "train:\(owner.id.uuidString.lowercased())", messageID: message.id) == 200)
            try await Task.sleep(for: .seconds(1))
            #expect(try await h.store.avatar(owner.id)?.status == .ready, "nothing changed for the owner")
            let (ownerBalance, intruderBalance) = (try await h.balance(7502), try await h.balance(7503))
            #expect(ownerBalance == 150 && intruderBalance == 150)
            #expect(await h.sandbox.transcript.waitFor(chatID: 7503) { $0.kind == "toast" && $0.text.contains("no longer valid") } != nil, "a polite alert")
        }
    }
}

@Suite struct BotGalleryTests {
    @Test func galleryMainRenameGenerateAndDelete() async throws {
        try await Harness.run(withBot: true) { h in
            let avatar = try await GenerationTests().trained(h, user: 7601, seedBase: 4000)
            let user = h.sandbox.telegram.user(id: 7601)
            let transcript = h.sandbox.transcript
            func botSays(_ fragment: String) async -> Bool {
                await transcript.waitFor(chatID: 7601, timeout: .seconds(20)) { $0.actor == .bot && $0.text.contains(fragment) } != nil
            }
            #expect(await user.send("/avatars") == 200)
            #expect(await botSays("Your avatars (1), page 1 of 1"))
            #expect(await user.press("Me at work · ready") == 200)
            #expect(await botSays("Status: ready"))
            let card = try #require(h.sandbox.telegram.lastBotMessage(inChat: 7601))
            #expect(card.keyboard.flatMap { $0 }.map(\.text) == ["Generate", "Rename", "Delete", "My avatars"], "already main: no Set as main")
            #expect(await user.press("Rename") == 200)
            #expect(await botSays("Send the new name"))
            #expect(await user.send("Office me") == 200)
            #expect(await botSays("Renamed to “Office me”"))
            #expect(try await h.store.avatar(avatar.id)?.name == "Office me")

            #expect(await user.send("/generate") == 200)
            #expect(await botSays("Describe the scene for “Office me”"))
            #expect(await user.send("hiking in the Alps at sunrise") == 200)
            #expect(await botSays("Choose the shape"))
            #expect(await user.press("9:16") == 200)
            #expect(await botSays("How many images?"))
            #expect(await user.press("2 (10)") == 200)
            #expect(await botSays("Generating 2 image(s)"))
            #expect(await botSays("More?"))
            let album = h.sandbox.telegram.messages(inChat: 7601).filter { $0.fromBot && $0.mediaGroupID != nil }
            #expect(album.count == 2)
            #expect(try await h.balance(7601) == 40)

            let seen = transcript.events(chatID: 7601).count
            #expect(await user.send("/avatars") == 200)
            #expect(await transcript.waitFor(chatID: 7601, after: seen) { $0.actor == .bot && $0.text.contains("Your avatars (1)") } != nil)
            #expect(await user.press("Office me · ready") == 200)
            #expect(await transcript.waitFor(chatID: 7601, after: seen) { $0.actor == .bot && $0.text.contains("“Office me”") && $0.text.contains("Status") } != nil)
            #expect(await user.press("Delete") == 200)
            #expect(await botSays("Delete “Office me”?"))
            #expect(await user.press("Yes, delete") == 200)
            #expect(try await h.eventually { try await h.store.avatar(avatar.id) == nil })
            #expect(try await h.context.storage.list(bucket: h.context.settings.photoBucket, prefix: "7601/").isEmpty)
        }
    }
}

@Suite struct BotPresetsAndAccountTests {
    @Test func presetAgainPromptBalanceAndDeleteMe() async throws {
        try await Harness.run(withBot: true) { h in
            _ = try await GenerationTests().trained(h, user: 7701, seedBase: 4100)
            let user = h.sandbox.telegram.user(id: 7701)
            let transcript = h.sandbox.transcript
            func botSays(_ fragment: String, after: Int = 0) async -> Bool {
                await transcript.waitFor(chatID: 7701, after: after, timeout: .seconds(20)) { $0.actor == .bot && $0.text.contains(fragment) } != nil
            }
            #expect(await user.send("/generate") == 200)
            #expect(await botSays("Describe the scene"))
            #expect(await user.press("Browse styles") == 200)
            #expect(await botSays("Choose a category"))
            #expect(await user.press("Film noir") == 200)
            #expect(await botSays("Choose a style"))
            #expect(await user.press("Film noir detective") == 200)
            #expect(await botSays("Choose the shape"))
            #expect(await user.press("1:1") == 200)
            #expect(await botSays("How many images?"))
            #expect(await user.press("1 (5)") == 200)
            #expect(await transcript.waitFor(chatID: 7701) { $0.actor == .bot && $0.kind == "photo" } != nil)
            let request = try #require(h.sandbox.fal.requests.last { $0.model == "fal-ai/flux-lora" })
            #expect(request.input["prompt"]?.stringValue?.hasSuffix("film noir detective, trench coat and fedora, rain, venetian blind shadows, black and white") == true)

            let seen = transcript.events(chatID: 7701).count
            #expect(await user.press("Show prompt") == 200)
            #expect(await botSays("venetian blind shadows", after: seen))
            #expect(await user.press("Again") == 200)
            #expect(try await h.eventually { h.sandbox.fal.requests.filter { $0.model == "fal-ai/flux-lora" }.count == 2 })
            #expect(try await h.eventually { try await h.balance(7701) == 40 }, "each generation charged once")

            #expect(await user.send("/balance") == 200)
            #expect(await botSays("Your balance: 40 credits."))
            let balance = try #require(await transcript.waitFor(chatID: 7701) { $0.text.hasPrefix("Your balance: 40") })
            #expect(balance.text.contains("-100 training") && balance.text.contains("+150 welcome") && balance.text.contains("-5 images"))

            #expect(await user.send("/delete_me") == 200)
            #expect(await botSays("Delete all your data?"))
            #expect(await user.press("Yes, delete everything") == 200)
            #expect(try await h.eventually { try await h.database.query("SELECT count(*) FROM users WHERE id = 7701")[0].decode(Int.self, at: 0) == 0 })
        }
    }
}

@Suite struct BotPhotoListTests {
    @Test func listAndRemoveAPhoto() async throws {
        try await Harness.run(withBot: true) { h in
            let user = h.sandbox.telegram.user(id: 7801, firstName: "Ola")
            let transcript = h.sandbox.transcript
            func botSays(_ fragment: String, after: Int = 0) async -> Bool {
                await transcript.waitFor(chatID: 7801, after: after, timeout: .seconds(20)) { $0.actor == .bot && $0.text.contains(fragment) } != nil
            }
            #expect(await user.send("/start") == 200)
            #expect(await botSays("I am Aisha"))
            #expect(await user.press("Create an avatar") == 200)
            #expect(await botSays("What should the avatar learn?"))
            #expect(await user.press("A style") == 200)
            #expect(await botSays("Who is in the photos?"))
            #expect(await user.press("Prefer not to say") == 200)
            #expect(await botSays("Give the avatar a name"))
            #expect(await user.send("Watercolours") == 200)
            #expect(await botSays("18 or older"))
            #expect(await user.press("I confirm") == 200)
            #expect(await botSays("Send 10–20 photos"))
            _ = await user.sendAlbum((1...10).map { Harness.jpeg(UInt64(6000 + $0)) })
            #expect(await botSays("Photos: 10 of 20"))
            let avatarID = try #require(try await h.database.query("SELECT id FROM avatars WHERE user_id = 7801").first?.decode(UUID.self, at: 0))
            #expect(try await h.store.avatar(avatarID)?.status == .ready)
            #expect(await user.press("My photos") == 200)
            #expect(await botSays("10 photos. Tap one to remove it"))
            #expect(await user.press("Remove photo 3") == 200)
            #expect(await botSays("Removed. 9 photos left"))
            #expect(try await h.eventually { try await h.store.avatar(avatarID)?.photoCount == 9 })
            #expect(try await h.store.avatar(avatarID)?.status == .draft, "below the minimum again")
            #expect(try await h.eventually { try await h.context.storage.list(bucket: h.context.settings.photoBucket, prefix: "7801/").count == 9 })
            // Another user's photo id, forged: refused.
            #expect(await user.forgeCallback(data: "ph:del:\(UUID().uuidString.lowercased())", messageID: 1) == 200)
            #expect(await transcript.waitFor(chatID: 7801) { $0.kind == "toast" && $0.text.contains("no longer valid") } != nil)
            #expect(try await h.store.avatar(avatarID)?.photoCount == 9)
        }
    }
}

@Suite struct BotImageGalleryTests {
    @Test func favouriteShowAgainAndDelete() async throws {
        try await Harness.run(withBot: true) { h in
            let avatar = try await GenerationTests().trained(h, user: 7901, seedBase: 7000)
            let generations = GenerationStore(database: h.database)
            guard case .started(let id, _) = try await generations.request(userID: 7901, avatarID: avatar.id, chatID: 7901, prompt: "a red bicycle in Amsterdam", aspectRatio: "1:1", count: 2, settings: h.context.settings) else { Issue.record("no generation"); return }
            #expect(try await h.eventually { try await generations.generation(id)?.status == "completed" })
            let user = h.sandbox.telegram.user(id: 7901)
            let transcript = h.sandbox.transcript
            #expect(await transcript.waitFor(chatID: 7901) { $0.text == "More?" } != nil)
            #expect(await user.press("★ Favourite") == 200)
            #expect(try await h.eventually { try await h.database.query("SELECT bool_and(favourite) FROM generated_images WHERE generation_id = \(id)")[0].decode(Bool?.self, at: 0) == true })
            let before = h.sandbox.telegram.messages(inChat: 7901).filter { $0.fromBot && !$0.fileIDs.isEmpty }.count
            #expect(await user.send("/gallery") == 200)
            #expect(await transcript.waitFor(chatID: 7901) { $0.text.contains("Your images (1)") && $0.buttons.flatMap { $0 }.contains("★ a red bicycle in Amsterdam") } != nil)
            #expect(await user.press("★ a red bicycle") == 200)
            #expect(try await h.eventually { h.sandbox.telegram.messages(inChat: 7901).filter { $0.fromBot && !$0.fileIDs.isEmpty }.count == before + 2 }, "shown again")
            #expect(await user.press("Delete") == 200)
            #expect(await transcript.waitFor(chatID: 7901) { $0.text.contains("Delete these images") } != nil)
            #expect(await user.press("Yes, delete") == 200)
            #expect(try await h.eventually { try await h.database.query("SELECT count(*) FROM generated_images WHERE user_id = 7901")[0].decode(Int.self, at: 0) == 0 })
            #expect(try await h.eventually { try await h.context.storage.list(bucket: h.context.settings.generatedBucket, prefix: "7901/").isEmpty })
            // Another user cannot favourite or delete them: the generation is not theirs.
            let other = h.sandbox.telegram.user(id: 7902)
            #expect(await other.forgeCallback(data: "gen:del:\(id.uuidString.lowercased())", messageID: 1) == 200)
            #expect(await transcript.waitFor(chatID: 7902) { $0.kind == "toast" && $0.text.contains("no longer valid") } != nil)
        }
    }
}

@Suite struct BotBlockedUserTests {
    @Test func aUserWhoBlocksTheBotIsNotMessagedAgainAndEditsAreIgnored() async throws {
        try await Harness.run(withBot: true) { h in
            let user = h.sandbox.telegram.user(id: 8001, firstName: "Bo")
            #expect(await user.send("/start") == 200)
            let welcome = await h.sandbox.transcript.waitFor(chatID: 8001) { $0.actor == .bot && $0.text.contains("I am Aisha") }
            #expect(welcome != nil)
            // An edited message is stored and acknowledged, and the bot stays quiet about it.
            let seen = h.sandbox.transcript.events(chatID: 8001).count
            #expect(await user.editMessage(1, to: "/start again") == 200)
            // Blocking: Telegram's my_chat_member update marks the user …
            #expect(await user.blockBot() == 200)
            #expect(try await h.eventually { try await h.database.query("SELECT blocked_at IS NOT NULL FROM users WHERE id = 8001")[0].decode(Bool.self, at: 0) })
            // … and a message queued afterwards is dropped without calling Telegram.
            try await h.context.tell(8001, "balance", ["balance": "0", "history": ""], uniqueKey: "test:after-block")
            #expect(try await h.eventually {
                try await h.database.query("SELECT count(*) FROM jobs WHERE unique_key = 'msg:test:after-block' AND state = 'completed'")[0].decode(Int.self, at: 0) == 1
            })
            #expect(!h.sandbox.transcript.events(chatID: 8001).dropFirst(seen).contains { $0.actor == .bot }, "nothing was sent after the edit or the block")
        }
    }
}

/// A user registered by another transaction while their update's transaction ran: its snapshot
/// found no row and its insert met the other's. The update is rescheduled, not lost, and answered once.
@Suite struct BotRegistrationRaceTests {
    @Test func anUpdateRacingTheUsersRegistrationIsRescheduledNotLost() async throws {
        try await Harness.run(withBot: true) { h in
            let user = h.sandbox.telegram.user(id: 7901, firstName: "Vera", languageCode: "en")
            try await h.database.withTransaction { tx in
                try await tx.query("INSERT INTO users (id, first_name, language) VALUES (7901, 'Vera', 'en')")
                #expect(await user.send("/start") == 200)
                // Commit only once the update's insert waits on this one.
                let waiting = try await h.eventually {
                    try await h.database.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")[0].decode(Int.self, at: 0) > 0
                }
                #expect(waiting, "the update's registration waited on ours")
            }
            let transcript = h.sandbox.transcript
            // Registered by the other transaction, the user is greeted as a returning one.
            #expect(await transcript.waitFor(chatID: 7901, timeout: .seconds(20)) { $0.actor == .bot && $0.text.contains("Welcome back") } != nil)
            // The reply leaves before the update's acknowledgement is written.
            #expect(try await h.eventually { try await h.database.query("SELECT count(*) FROM jobs WHERE kind = 'telegram.update' AND state = 'completed'")[0].decode(Int.self, at: 0) == 1 })
            let job = try await h.database.query("SELECT state, errors::text FROM jobs WHERE kind = 'telegram.update'")
            #expect(job.count == 1)
            let (state, errors) = try job[0].decode(String.self, String.self)
            #expect(state == "completed" && errors.contains("registered concurrently"), "\(state) \(errors)")
            #expect(transcript.events(chatID: 7901).filter { $0.actor == .bot }.count == 1, "answered once")
        }
    }
}
