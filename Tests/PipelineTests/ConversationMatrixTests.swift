import Avatars
import Bot
import Foundation
import Messages
import Testing

/// The avatar card and its buttons, checked exhaustively on the pure core: every verb in every
/// status, the presser's own avatar and someone else's, and every screen rendered in both
/// languages with no placeholder left unfilled.
@Suite struct ConversationMatrixTests {
    static let verbs = ["open", "cont", "status", "cancel", "retry", "main", "ren", "del", "delok", "gen"]

    /// Which verbs each status allows (the issue's card rules; everything else is a stale button).
    static let allowed: [AvatarStatus: Set<String>] = [
        .draft: ["open", "cont", "del", "delok"],
        .ready: ["open", "cont", "del", "delok"],
        .training: ["open", "status", "cancel", "del", "delok"],
        .completed: ["open", "main", "ren", "del", "delok", "gen"],
        .failed: ["open", "retry", "del", "delok"],
        .cancelled: ["open", "retry", "del", "delok"],
    ]

    func facts(target: Avatar?, balance: Int = 150) -> BotFacts {
        var facts = BotFacts(isNewUser: false, balance: balance, trainingPrice: 100, minimumPhotos: 10, maximumPhotos: 20, collecting: nil, newAvatarID: UUID())
        facts.target = target
        return facts
    }

    static func data(_ verb: String, _ id: UUID) -> String { verb == "gen" ? "gen:av:\(id.uuidString.lowercased())" : "av:\(verb):\(id.uuidString.lowercased())" }

    @Test(arguments: AvatarStatus.allCases)
    func everyVerbInEveryStatus(status: AvatarStatus) {
        let avatar = Avatar(userID: 1, name: "Mia", status: status, photoCount: 12)
        for verb in Self.verbs {
            let (next, actions) = Conversation.handle(.idle, .button(data: Self.data(verb, avatar.id), callbackID: "c"), facts(target: avatar))
            let stale = actions == [.answerCallback(textKey: "stale.button")]
            #expect(stale == !(Self.allowed[status]!.contains(verb)), "\(verb) on a \(status) avatar")
            if stale { #expect(next == .idle, "a refused button changes no step") }
            // Someone else's avatar (the handler loads `target` only for the presser's own): always refused.
            let (foreignNext, foreign) = Conversation.handle(.idle, .button(data: Self.data(verb, avatar.id), callbackID: "c"), facts(target: nil))
            #expect(foreignNext == .idle && foreign == [.answerCallback(textKey: "stale.button")], "\(verb) on a foreign avatar")
        }
    }

    @Test func theEffectsOfTheLegalVerbs() {
        func run(_ verb: String, _ status: AvatarStatus, balance: Int = 150) -> (ChatStep, [BotAction], Avatar) {
            let avatar = Avatar(userID: 1, name: "Mia", status: status, photoCount: 12)
            let (step, actions) = Conversation.handle(.idle, .button(data: Self.data(verb, avatar.id), callbackID: "c"), facts(target: avatar, balance: balance))
            return (step, actions, avatar)
        }
        var (step, actions, avatar) = run("cont", .ready)
        #expect(step == .collecting(avatar.id))
        (step, actions, avatar) = run("cancel", .training)
        #expect(actions.contains(.cancelTraining(avatarID: avatar.id)))
        (step, actions, avatar) = run("retry", .failed)
        #expect(actions.contains(.startTraining(avatarID: avatar.id)))
        (step, actions, avatar) = run("retry", .cancelled, balance: 40)
        #expect(!actions.contains(.startTraining(avatarID: avatar.id)) && Self.replyKeys(actions) == ["train.insufficient"], "too little credit says how much is missing")
        (step, actions, avatar) = run("main", .completed)
        #expect(actions.contains(.setMain(avatarID: avatar.id)))
        (step, actions, avatar) = run("ren", .completed)
        #expect(step == .renaming(avatar.id))
        (step, actions, avatar) = run("del", .training)
        #expect(Self.replyKeys(actions) == ["avatar.delete.confirm"] && !actions.contains(.deleteAvatar(avatarID: avatar.id)), "delete asks first")
        (step, actions, avatar) = run("delok", .draft)
        #expect(actions.contains(.deleteAvatar(avatarID: avatar.id)))
        (step, actions, avatar) = run("gen", .completed)
        #expect(step == .prompt(avatar.id))
    }

    /// A prompt is 3–1000 characters; control characters are refused (a NUL could not even be
    /// stored in the chat's state), line breaks are kept.
    @Test func promptsRefuseControlCharacters() {
        let avatar = Avatar(userID: 1, name: "Mia", status: .completed, isMain: true, photoCount: 12)
        for bad in ["a cat\u{0} in space", "a cat \u{7} in space", "ab", String(repeating: "a", count: 1001)] {
            let (step, actions) = Conversation.handle(.prompt(avatar.id), .text(bad), facts(target: avatar))
            #expect(step == .prompt(avatar.id) && Self.replyKeys(actions) == ["generate.prompt.invalid"], "\(bad.prefix(20))")
        }
        let (step, _) = Conversation.handle(.prompt(avatar.id), .text("  a cat\nin space\twith stars "), facts(target: avatar))
        #expect(step == .aspect(avatar.id, "a cat\nin space\twith stars"))
    }

    /// The card's buttons by status, as the issue lists them (plus the way back to the list).
    @Test func cardButtonsByStatus() {
        let expected: [(AvatarStatus, Bool, [String])] = [
            (.draft, false, ["card.continue", "button.delete", "menu.avatars"]),
            (.ready, false, ["card.continue", "button.delete", "menu.avatars"]),
            (.training, false, ["card.status", "card.cancel", "menu.avatars"]),
            (.completed, false, ["button.generate", "card.main", "card.rename", "button.delete", "menu.avatars"]),
            (.completed, true, ["button.generate", "card.rename", "button.delete", "menu.avatars"]),
            (.failed, false, ["button.retry", "button.delete", "menu.avatars"]),
            (.cancelled, false, ["button.retry", "button.delete", "menu.avatars"]),
        ]
        for (status, isMain, keys) in expected {
            let avatar = Avatar(userID: 1, name: "Mia", status: status, isMain: isMain, photoCount: 12)
            let (_, actions) = Conversation.handle(.idle, .button(data: Self.data("open", avatar.id), callbackID: "c"), facts(target: avatar))
            guard case .reply(let card)? = actions.first(where: { if case .reply = $0 { true } else { false } }) else { Issue.record("no card for \(status)"); continue }
            #expect(card.buttons.joined().map(\.key) == keys, "\(status), main \(isMain)")
            for button in card.buttons.joined() { #expect(button.data.utf8.count <= 64, "callback_data fits Telegram's 64 bytes") }
            for language in Catalog.Language.allCases {
                let text = Catalog.shared.localized(card.key, language, card.arguments)
                #expect(!text.contains("{") && text.contains("Mia"), "\(status) card in \(language): \(text)")
            }
        }
    }

    /// Every screen a command opens renders fully in both languages.
    @Test func everyCommandScreenRendersInBothLanguages() {
        let commands = ["/start", "/help", "/balance", "/cancel", "/language", "/avatars", "/generate", "/gallery", "/delete_me", "/create", "/nonsense"]
        for command in commands {
            var facts = facts(target: nil)
            facts.avatars = [Avatar(userID: 1, name: "Mia", status: .completed, isMain: true, photoCount: 12)]
            let (_, actions) = Conversation.handle(.idle, .command(command, argument: ""), facts)
            let replies = actions.compactMap { action -> Reply? in if case .reply(let reply) = action { reply } else { nil } }
            #expect(!replies.isEmpty, "\(command) answers")
            for reply in replies {
                for language in Catalog.Language.allCases {
                    let text = Catalog.shared.localized(reply.key, language, reply.arguments)
                    #expect(!text.isEmpty && !text.contains("{"), "\(command) in \(language): \(text)")
                    for button in reply.buttons.joined() {
                        #expect(!Catalog.shared.localized(button.key, language, button.arguments).contains("{"), "\(command): \(button.key)")
                    }
                }
            }
        }
    }

    static func replyKeys(_ actions: [BotAction]) -> [String] { actions.compactMap { if case .reply(let reply) = $0 { reply.key } else { nil } } }
}
