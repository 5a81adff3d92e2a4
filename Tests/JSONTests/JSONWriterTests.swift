import Foundation
import JSON
import Testing

@Suite struct JSONWriterTests {
    @Test func writesMembersInOrderAndLeavesOutNils() {
        var json = JSONWriter()
        json.object { json in
            json.member("chat_id", Int64(-1_001_234_567_890))
            json.member("text", "hi")
            json.member("parse_mode", nil as String?)
            json.member("show_alert", true)
            json.key("rows")
            json.array([[1, 2], [], [3]]) { json, row in json.array(row) { json, value in json.int(Int64(value)) } }
            json.key("empty")
            json.object { _ in }
            json.key("nothing")
            json.null()
        }
        #expect(String(decoding: json.bytes, as: UTF8.self) == #"{"chat_id":-1001234567890,"text":"hi","show_alert":true,"rows":[[1,2],[],[3]],"empty":{},"nothing":null}"#)
    }

    /// Whatever a user types must come back byte for byte through `JSONDecoder` and `JSONValue`.
    @Test(arguments: ["", "plain", "quote \" backslash \\ slash /", "lines\n\r\ttab", "controls \u{0}\u{1}\u{1F}\u{7F}", "Привет, мир ✓ 👩‍👩‍👧", "\u{2028}\u{2029}"])
    func stringsRoundTrip(_ text: String) throws {
        var json = JSONWriter()
        json.object { $0.member("text", text) }
        struct Text: Decodable { var text: String }
        #expect(try JSONDecoder().decode(Text.self, from: Data(json.bytes)).text == text)
        #expect(try JSONValue(parsing: json.bytes)["text"]?.stringValue == text)
    }
}
