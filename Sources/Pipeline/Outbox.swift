public import Foundation
public import JobQueue
public import JSON
import Logging
public import Postgres
public import RateLimit
public import ObjectStorage
import Telegram

/// A message for a chat, sent by its own `telegram.send` job. Handlers enqueue it in the same
/// transaction as the change it reports, so the message exists exactly when the change does;
/// the send is paced by the shared rate limiter and retried on its own, never re-running the
/// handler that asked for it.
public struct OutgoingMessage: Codable, Sendable, Equatable {
    public struct Button: Codable, Sendable, Equatable {
        public var text: String
        public var data: String
        public init(_ text: String, data: String) { self.text = text; self.data = data }
    }

    /// A stored image to send (from our object storage, uploaded to Telegram).
    public struct Photo: Codable, Sendable, Equatable {
        public var bucket: String
        public var key: String
        /// The `generated_images` row that remembers Telegram's `file_id` for re-sending.
        public var imageID: UUID?
        public init(bucket: String, key: String, imageID: UUID?) { self.bucket = bucket; self.key = key; self.imageID = imageID }
    }

    public var chatID: Int64
    /// The text, or the caption when there are photos.
    public var text: String
    public var buttons: [[Button]]
    /// One photo (with caption and buttons) or an album of 2–10 (caption on the first; albums
    /// take no buttons, so send those in a message of their own).
    public var photos: [Photo]
    /// A message kept up to date: the first send is remembered under this tag, later ones edit it.
    public var tag: String?
    /// With a tag: skip this one when a newer message for the same tag is already queued
    /// (an album's 20 progress updates become one or two edits).
    public var coalesce: Bool
    /// The bot's answer to something the user has just sent: they can hardly have blocked the
    /// bot since, so the send skips the blocked check (a 403 still marks them, as for any send).
    /// Optional so that messages queued before this field existed still decode.
    public var answersUpdate: Bool?

    public init(chatID: Int64, text: String, buttons: [[Button]] = [], photos: [Photo] = [], tag: String? = nil, coalesce: Bool = false, answersUpdate: Bool? = nil) {
        self.chatID = chatID
        self.text = text
        self.buttons = buttons
        self.photos = photos
        self.tag = tag
        self.coalesce = coalesce
        self.answersUpdate = answersUpdate
    }

    /// Sent by one plain sendMessage: no photos, no tag to edit. The only kind `Outbox.sendAdmitted`
    /// sends, so the only kind a handler may admit in advance.
    public var isPlainText: Bool { photos.isEmpty && tag == nil }
}

extension OutgoingMessage {
    /// The inline keyboard of `buttons`, if any.
    var replyMarkup: InlineKeyboardMarkup? {
        get throws {
            buttons.isEmpty ? nil : InlineKeyboardMarkup(try buttons.map { row in try row.map { try InlineKeyboardButton.callback($0.text, data: $0.data) } })
        }
    }
}

/// The queued payload, written and read without Codable: every reply is encoded once and decoded
/// once, and `JSONEncoder`/`JSONDecoder` made that a tenth of the worker's CPU. The text is what
/// the synthesized `Codable` conformance writes and reads (tested both ways), so payloads queued
/// by either still decode.
extension OutgoingMessage {
    public var payload: Data {
        var json = JSONWriter()
        write(to: &json)
        return Data(json.bytes)
    }

    /// Writes the payload's object into a larger document (a chat's follow-ups keep a reply).
    public func write(to json: inout JSONWriter) {
        json.object { json in
            json.member("chatID", chatID)
            json.member("text", text)
            json.key("buttons")
            json.array(buttons) { json, row in
                json.array(row) { json, button in json.object { $0.member("text", button.text); $0.member("data", button.data) } }
            }
            json.key("photos")
            json.array(photos) { json, photo in
                json.object { json in
                    json.member("bucket", photo.bucket)
                    json.member("key", photo.key)
                    json.member("imageID", photo.imageID?.uuidString)
                }
            }
            json.member("tag", tag)
            json.member("coalesce", coalesce)
            json.member("answersUpdate", answersUpdate)
        }
    }

    public init(payload: Data) throws(OutgoingMessage.PayloadError) {
        guard let json = try? JSONValue(parsing: payload) else { throw PayloadError() }
        try self.init(json: json)
    }

    /// The message from the payload's parsed object.
    public init(json: JSONValue) throws(OutgoingMessage.PayloadError) {
        guard let chatID = json["chatID"]?.integerValue,
              let text = json["text"]?.stringValue, case .array(let rows)? = json["buttons"], case .array(let photos)? = json["photos"],
              let coalesce = json["coalesce"]?.boolValue
        else { throw PayloadError() }
        let tag: String?, answersUpdate: Bool?
        do {
            tag = try json.optionalMember("tag", \.stringValue)
            answersUpdate = try json.optionalMember("answersUpdate", \.boolValue)
        } catch { throw PayloadError() }
        // Any element that does not read fails the whole payload, as with Codable.
        let buttons = rows.compactMap { row -> [Button]? in
            guard case .array(let row) = row else { return nil }
            let buttons = row.compactMap { button in button["text"]?.stringValue.flatMap { text in button["data"]?.stringValue.map { Button(text, data: $0) } } }
            return buttons.count == row.count ? buttons : nil
        }
        let pictures = photos.compactMap { photo -> Photo? in
            guard let bucket = photo["bucket"]?.stringValue, let key = photo["key"]?.stringValue else { return nil }
            switch photo["imageID"] {
            case nil, .null?: return Photo(bucket: bucket, key: key, imageID: nil)
            case .string(let id)?: return UUID(uuidString: id).map { Photo(bucket: bucket, key: key, imageID: $0) }
            default: return nil
            }
        }
        guard buttons.count == rows.count, pictures.count == photos.count else { throw PayloadError() }
        self.init(chatID: chatID, text: text, buttons: buttons, photos: pictures, tag: tag, coalesce: coalesce, answersUpdate: answersUpdate)
    }

    /// A payload that is not a queued message.
    public struct PayloadError: Error, CustomStringConvertible {
        public var description: String { "telegram.send payload is not a message" }
    }
}

public enum Outbox {
    public static let kind = "telegram.send"

    /// The job; `uniqueKey` names the event (one message per event however often it is reported).
    /// A chat's messages share a serial lane of their own (`tg:send:<chat>`), so they go out in
    /// the order they were queued; it is not the updates' lane, so a reply can leave as soon as
    /// the update's transaction commits instead of waiting for that job's acknowledgement.
    public static func job(_ message: OutgoingMessage, uniqueKey: String) -> JobRequest {
        JobRequest(kind: kind, payload: message.payload, maxAttempts: 30, uniqueKey: "msg:" + uniqueKey, serialKey: lane(message.chatID))
    }

    static func lane(_ chatID: Int64) -> String { "tg:send:\(chatID)" }

    /// Enqueues `message` on `connection` (inside the caller's transaction, going out with its
    /// next statement or COMMIT rather than costing a round trip of its own).
    public static func send(_ message: OutgoingMessage, uniqueKey: String, on connection: PostgresConnection, queue: JobQueue) async throws {
        try await queue.enqueueWithNext(job(message, uniqueKey: uniqueKey), on: connection)
    }

    /// Sends queued messages. A user who blocked the bot is marked and not written to again.
    public static func handler(telegram: RateLimitedTelegram, database: PostgresClient, storage: ObjectStorage, scratchDirectory: String) -> JobHandler {
        JobHandler(kind: kind, timeout: .seconds(30)) { job, logger in
            let message = try OutgoingMessage(payload: job.payload)
            if message.answersUpdate != true {
                let blocked = try await database.query("SELECT blocked_at IS NOT NULL FROM users WHERE id = \(message.chatID)").first?.decode(Bool.self, at: 0) ?? false
                if blocked { return }
            }
            let markup = try message.replyMarkup
            if let tag = message.tag, message.coalesce {
                let newer = try await database.query("""
                    SELECT 1 FROM jobs WHERE kind = \(kind) AND state = 'available' AND serial_key = \(lane(message.chatID)) AND id > \(job.id)
                      AND payload->>'tag' = \(tag) LIMIT 1
                    """).count > 0
                if newer { return }  // a fresher version of this message is on its way
            }
            do {
                if message.isPlainText {
                    try await sendText(message, markup: markup, admitted: false, telegram: telegram)
                } else if let tag = message.tag, message.photos.isEmpty {
                    try await sendOrEdit(message, tag: tag, markup: markup, telegram: telegram, database: database)
                } else {
                    try await sendPhotos(message, markup: markup, telegram: telegram, database: database, storage: storage, scratchDirectory: scratchDirectory)
                }
            } catch let error as TelegramError where error.isUnreachableChat {
                // Nothing sent there can arrive: mark a user's chat and drop the message (not a dead
                // job: no operator can fix it). Private chat ids are user ids.
                try await database.query("UPDATE users SET blocked_at = now() WHERE id = \(message.chatID)")
                logger.info("chat unreachable (blocked or not found); message dropped", metadata: ["chat": "\(message.chatID)", "telegram.error": "\(error.kind)"])
            } catch let error as TelegramError where !error.isTransient {
                throw JobFailure.permanent("Telegram refused the message: \(error.kind)")
            }
        }
    }

    /// Sends a plain-text reply now, without a job of its own: its handler's transaction admitted
    /// it (`JobQueue.enqueueUnlessAdmitted` with the rate limiter) and keeps it to queue again
    /// should the handler die first. A send that fails for any reason is queued as the job it
    /// would have been, under `uniqueKey`, at the time a 429 names: the outbox then retries it
    /// with everything it knows (backoff, blocked users, permanent refusals), and the key keeps
    /// a later re-queue by the handler from sending it twice.
    public static func sendAdmitted(_ message: OutgoingMessage, uniqueKey: String, telegram: RateLimitedTelegram, queue: JobQueue) async throws {
        precondition(message.isPlainText, "only a plain sendMessage can be admitted in advance")
        do {
            try await sendText(message, markup: try message.replyMarkup, admitted: true, telegram: telegram)
        } catch {
            var retry = job(message, uniqueKey: uniqueKey)
            if case JobFailure.retryAt(let date, _) = error { retry.runAt = date }
            try await queue.enqueue(retry)
        }
    }

    /// One sendMessage of a plain-text message, paced unless `admitted` (its token already taken).
    static func sendText(_ message: OutgoingMessage, markup: InlineKeyboardMarkup?, admitted: Bool, telegram: RateLimitedTelegram) async throws {
        _ = try await telegram.send(toChat: message.chatID, admitted: admitted) {
            try await $0.sendMessage(chatID: message.chatID, text: message.text, replyMarkup: markup)
        }
    }

    /// Edits the message remembered under `tag`, or sends it and remembers it.
    static func sendOrEdit(_ message: OutgoingMessage, tag: String, markup: InlineKeyboardMarkup?, telegram: RateLimitedTelegram, database: PostgresClient) async throws {
        if let id = try await database.query("SELECT message_id FROM bot_messages WHERE chat_id = \(message.chatID) AND tag = \(tag)").first?.decode(Int64.self, at: 0) {
            do {
                try await telegram.send(toChat: message.chatID) { try await $0.editMessageText(chatID: message.chatID, messageID: id, text: message.text, replyMarkup: markup) }
                return
            } catch let error as TelegramError where error.kind == .messageUnavailable || error.kind == .badRequest {
                // Deleted by the user or too old to edit: send a fresh one below.
            }
        }
        let sent = try await telegram.send(toChat: message.chatID) { try await $0.sendMessage(chatID: message.chatID, text: message.text, replyMarkup: markup) }
        try await database.query("""
            INSERT INTO bot_messages (chat_id, tag, message_id) VALUES (\(message.chatID), \(tag), \(sent.messageID))
            ON CONFLICT (chat_id, tag) DO UPDATE SET message_id = excluded.message_id, updated_at = now()
            """)
    }

    /// Downloads the photos from storage and uploads them to the chat; remembers their file ids.
    static func sendPhotos(_ message: OutgoingMessage, markup: InlineKeyboardMarkup?, telegram: RateLimitedTelegram, database: PostgresClient, storage: ObjectStorage, scratchDirectory: String) async throws {
        let folder = scratchDirectory + "/aisha-send-\(UUID().uuidString.lowercased())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var paths: [String] = []
        for (index, photo) in message.photos.enumerated() {
            let path = folder + "/\(index).jpg"
            try await storage.get(bucket: photo.bucket, key: photo.key, toFile: path)
            paths.append(path)
        }
        let sent: [Message]
        if paths.count == 1 {
            let path = paths[0]
            sent = [try await telegram.send(toChat: message.chatID) { try await $0.sendPhoto(chatID: message.chatID, photo: .upload(path: path, filename: "image.jpg"), caption: message.text, replyMarkup: markup) }]
        } else {
            let album = paths.enumerated().map { TelegramClient.AlbumPhoto(.upload(path: $1, filename: "image-\($0 + 1).jpg"), caption: $0 == 0 ? message.text : nil) }
            sent = try await telegram.send(toChat: message.chatID) { try await $0.sendMediaGroup(chatID: message.chatID, photos: album) }
        }
        for (photo, sentMessage) in zip(message.photos, sent) {
            guard let imageID = photo.imageID, let fileID = sentMessage.largestPhoto?.fileID else { continue }
            try await database.query("UPDATE generated_images SET telegram_file_id = \(fileID) WHERE id = \(imageID)")
        }
    }
}
