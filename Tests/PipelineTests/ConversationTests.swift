import Avatars
import Bot
import Foundation
import Messages
import Testing

/// The pure conversation core: screens, buttons and refusals without any I/O.
@Suite struct ConversationTests {
    let id = UUID()
    func facts(balance: Int = 150, collecting: Avatar? = nil, isNew: Bool = false) -> BotFacts {
        BotFacts(isNewUser: isNew, balance: balance, trainingPrice: 100, minimumPhotos: 10, maximumPhotos: 20, collecting: collecting, newAvatarID: id)
    }

    @Test func theWizardWalksKindGenderNameConsentPhotos() {
        var step = ChatStep.idle
        var actions: [BotAction]
        (step, actions) = Conversation.handle(step, .command("/start", argument: "ref123"), facts(isNew: true))
        #expect(step == .idle && actions.count == 1, "a deep link does not crash /start")
        (step, _) = Conversation.handle(step, .button(data: "av:new", callbackID: "1"), facts())
        #expect(step == .chooseKind)
        (step, _) = Conversation.handle(step, .button(data: "kind:portrait", callbackID: "2"), facts())
        #expect(step == .chooseGender(.portrait))
        (step, _) = Conversation.handle(step, .button(data: "gender:male", callbackID: "3"), facts())
        #expect(step == .enterName(.portrait, .male))
        (step, actions) = Conversation.handle(step, .text("\u{0007}bell"), facts())
        #expect(step == .enterName(.portrait, .male) && actions.count == 1, "a name with a control character is refused")
        (step, actions) = Conversation.handle(step, .text("  Max  "), facts())
        #expect(step == .consent(.portrait, .male, "Max"))
        (step, actions) = Conversation.handle(step, .button(data: "consent:yes", callbackID: "4"), facts())
        #expect(step == .collecting(id))
        #expect(actions.contains(.recordConsent) && actions.contains(.createAvatar(id: id, kind: .portrait, gender: .male, name: "Max")))
    }

    @Test func staleOrForgedButtonsChangeNothing() {
        for step in [ChatStep.idle, .chooseKind, .enterName(.style, .other), .collecting(id)] {
            let (next, actions) = Conversation.handle(step, .button(data: "train:\(UUID().uuidString.lowercased())", callbackID: "x"), facts())
            #expect(next == step && actions == [.answerCallback(textKey: "stale.button")], "\(step)")
        }
        let (next, actions) = Conversation.handle(.idle, .button(data: "gender:female", callbackID: "y"), facts())
        #expect(next == .idle && actions == [.answerCallback(textKey: "stale.button")], "a wizard button out of its step")
    }

    @Test func photosOutsideAWizardAndCancel() {
        let (step, actions) = Conversation.handle(.idle, .photo(fileID: "f", fileUniqueID: "u", fileSize: 1), facts())
        #expect(step == .idle && actions.count == 1)
        if case .reply(let reply) = actions[0] { #expect(reply.key == "photos.not_expected") } else { Issue.record("no reply") }
        let (cancelled, _) = Conversation.handle(.consent(.portrait, .female, "A"), .command("/cancel", argument: ""), facts())
        #expect(cancelled == .idle)
        let (language, languageActions) = Conversation.handle(.idle, .button(data: "lang:ru", callbackID: "z"), facts())
        #expect(language == .idle && languageActions.contains(.setLanguage("ru")))
    }

    @Test func bothLanguagesHaveEveryText() {
        #expect(Catalog.shared.missingTranslations.isEmpty, "\(Catalog.shared.missingTranslations)")
        #expect(Catalog.shared.text("photos.progress.ready", .ru, ["count": "10", "price": "100", "balance": "150", "max": "20"]).contains("10 из 20"))
        #expect(Catalog.Language(languageCode: "ru-RU") == .ru && Catalog.Language(languageCode: "uk") == .en && Catalog.Language(languageCode: nil) == .en)
    }

    /// Placeholders are filled once: a value that looks like a placeholder (a user's avatar
    /// name, say) is shown as typed, and unknown or unclosed braces stay.
    @Test func placeholdersAreFilledOnceAndValuesStayAsTyped() {
        let catalog = Catalog(texts: [.en: ["k": "{name} has {balance} credits {unknown} {", "plain": "no placeholders"], .ru: [:]])
        #expect(catalog.text("k", .en, ["name": "{balance}", "balance": "7"]) == "{balance} has 7 credits {unknown} {")
        #expect(catalog.text("k", .en, ["balance": "{name}", "name": "Ann"]) == "Ann has {name} credits {unknown} {")
        #expect(catalog.text("plain", .ru) == "no placeholders", "falls back to English")
        #expect(catalog.text("missing", .en, ["x": "1"]) == "missing")
        #expect(catalog.text("k", .en, ["name": "Ёлка 🎄", "balance": ""]) == "Ёлка 🎄 has  credits {unknown} {")
    }
}

@Suite struct PresetCatalogueTests {
    @Test func atLeastTwentyPresetsInBothLanguages() {
        let presets = Presets.shared
        #expect(presets.presets.count >= 20 && presets.categories.count >= 4)
        #expect(Set(presets.presets.map(\.id)).count == presets.presets.count, "ids are unique")
        for preset in presets.presets {
            #expect(preset.title["en"]?.isEmpty == false && preset.title["ru"]?.isEmpty == false && preset.prompt.count >= 3, "\(preset.id)")
            #expect("pre:p:\(preset.id)".utf8.count <= 64)
        }
        for category in presets.categories { #expect(category.title["en"] != nil && category.title["ru"] != nil) }
    }
}
