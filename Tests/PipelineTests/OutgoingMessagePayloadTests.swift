import Foundation
import Pipeline
import Testing

/// The outbox payload is written and read without Codable; it must stay the synthesized
/// conformance's text, both ways, so payloads queued by either build still send.
@Suite struct OutgoingMessagePayloadTests {
    static let messages: [OutgoingMessage] = [
        OutgoingMessage(chatID: 42, text: "hi"),
        OutgoingMessage(chatID: -1_001_234_567_890, text: "Привет \"ты\" \\ ✓\n\t\u{1}", buttons: [[.init("Да", data: "av:ok:1"), .init("No", data: "x")], [], [.init("↩︎", data: "back")]],
                        tag: "progress:7", coalesce: true, answersUpdate: true),
        OutgoingMessage(chatID: 4_503_599_627_370_495, text: "", photos: [.init(bucket: "avatars", key: "1/2/3.jpg", imageID: UUID()), .init(bucket: "b", key: "k", imageID: nil)],
                        answersUpdate: false),
    ]

    @Test(arguments: messages) func writtenPayloadsDecodeWithCodable(_ message: OutgoingMessage) throws {
        #expect(try JSONDecoder().decode(OutgoingMessage.self, from: message.payload) == message)
        #expect(try OutgoingMessage(payload: message.payload) == message)
    }

    @Test(arguments: messages) func codablePayloadsReadWithoutIt(_ message: OutgoingMessage) throws {
        #expect(try OutgoingMessage(payload: JSONEncoder().encode(message)) == message)
    }

    @Test(arguments: [
        "", "[]", #"{"text":"x","buttons":[],"photos":[],"coalesce":false}"#,
        #"{"chatID":1.5,"text":"x","buttons":[],"photos":[],"coalesce":false}"#,
        #"{"chatID":1,"text":"x","buttons":[[{"text":"a"}]],"photos":[],"coalesce":false}"#,
        #"{"chatID":1,"text":"x","buttons":[],"photos":[{"bucket":"b","key":"k","imageID":"not-a-uuid"}],"coalesce":false}"#,
        #"{"chatID":1,"text":"x","buttons":[],"photos":[],"coalesce":false,"tag":7}"#,
    ])
    func malformedPayloadsAreRefused(_ text: String) {
        #expect(throws: OutgoingMessage.PayloadError.self) { try OutgoingMessage(payload: Data(text.utf8)) }
        #expect(throws: (any Error).self) { try JSONDecoder().decode(OutgoingMessage.self, from: Data(text.utf8)) }
    }
}
