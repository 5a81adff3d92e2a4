import Avatars
@testable import Bot
import Foundation
import JSON
import Pipeline
import Testing

/// The chat step and follow-ups are written and read without Codable; both must stay the
/// synthesized conformances' text, both ways, and survive PostgreSQL's jsonb reformatting.
@Suite struct ChatStateTextTests {
    static let id = UUID()
    static let steps: [ChatStep] = [
        .idle, .chooseKind, .chooseGender(.portrait), .enterName(.style, .other), .consent(.portrait, .female, "Анна \"A\" \\ ✓\n"),
        .collecting(id), .renaming(id), .prompt(id), .aspect(id, "a cat, 1:1"), .count(id, "prompt", "9:16"),
    ]

    @Test(arguments: steps) func stepsMatchCodableBothWays(_ step: ChatStep) throws {
        #expect(try JSONDecoder().decode(ChatStep.self, from: Data(step.jsonText.utf8)) == step)
        #expect(ChatStep(jsonText: String(decoding: try JSONEncoder().encode(step), as: UTF8.self)) == step)
        // jsonb prints `{"idle": {}}`, with spaces and its own key order.
        let reformatted = step.jsonText.replacingOccurrences(of: "\":", with: "\": ").replacingOccurrences(of: ",\"", with: ", \"")
        #expect(ChatStep(jsonText: reformatted) == step)
    }

    @Test(arguments: ["", "{}", #"{"idle":{},"chooseKind":{}}"#, #"{"chooseGender":{"_0":"robot"}}"#, #"{"collecting":{"_0":"x"}}"#,
                      #"{"enterName":{"_0":"style"}}"#, #"{"prompt":{"_1":"skipped _0"}}"#, #"{"nonsense":{}}"#])
    func notAStep(_ text: String) {
        #expect(ChatStep(jsonText: text) == nil)
        #expect((try? JSONDecoder().decode(ChatStep.self, from: Data(text.utf8))) == nil)
    }

    @Test func extraMembersAreIgnoredAsCodableIgnoresThem() throws {
        let text = #"{"chooseGender":{"_0":"style","_1":"extra"}}"#
        #expect(ChatStep(jsonText: text) == .chooseGender(.style))
        #expect(try JSONDecoder().decode(ChatStep.self, from: Data(text.utf8)) == .chooseGender(.style))
    }

    static let followUps: [BotHandler.FollowUps] = [
        .init(),
        .init(language: "ru", startTraining: id, cancelTraining: UUID(), generation: .init(id: UUID(), avatarID: id, prompt: "a \"scene\"\n", ratio: "3:4", count: 4),
              removedPhoto: .init(avatarID: id, photoID: UUID()), deletedImages: ["1/a.jpg", "1/b.jpg"], answerCallback: true, callbackText: "Готово ✓"),
        .init(reply: OutgoingMessage(chatID: 42, text: "Hi <b>\"you\"</b>\n", buttons: [[.init("Help", data: "help")], [.init("Мои аватары", data: "av:list:0")]], answersUpdate: true)),
    ]

    @Test(arguments: 0..<3) func followUpsMatchCodableBothWays(_ index: Int) throws {
        let followUps = Self.followUps[index]
        let decoded = try JSONDecoder().decode(BotHandler.FollowUps.self, from: Data(followUps.jsonText.utf8))
        #expect(decoded.jsonText == followUps.jsonText)
        let read = try #require(BotHandler.FollowUps(jsonText: String(decoding: try JSONEncoder().encode(followUps), as: UTF8.self)))
        #expect(read.jsonText == followUps.jsonText)
        #expect(read.language == followUps.language && read.startTraining == followUps.startTraining && read.generation?.count == followUps.generation?.count
                && read.removedPhoto?.photoID == followUps.removedPhoto?.photoID && read.deletedImages == followUps.deletedImages && read.callbackText == followUps.callbackText
                && read.reply == followUps.reply && decoded.reply == followUps.reply)
    }

    @Test func notFollowUps() {
        #expect(BotHandler.FollowUps(jsonText: #"{"language":"en","deletedImages":[],"answerCallback":false,"startTraining":"nope"}"#) == nil)
        #expect(BotHandler.FollowUps(jsonText: #"{"language":"en","deletedImages":[1],"answerCallback":false}"#) == nil)
        #expect(BotHandler.FollowUps(jsonText: #"{"deletedImages":[],"answerCallback":false}"#) == nil)
        #expect(BotHandler.FollowUps(jsonText: #"{"language":"en","deletedImages":[],"answerCallback":false,"callbackText":null}"#) != nil)
        // A reply that is not a message fails the whole, as with Codable; an absent one is nil.
        #expect(BotHandler.FollowUps(jsonText: #"{"language":"en","deletedImages":[],"answerCallback":false,"reply":{"chatID":"x"}}"#) == nil)
        #expect(BotHandler.FollowUps(jsonText: #"{"language":"en","deletedImages":[],"answerCallback":false,"reply":null}"#)?.reply == nil)
    }
}
