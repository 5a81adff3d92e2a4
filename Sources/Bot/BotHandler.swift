import Avatars
import FAL
import Foundation
public import JobQueue
import Logging
import Messages
public import Pipeline
import Postgres
import RateLimit
import ObjectStorage
import Signing
import Telegram

/// `telegram.update`: decodes the update, loads the chat's step and the facts, runs the pure
/// `Conversation`, and applies its actions with the new step in one transaction. Replies go
/// through the outbox in that transaction, so a retried job never answers twice and a crash
/// never leaves a reply without its state (or the reverse). The first reply, when the rate
/// limiter admits it in that transaction, gets no job at all: it is sent as soon as the
/// transaction commits (`JobQueue.enqueueUnlessAdmitted`, `Outbox.sendAdmitted`), and kept in
/// the chat's follow-ups meanwhile, so that should the worker die first, the update's rescued
/// job queues it instead.
public enum BotHandler {
    public static let kind = "telegram.update"

    /// The handler; `rateLimited` gives the limits a reply is admitted under (the outbox's own).
    public static func handler(_ context: PipelineContext, rateLimited: RateLimitedTelegramFactory) -> JobHandler {
        let replies = rateLimited.make(context.telegram, context.database)
        return JobHandler(kind: kind, timeout: .seconds(60)) { job, logger in
            guard let update = try? Update.decode(job.payload) else {
                logger.notice("telegram update with a shape we cannot read; ignored", metadata: ["job": "\(job.id)"])
                return
            }
            try await handle(update, updateKey: "\(update.updateID)", context: context, replies: replies, logger: logger)
        }
    }

    /// The event an update carries, with who sent it and where; nil for kinds the bot ignores.
    static func event(_ update: Update) -> (event: BotEvent, user: User, chatID: Int64, callbackID: String?)? {
        switch update.kind {
        case .message(let message):
            guard let user = message.from, message.chat.id > 0 else { return nil }  // private chats only
            if let text = message.text {
                if text.hasPrefix("/") {
                    let parts = text.split(separator: " ", maxSplits: 1)
                    let command = parts[0].split(separator: "@").first.map(String.init) ?? ""
                    return (.command(command.lowercased(), argument: parts.count > 1 ? String(parts[1]) : ""), user, message.chat.id, nil)
                }
                return (.text(text), user, message.chat.id, nil)
            }
            if let photo = message.largestPhoto { return (.photo(fileID: photo.fileID, fileUniqueID: photo.fileUniqueID, fileSize: photo.fileSize), user, message.chat.id, nil) }
            if let document = message.document {
                let name = document.fileName?.lowercased() ?? ""
                let looksLikeImage = document.mimeType?.hasPrefix("image/") == true || [".jpg", ".jpeg", ".png", ".webp"].contains { name.hasSuffix($0) }
                // The ingest checks the bytes anyway; this only routes obvious non-images away.
                return (looksLikeImage ? .photo(fileID: document.fileID, fileUniqueID: document.fileUniqueID, fileSize: document.fileSize) : .otherFile, user, message.chat.id, nil)
            }
            return (.text(""), user, message.chat.id, nil)
        case .callbackQuery(let query):
            guard let chat = query.message?.chat.id, chat > 0 else { return nil }
            return (.button(data: query.data ?? "", callbackID: query.id), query.from, chat, query.id)
        default:
            return nil
        }
    }

    static func handle(
        _ update: Update, updateKey: String, context: PipelineContext, replies: RateLimitedTelegram, logger: Logger
    ) async throws {
        if case .myChatMember(let member) = update.kind {
            // Blocked (kicked) or unblocked: stop or resume messaging.
            let blocked = member.newChatMember.status == "kicked"
            try await context.database.query("UPDATE users SET blocked_at = \(blocked ? Date() : nil) WHERE id = \(member.from.id)")
            return
        }
        guard let (event, user, chatID, callbackID) = event(update) else { return }
        let settings = context.settings
        let language = Catalog.Language(languageCode: user.languageCode)
        let (followUps, isRerun, admittedReply) = try await context.database.withTransaction { tx -> (FollowUps, Bool, OutgoingMessage?) in
            // Find (or register) the user, with their balance and language, and lock the chat's
            // state: one statement (each costs its own start-up on both sides), sent with the BEGIN.
            // The insert runs only for a user not found: an INSERT … ON CONFLICT DO NOTHING that
            // meets its row still checks the table's constraints and probes for the conflict.
            guard let loaded = try await tx.query("""
                WITH existing AS (
                    SELECT balance, language FROM users WHERE id = \(user.id)
                ), inserted AS (
                    INSERT INTO users (id, first_name, language) SELECT \(user.id), \(user.firstName), \(language.rawValue)
                    WHERE NOT EXISTS (SELECT 1 FROM existing)
                    ON CONFLICT (id) DO NOTHING RETURNING balance, language
                ), account AS (
                    SELECT false AS new, balance, language FROM existing
                    UNION ALL
                    SELECT true, balance, language FROM inserted
                ), step AS (
                    SELECT state, last_update, follow_ups FROM chat_state WHERE chat_id = \(chatID) FOR UPDATE
                )
                SELECT account.new, account.balance, account.language, step.state::text, step.last_update, step.follow_ups::text
                FROM account LEFT JOIN step ON true
                """).first else {
                // Registered by a concurrent transaction since this one's snapshot: the retry finds them.
                throw JobFailure.retryAt(Date(), reason: "user \(user.id) registered concurrently")
            }
            let (isNew, storedBalance, userLanguageCode) = try loaded.decode(Bool.self, Int.self, String.self)
            let (storedStep, lastUpdate, savedFollowUps) = (try loaded.decode(String?.self, at: 3), try loaded.decode(String?.self, at: 4), try loaded.decode(String?.self, at: 5))
            var balance = storedBalance
            if isNew, settings.welcomeCredits > 0,
               case .applied(let after) = try await CreditLedger.move(userID: user.id, amount: settings.welcomeCredits, reference: "welcome:\(user.id)", reason: "welcome", on: tx) {
                balance = after
            }
            if lastUpdate == updateKey, let saved = savedFollowUps.flatMap(FollowUps.init(jsonText:)) {
                // This update was applied and its worker died before the end: only its follow-ups
                // may be left. Handling it again would meet the new step and call its button stale.
                return (saved, true, nil)
            }
            let step = storedStep.flatMap(ChatStep.init(jsonText:)) ?? .idle
            var collecting: Avatar?
            var photos: [UUID] = []
            if case .collecting(let id) = step {
                collecting = try await tx.query("SELECT \(Avatar.columns) FROM avatars WHERE id = \(id) AND user_id = \(user.id)").first.map(Avatar.init(row:))
                if case .button(let data, _) = event, data.hasPrefix("ph:"), collecting != nil {
                    photos = try await tx.query("SELECT id FROM avatar_photos WHERE avatar_id = \(id) ORDER BY created_at, id").map { try $0.decode(UUID.self, at: 0) }
                }
            }
            var facts = BotFacts(
                isNewUser: isNew, balance: balance, trainingPrice: settings.trainingPrice,
                minimumPhotos: settings.minimumPhotos, maximumPhotos: settings.maximumPhotos, collecting: collecting, newAvatarID: Self.stableID(updateKey)
            )
            facts.imagePrice = settings.imagePrice
            facts.language = userLanguageCode
            facts.photos = photos
            // The rest only for the screens that use it: every statement is latency on the reply path.
            switch event {
            case .command("/balance", _), .button("bal", _):
                facts.history = try await Self.history(userID: user.id, language: Catalog.Language(languageCode: userLanguageCode), on: tx)
            case .command("/gallery", _), .button("img:list", _):
                facts.gallery = try await tx.query("""
                    SELECT g.id, g.prompt, count(i.id)::int, coalesce(bool_or(i.favourite), false) FROM generations g JOIN generated_images i ON i.generation_id = g.id
                    WHERE g.user_id = \(user.id) AND g.status = 'completed' GROUP BY g.id ORDER BY g.created_at DESC LIMIT 50
                    """).map { (try $0.decode(UUID.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(Int.self, at: 2), try $0.decode(Bool.self, at: 3)) }
            case .command("/avatars", _), .command("/generate", _):
                facts.avatars = try await tx.query("SELECT \(Avatar.columns) FROM avatars WHERE user_id = \(user.id) ORDER BY created_at DESC LIMIT 100").map(Avatar.init(row:))
            case .button(let data, _):
                if data.hasPrefix("av:list:") {
                    facts.avatars = try await tx.query("SELECT \(Avatar.columns) FROM avatars WHERE user_id = \(user.id) ORDER BY created_at DESC LIMIT 100").map(Avatar.init(row:))
                }
                // A button naming an avatar or a generation: load it only if it is the presser's own.
                if let id = data.split(separator: ":").last.flatMap({ UUID(uuidString: String($0)) }) {
                    if data.hasPrefix("gen:") && !data.hasPrefix("gen:av:") {
                        if let row = try await tx.query("SELECT avatar_id, prompt, aspect_ratio, image_count FROM generations WHERE id = \(id) AND user_id = \(user.id)").first,
                           let avatarID = try row.decode(UUID?.self, at: 0) {
                            facts.targetGeneration = (avatarID, try row.decode(String.self, at: 1), try row.decode(String.self, at: 2), try row.decode(Int.self, at: 3))
                        }
                    } else {
                        facts.target = try await tx.query("SELECT \(Avatar.columns) FROM avatars WHERE id = \(id) AND user_id = \(user.id)").first.map(Avatar.init(row:))
                    }
                }
            default:
                break
            }
            let (next, actions) = Conversation.handle(step, event, facts)
            var userLanguage = Catalog.Language(languageCode: userLanguageCode)
            var followUps = FollowUps()
            // Messages go out with the COMMIT, in order, after the rest of the transaction's writes.
            var outgoing: [(job: JobRequest, message: OutgoingMessage)] = []
            func send(_ message: OutgoingMessage) {
                let job = Outbox.job(message, uniqueKey: "update:\(updateKey):\(outgoing.count + 1)")
                outgoing.append((job, message))
            }
            for action in actions {
                switch action {
                case .reply(let reply):
                    send(render(reply, chatID: chatID, language: userLanguage))
                case .answerCallback(let key):
                    followUps.answerCallback = true
                    followUps.callbackText = key.map { Catalog.shared.text($0, userLanguage) }
                case .createAvatar(let id, let kind, let gender, let name):
                    _ = try await AvatarStore.createAvatar(id: id, userID: user.id, name: name, kind: kind, gender: gender, on: tx)
                case .recordConsent:
                    try await tx.query("UPDATE users SET consented_at = coalesce(consented_at, now()) WHERE id = \(user.id)")
                case .ingestPhoto(let avatarID, let fileID, let fileUniqueID, let size):
                    try await context.queue.enqueue(try PhotoIngest.job(.init(userID: user.id, avatarID: avatarID, fileID: fileID, fileUniqueID: fileUniqueID, fileSize: size)), on: tx)
                case .startTraining(let avatarID):
                    followUps.startTraining = avatarID
                case .setMain(let avatarID):
                    try await tx.query("UPDATE avatars SET is_main = false WHERE user_id = \(user.id) AND is_main AND id <> \(avatarID)")
                    try await tx.query("UPDATE avatars SET is_main = true WHERE id = \(avatarID) AND user_id = \(user.id) AND status = 'completed'")
                case .rename(let avatarID, let name):
                    try await tx.query("UPDATE avatars SET name = \(name) WHERE id = \(avatarID) AND user_id = \(user.id)")
                case .deleteAvatar(let avatarID):
                    try await context.queue.enqueue(try Purge.avatarJob(userID: user.id, avatarID: avatarID), on: tx)
                case .removePhoto(let avatarID, let photoID):
                    followUps.removedPhoto = .init(avatarID: avatarID, photoID: photoID)
                case .toggleFavourite(let id):
                    try await tx.query("UPDATE generated_images SET favourite = NOT favourite WHERE generation_id = \(id) AND user_id = \(user.id)")
                case .resendImages(let id):
                    let keys = try await tx.query("SELECT id, object_key FROM generated_images WHERE generation_id = \(id) AND user_id = \(user.id) ORDER BY position").map {
                        OutgoingMessage.Photo(bucket: settings.generatedBucket, key: try $0.decode(String.self, at: 1), imageID: try $0.decode(UUID.self, at: 0))
                    }
                    if !keys.isEmpty { send(OutgoingMessage(chatID: chatID, text: "", photos: keys)) }
                case .deleteImages(let id):
                    followUps.deletedImages = try await tx.query("DELETE FROM generated_images WHERE generation_id = \(id) AND user_id = \(user.id) RETURNING object_key").map { try $0.decode(String.self, at: 0) }
                case .deleteMe:
                    try await context.queue.enqueue(try Purge.userJob(userID: user.id), on: tx)
                case .cancelTraining(let avatarID):
                    followUps.cancelTraining = avatarID
                case .requestGeneration(let id, let avatarID, let prompt, let ratio, let count):
                    followUps.generation = .init(id: id, avatarID: avatarID, prompt: prompt, ratio: ratio, count: count)
                case .setLanguage(let code):
                    try await tx.query("UPDATE users SET language = \(code) WHERE id = \(user.id)")
                    userLanguage = Catalog.Language(languageCode: code)
                }
            }
            followUps.language = userLanguage.rawValue
            // The first message, if it is plain text, is sent right after the COMMIT when the rate
            // limiter admits it, with no job of its own; it is kept here until then (see `FollowUps`).
            let direct = outgoing.first?.message.isPlainText == true
            if direct { followUps.reply = outgoing[0].message }
            let encoded = next.jsonText
            let pending = followUps.jsonText
            // The row, when there is one, is locked by this transaction: a plain UPDATE (no conflict probe).
            let saveStep: PostgresQuery = storedStep != nil ? """
                UPDATE chat_state SET state = \(encoded)::jsonb, last_update = \(updateKey), follow_ups = \(pending)::jsonb, updated_at = now() WHERE chat_id = \(chatID)
                """ : """
                INSERT INTO chat_state (chat_id, user_id, state, last_update, follow_ups) VALUES (\(chatID), \(user.id), \(encoded)::jsonb, \(updateKey), \(pending)::jsonb)
                ON CONFLICT (chat_id) DO UPDATE SET state = excluded.state, last_update = excluded.last_update, follow_ups = excluded.follow_ups, updated_at = now()
                """
            // Refused or behind an earlier message of the chat, the first message is queued like the rest.
            let inserts = outgoing.enumerated().map { index, message in
                index == 0 && direct
                    ? JobQueue.enqueueUnlessAdmitted(message.job, admission: RateLimiter.acquisition(replies.limits(chatID)))
                    : JobQueue.enqueueStatement(message.job)
            }
            let committed = try await tx.commit(after: [saveStep] + inserts)
            let admitted = try direct && JobQueue.admitted(committed[1])  // [0] is the step
            return (followUps, false, admitted ? outgoing[0].message : nil)
        }
        // The reply first: it is what the user waits for. Then the button's answer, which stops its
        // spinner; it does not depend on the follow-ups, which can take seconds (a training's start).
        let replyKey = "update:\(updateKey):1"
        if let admittedReply {
            CrashPoints.hit("bot:before-reply")
            try await Outbox.sendAdmitted(admittedReply, uniqueKey: replyKey, telegram: replies, queue: context.queue)
        } else if isRerun, let reply = followUps.reply {
            // This update's first run committed and died, perhaps before its reply left: queue it.
            // Under the same key, so a reply that was queued then is not queued twice.
            try await context.queue.enqueue(Outbox.job(reply, uniqueKey: replyKey))
        }
        if let callbackID, followUps.answerCallback {
            // Best effort: Telegram forgets queries after ~15 s, and a late answer changes nothing.
            try? await context.telegram.answerCallbackQuery(id: callbackID, text: followUps.callbackText)
        }
        let replyLanguage = Catalog.Language(languageCode: followUps.language)
        if followUps.startTraining != nil || followUps.generation != nil { CrashPoints.hit("bot:before-follow-ups") }

        if let avatarID = followUps.startTraining {
            // Its own transaction: charge + status + job (AvatarStore.startTraining).
            let outcome = try await context.store.startTraining(avatarID: avatarID, userID: user.id, settings: settings)
            let reply: Reply = switch outcome {
            case .started(_, let balance): Reply("training.started.now", ["balance": "\(balance)"])
            case .alreadyTraining where isRerun:
                // The first run started it and died before saying so.
                Reply("training.started.now", ["balance": "\(try await context.database.withConnection { try await CreditLedger.balance(userID: user.id, on: $0) })"])
            case .alreadyTraining: Reply("training.already")
            case .insufficientCredits(let price, let balance): Reply("train.insufficient", ["price": "\(price)", "balance": "\(balance)", "missing": "\(price - balance)"])
            case .tooFewPhotos(let have, let need): Reply("train.too_few", ["count": "\(have)", "min": "\(need)"])
            case .notReady, .notFound: Reply("stale.button")
            }
            try await context.database.withConnection { connection in
                try await Outbox.send(render(reply, chatID: chatID, language: replyLanguage), uniqueKey: "update:\(updateKey):train", on: connection, queue: context.queue)
            }
        }
        if let removal = followUps.removedPhoto,
           let key = try await context.store.removePhoto(avatarID: removal.avatarID, photoID: removal.photoID, userID: user.id, settings: settings) {
            try? await context.storage.delete(bucket: settings.photoBucket, key: key)  // a leftover would be found by the avatar's purge
        }
        if !followUps.deletedImages.isEmpty { _ = try? await context.storage.delete(bucket: settings.generatedBucket, keys: followUps.deletedImages) }
        if let avatarID = followUps.cancelTraining {
            try await cancel(avatarID, userID: user.id, chatID: chatID, updateKey: updateKey, context: context)
        }
        if let request = followUps.generation {
            // The generation id comes from the update id: a redelivered update is the same request.
            let outcome = try await GenerationStore(database: context.database).request(
                id: request.id, userID: user.id, avatarID: request.avatarID, chatID: chatID, prompt: request.prompt,
                aspectRatio: request.ratio, count: request.count, settings: settings)
            let reply: Reply = switch outcome {
            case .started(_, let balance): Reply("generate.started", ["count": "\(request.count)", "balance": "\(balance)"])
            case .insufficientCredits(let price, let balance): Reply("generate.insufficient", ["price": "\(price)", "balance": "\(balance)", "missing": "\(price - balance)"])
            case .avatarNotReady, .invalid: Reply("stale.button")
            }
            try await context.database.withConnection { connection in
                try await Outbox.send(render(reply, chatID: chatID, language: replyLanguage), uniqueKey: "update:\(updateKey):generate", on: connection, queue: context.queue)
            }
            if case .started = outcome { try? await context.telegram.sendChatAction(chatID: chatID, action: "upload_photo") }
        }
    }

    /// What an update leaves for after its transaction: steps with transactions or storage calls
    /// of their own, and the callback answer. Saved with the chat's step in that transaction, so
    /// when a worker dies after the commit, the rerun does exactly these (each is idempotent)
    /// instead of handling the update against the new step. Found by the reliability suite: a
    /// kill there lost a paid generation request and answered the press "no longer valid".
    struct FollowUps: Codable, Sendable {
        struct Generation: Codable, Sendable { var id: UUID, avatarID: UUID, prompt: String, ratio: String, count: Int }
        struct RemovedPhoto: Codable, Sendable { var avatarID: UUID, photoID: UUID }
        var language = "en"
        var startTraining: UUID?
        var cancelTraining: UUID?
        var generation: Generation?
        var removedPhoto: RemovedPhoto?
        var deletedImages: [String] = []
        var answerCallback = false
        var callbackText: String?
        /// The first reply, when it was plain text: sent right after the commit if the rate
        /// limiter admitted it, without a job; a rerun queues it (as "update:<id>:1", the key
        /// the transaction would have queued it under).
        var reply: OutgoingMessage?
    }

    /// Renders a reply in `language`. Arguments that are themselves catalogue keys (a status, a
    /// kind) are translated too.
    static func render(_ reply: Reply, chatID: Int64, language: Catalog.Language) -> OutgoingMessage {
        let catalog = Catalog.shared
        return OutgoingMessage(chatID: chatID, text: catalog.localized(reply.key, language, reply.arguments),
                               buttons: reply.buttons.map { row in row.map { .init(catalog.localized($0.key, language, $0.arguments), data: $0.data) } },
                               answersUpdate: true)
    }

    /// The last movements, newest first: `+150 welcome · 2026-11-25`.
    static func history(userID: Int64, language: Catalog.Language, on connection: PostgresConnection) async throws -> String {
        let rows = try await connection.query("SELECT amount, reason, created_at FROM credit_ledger WHERE user_id = \(userID) ORDER BY id DESC LIMIT 5").map {
            (try $0.decode(Int.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(Date.self, at: 2))
        }
        let catalog = Catalog.shared
        return rows.map { amount, reason, date in
            let day = ISO8601DateFormatter.string(from: date, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate])
            let label = catalog.has("ledger." + reason) ? catalog.text("ledger." + reason, language) : reason
            return "\(amount > 0 ? "+" : "")\(amount) \(label) · \(day)"
        }.joined(separator: "\n")
    }

    /// A UUID derived from the update: an id this update creates is the same on a redelivery.
    static func stableID(_ key: String) -> UUID {
        var bytes = Array(SHA256.hash(Array("aisha-update:\(key)".utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    /// Cancels a training at FAL (best effort) and refunds it, then says so.
    static func cancel(_ avatarID: UUID, userID: Int64, chatID: Int64, updateKey: String, context: PipelineContext) async throws {
        guard try await context.store.avatar(avatarID)?.userID == userID else { return }
        _ = try await AvatarTraining.cancel(avatarID: avatarID, reason: "cancelled", context: context) { cancelled, tx in
            try await context.tell(userID, chatID: chatID, "training.cancelled", ["name": cancelled.name, "price": "\(cancelled.trainingPrice ?? 0)"],
                                   uniqueKey: "update:\(updateKey):cancel", on: tx)
        }
    }
}
