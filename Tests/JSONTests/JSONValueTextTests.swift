import JSON
import Foundation
import Testing
import TestSupport

@Suite struct JSONValueTextTests {
    static let fixtureFolders = ["telegram", "fal"].map { URL(fileURLWithPath: TestServices.repoRoot).appendingPathComponent("Tests/Fixtures/\($0)") }

    /// Every recorded Telegram and FAL payload parses to what `JSONDecoder` makes of it, and
    /// prints as text that parses back to the same value.
    @Test func fixturesParseLikeJSONDecoderAndRoundTrip() throws {
        var checked = 0
        for folder in Self.fixtureFolders {
            for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".json") {
                let bytes = try Data(contentsOf: folder.appendingPathComponent(name))
                let parsed = try JSONValue(parsing: bytes)
                #expect(parsed == (try JSONDecoder().decode(JSONValue.self, from: bytes)), "\(name)")
                #expect((try JSONValue(parsing: parsed.jsonBytes)) == parsed, "\(name)")
                #expect((try JSONDecoder().decode(JSONValue.self, from: Data(parsed.jsonBytes))) == parsed, "\(name): Foundation reads our text too")
                checked += 1
            }
        }
        #expect(checked >= 20, "found the fixtures (\(checked))")
    }

    @Test func stringsNumbersAndEscapes() throws {
        let value = try JSONValue(parsing: Array(#" {"a" : [1, -0.5, 2.5e3, 1E-2, 0, true, false, null], "s": "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 é 😀", "big": 196619188014358660} "#.utf8))
        #expect(value["a"] == .array([.number(1), .number(-0.5), .number(2500), .number(0.01), .number(0), .bool(true), .bool(false), .null]))
        #expect(value["s"] == .string("q\"\\/\u{8}\u{C}\n\r\té😀 é 😀"))
        #expect(value["big"] == .number(Double("196619188014358660")!), "beyond 2^53: the nearest Double, as JSONDecoder gives")
        #expect(String(decoding: JSONValue.string("a\"b\\c\nd\u{1}é").jsonBytes, as: UTF8.self) == #""a\"b\\c\nd\u0001é""#)
        #expect(String(decoding: JSONValue.array([.number(42), .number(-2.5), .number(1e20), .null]).jsonBytes, as: UTF8.self) == "[42,-2.5,1e+20,null]")
        for bad in [#"{"a":1,}"#, "[1,]", "01", "1.", ".5", "-", "+1", "1e", #""\x""#, #""\ud800""#, #""\udc00""#, "\"a\u{1}\"", "tru", "nul", "NaN", "[1 2]", #"{"a" 1}"#, "{1:2}", "", "1 2", "[", #""abc"#] {
            #expect(throws: JSONValue.SyntaxError.self, "\(bad)") { try JSONValue(parsing: Array(bad.utf8)) }
        }
        #expect(throws: JSONValue.SyntaxError.self, "invalid UTF-8") { try JSONValue(parsing: [0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONValue.SyntaxError.self, "nesting beyond the limit") { try JSONValue(parsing: Array(repeating: UInt8(ascii: "["), count: 100_000)) }
        #expect((try JSONValue(parsing: Array((String(repeating: "[", count: 500) + String(repeating: "]", count: 500)).utf8))) != .null)
    }

    /// Random mutations of a valid body: the parser accepts exactly what a strict RFC 8259 parser
    /// (`StrictJSON`, Python's) accepts, and to the same value.
    @Test func acceptsExactlyWellFormedJSON() async throws {
        let seed = Array(#"{"ok":true,"result":{"message_id":1,"date":2,"chat":{"id":-100,"type":"group"},"text":"a \"quoted\" é 😀 \u00e9 \ud83d\ude00","n":[1,2.5e3,-0.25,true,false,null,{}]}}"#.utf8)
        let bodies = StrictJSON.mutations(of: seed, count: 3000)
        let verdicts = try await StrictJSON.pythonVerdicts(bodies)
        var accepted = 0
        for (body, verdict) in zip(bodies, verdicts) {
            let parsed = try? JSONValue(parsing: body)
            guard let verdict else {
                if parsed != nil { Issue.record("accepted what Python refuses: \(String(decoding: body, as: UTF8.self))"); return }
                continue
            }
            accepted += 1
            guard let parsed, let expected = try? JSONValue(parsing: verdict) else {
                Issue.record("refused what Python accepts: \(String(decoding: body, as: UTF8.self))"); return
            }
            #expect(parsed == expected, "\(String(decoding: body, as: UTF8.self))")
        }
        #expect(accepted > 100 && accepted < 2900, "the mutations exercised both sides (\(accepted) accepted)")
    }

    /// A shallow parse builds the same value with the deep containers read as null, and refuses
    /// what the full parse refuses (UTF-8 inside skipped containers aside).
    @Test func shallowParsesKeepTheTopAndCheckTheRest() throws {
        func pruned(_ value: JSONValue, _ depth: Int, _ level: Int = 0) -> JSONValue {
            switch value {
            case .object(let members): level >= depth ? .null : .object(members.mapValues { pruned($0, depth, level + 1) })
            case .array(let values): level >= depth ? .null : .array(values.map { pruned($0, depth, level + 1) })
            default: value
            }
        }
        let seed = Array(#"{"ok":true,"result":{"message_id":1,"date":2,"chat":{"id":-100,"type":"group"},"text":"a \"quoted\" é 😀 \u00e9 \ud83d\ude00","n":[1,2.5e3,-0.25,true,false,null,{}]}}"#.utf8)
        let shallow = try JSONValue(parsing: seed, buildingDepth: 2)
        #expect(shallow["result"]?["message_id"] == .number(1) && shallow["result"]?["chat"] == .null && shallow["ok"] == .bool(true))
        for body in [seed] + StrictJSON.mutations(of: seed, count: 3000) {
            let full = try? JSONValue(parsing: body)
            for depth in 0...3 {
                let partial = try? JSONValue(parsing: body, buildingDepth: depth)
                if let full { #expect(partial == pruned(full, depth), "\(String(decoding: body, as: UTF8.self))") }
                else if String(validating: body, as: UTF8.self) != nil, !String(decoding: body, as: UTF8.self).contains("\\u") {
                    #expect(partial == nil, "accepted at depth \(depth): \(String(decoding: body, as: UTF8.self))")
                }
            }
        }
    }

    /// Typed reads, and optional members read as Codable reads them.
    @Test func typedAccessorsAndOptionalMembers() throws {
        let value = try JSONValue(parsing: Array(#"{"n":42,"f":1.5,"b":true,"s":"x","z":null}"#.utf8))
        #expect(value["n"]?.integerValue == 42 && value["f"]?.integerValue == nil && value["s"]?.integerValue == nil)
        #expect(value["b"]?.boolValue == true && value["n"]?.boolValue == nil)
        #expect(try value.optionalMember("s", \.stringValue) == "x")
        #expect(try value.optionalMember("z", \.stringValue) == nil, "null reads as absent")
        #expect(try value.optionalMember("missing", \.stringValue) == nil)
        let error = #expect(throws: JSONValue.MemberTypeError.self) { try value.optionalMember("n", \.stringValue) }
        #expect(error?.key == "n", "a number where a string belongs")
    }
}
