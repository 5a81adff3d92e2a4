import Foundation
import JSON
import Telegram
import Testing

enum Fixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/telegram")
    static func data(_ name: String) throws -> Data { try Data(contentsOf: folder.appendingPathComponent(name)) }
    static func update(_ name: String) throws -> Update { try JSONDecoder().decode(Update.self, from: data(name)) }
}

@Suite struct TelegramTypesTests {
    /// The worker reads updates without Codable: every recorded update reads exactly as the
    /// Codable conformance reads it, and shapes Codable refuses are refused.
    @Test func updatesReadWithoutCodableMatchCodable() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Fixtures.folder.path).filter { $0.hasSuffix(".json") && !$0.hasPrefix("error-") && !$0.hasPrefix("getfile") }
        #expect(names.count >= 12)
        for name in names {
            let data = try Fixtures.data(name)
            #expect(try Update.decode(data) == (try JSONDecoder().decode(Update.self, from: data)), "\(name)")
        }
        let refused = [
            #"{}"#, #"{"update_id":"1"}"#, #"{"update_id":1.5}"#, #"{"update_id":1,"message":{"date":1,"chat":{"id":1,"type":"private"}}}"#,
            #"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1,"type":"private"},"text":7}}"#,
            #"{"update_id":1,"callback_query":{"id":"q","chat_instance":"c"}}"#,
            #"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1,"type":"private"},"photo":[{"file_id":"f"}]}}"#,
            #"[1]"#,
        ]
        for text in refused {
            #expect(throws: (any Error).self, "\(text)") { try Update.decode(Data(text.utf8)) }
            #expect(throws: (any Error).self, "\(text)") { try JSONDecoder().decode(Update.self, from: Data(text.utf8)) }
        }
        let nulls = Data(#"{"update_id":3,"message":{"message_id":1,"date":1,"chat":{"id":1,"type":"private"},"text":null,"from":null}}"#.utf8)
        #expect(try Update.decode(nulls) == (try JSONDecoder().decode(Update.self, from: nulls)))
    }

    @Test func albumItemsShareTheirGroupAndPickTheLargestPhoto() throws {
        let first = try Fixtures.update("album-item-1.json")
        let second = try Fixtures.update("album-item-2.json")
        guard case .message(let a) = first.kind, case .message(let b) = second.kind else { Issue.record("not messages"); return }
        #expect(a.mediaGroupID == "13601567890123456" && a.mediaGroupID == b.mediaGroupID)
        #expect(a.largestPhoto?.fileUniqueID == "AQADq7cxGx-" && a.largestPhoto?.width == 1280)
        #expect(b.largestPhoto?.fileID == "AgACAgIAAxkBAAIBZA-large", "portrait photo: largest by pixels, not by width")
        #expect(a.caption == "me at the beach" && a.from?.languageCode == "en")
        #expect(first.serialKey == "tg:chat:111111111" && first.updateID == 123_456_789)
    }

    @Test func documentPhotoIsADocument() throws {
        guard case .message(let message) = try Fixtures.update("document-photo.json").kind else { Issue.record("not a message"); return }
        #expect(message.photo == nil)
        let document = try #require(message.document)
        #expect(document.fileID == "BQACAgIAAxkBAAIB-doc" && document.fileUniqueID == "AgADZQ-doc")
        #expect(document.fileName == "IMG_0042.JPG" && document.mimeType == "image/jpeg" && document.fileSize == 4_194_304)
    }

    @Test func callbackQueries() throws {
        let update = try Fixtures.update("callback-query.json")
        guard case .callbackQuery(let query) = update.kind else { Issue.record("not a callback"); return }
        #expect(query.data == "train:ok:42" && query.from.id == 111_111_111)
        #expect(query.message?.replyMarkup?.inlineKeyboard.first?.first?.callbackData == "train:ok:42")
        #expect(query.message?.isInaccessible == false)
        #expect(update.chatID == 111_111_111 && update.serialKey == "tg:chat:111111111")
        guard case .callbackQuery(let old) = try Fixtures.update("callback-inaccessible.json").kind else { Issue.record("not a callback"); return }
        #expect(old.message?.isInaccessible == true)
    }

    @Test func unknownFieldsAndKindsAreTolerated() throws {
        let start = try Fixtures.update("start-command.json")
        guard case .message(let message) = start.kind else { Issue.record("not a message"); return }
        #expect(message.text == "/start ref_abc" && message.from?.languageCode == "ru" && message.from?.firstName == "Борис")
        let reaction = try Fixtures.update("message-reaction.json")
        #expect(reaction.kind == .unknown("message_reaction") && reaction.updateID == 123_456_796)
        #expect(reaction.serialKey == nil)
        let bare = try JSONDecoder().decode(Update.self, from: Data(#"{"update_id": 5}"#.utf8))
        #expect(bare.kind == .unknown(""))
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Update.self, from: Data(#"{"message": {}}"#.utf8)) }
    }

    @Test func botBlockedShowsAsKickedMembership() throws {
        let update = try Fixtures.update("my-chat-member-kicked.json")
        guard case .myChatMember(let change) = update.kind else { Issue.record("not my_chat_member"); return }
        #expect(change.newChatMember.status == "kicked" && update.userID == 222_222_222)
    }

    @Test func callbackDataIsLimitedTo64Bytes() throws {
        #expect(try InlineKeyboardButton.callback("ok", data: String(repeating: "a", count: 64)).callbackData?.utf8.count == 64)
        #expect(throws: TelegramError.self) { try InlineKeyboardButton.callback("x", data: String(repeating: "a", count: 65)) }
        #expect(throws: TelegramError.self, "22 Cyrillic letters are 44 bytes, 33 are 66") { try InlineKeyboardButton.callback("x", data: String(repeating: "я", count: 33)) }
        #expect(throws: TelegramError.self) { try InlineKeyboardButton.callback("x", data: "") }
        let keyboard = InlineKeyboardMarkup([[try .callback("Yes", data: "train:ok:42"), .link("Help", url: "https://example.com")]])
        let json = String(decoding: try JSONEncoder().encode(keyboard), as: UTF8.self)
        #expect(json.contains(#""inline_keyboard""#) && json.contains(#""callback_data":"train:ok:42""#))
        // The writer the hot path uses says the same.
        var written = JSONWriter()
        keyboard.write(to: &written)
        #expect(try JSONDecoder().decode(InlineKeyboardMarkup.self, from: Data(written.bytes)) == keyboard)
        #expect(String(decoding: written.bytes, as: UTF8.self) == #"{"inline_keyboard":[[{"text":"Yes","callback_data":"train:ok:42"},{"text":"Help","url":"https://example.com"}]]}"#)
    }
}

@Suite struct TelegramErrorTests {
    func error(_ fixture: String) throws -> TelegramError {
        do {
            _ = try TelegramResponse<Bool>.decode(try Fixtures.data(fixture)).get()
        } catch let error as TelegramError {
            return error
        }
        throw TelegramError(kind: .other, errorCode: 0, description: "no error raised")
    }

    @Test func envelopeErrorsMapToActions() throws {
        let notModified = try error("error-not-modified.json")
        #expect(notModified.kind == .messageNotModified && notModified.isNoOp)
        #expect(try error("error-blocked.json").kind == .blockedByUser)
        let limited = try error("error-429.json")
        #expect(limited.kind == .tooManyRequests(retryAfter: 5) && limited.isTransient)
        #expect(try error("error-migrated.json").kind == .migrated(toChatID: -1_001_234_567_890))
    }

    @Test(arguments: [
        (400, "Bad Request: message to delete not found", TelegramError.Kind.messageToDeleteNotFound),
        (400, "Bad Request: message to edit not found", .messageUnavailable),
        (400, "Bad Request: message can't be deleted for everyone", .messageUnavailable),
        (400, "Bad Request: query is too old and response timeout expired or query ID is invalid", .callbackQueryTooOld),
        (403, "Forbidden: user is deactivated", .blockedByUser),
        (401, "Unauthorized", .unauthorized),
        (409, "Conflict: terminated by other getUpdates request", .conflict),
        (502, "Bad Gateway", .serverError),
        (400, "Bad Request: chat not found", .chatNotFound),
        (400, "Bad Request: BUTTON_DATA_INVALID", .badRequest),
    ])
    func descriptionsMapToKinds(code: Int, description: String, kind: TelegramError.Kind) {
        #expect(TelegramError(errorCode: code, description: description).kind == kind)
    }

    /// The hot calls read envelopes with `JSONValue`: every recorded error maps exactly as the
    /// Codable path maps it, and a body that is no envelope names the HTTP status.
    @Test func envelopesReadWithoutCodableMapTheSame() throws {
        for name in ["error-not-modified.json", "error-blocked.json", "error-429.json", "error-migrated.json"] {
            let viaCodable = try error(name)
            #expect(throws: viaCodable) { try TelegramResponse<JSONValue>.shallowResult(of: try Fixtures.data(name), status: viaCodable.errorCode) }
        }
        let ok = try TelegramResponse<JSONValue>.shallowResult(of: Data(#"{"ok":true,"result":{"message_id":7,"chat":{"id":5}}}"#.utf8), status: 200)
        #expect(ok["message_id"] == .number(7) && ok["chat"] == .null, "only the top of the result is built")
        for body in ["<html>Bad Gateway</html>", #"{"result":true}"#, ""] {
            #expect(throws: TelegramError(errorCode: 502, description: "unreadable Bot API response (HTTP 502)")) {
                try TelegramResponse<JSONValue>.shallowResult(of: Data(body.utf8), status: 502)
            }
        }
    }

    @Test func successfulEnvelopesDecode() throws {
        struct File: Decodable, Sendable { var file_path: String; var file_size: Int }
        let file = try TelegramResponse<File>.decode(try Fixtures.data("getfile-ok.json")).get()
        #expect(file.file_path == "photos/file_12.jpg" && file.file_size == 187_322)
    }
}
