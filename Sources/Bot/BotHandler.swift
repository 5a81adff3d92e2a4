public import Avatars
import Foundation
public import JobQueue
import Logging
import Messages
public import Pipeline
import Postgres
import Telegram

/// `telegram.update`: decodes the update, loads the chat's step and the facts, runs the pure
/// `Conversation`, and applies its actions with the new step in one transaction. Replies go
/// through the outbox in that transaction, so a retried job never answers twice and a crash
/// never leaves a reply without its state (or the reverse).
public enum BotHandler {
    public static let kind = "telegram.update"

    public static func handler(_ context: PipelineContext) -> JobHandler {
        JobHandler(kind: kind, timeout: .seconds(60)) { job, logger in
            guard let update = try? JSONDecoder().decode(Update.self, from: job.payload) else {
                logger.notice("telegram update with a shape we cannot read; ignored", metadata: ["job": "\(job.id)"])
                return
            }
            try await handle(update, updateKey: "\(update.updateID)", context: context, logger: logger)
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

    static func handle(_ update: Update, updateKey: String, context: PipelineContext, logger: Logger) async throws {
        if case .myChatMember(let member) = update.kind {
            // Blocked (kicked) or unblocked: stop or resume messaging.
            let blocked = member.newChatMember.status == "kicked"
            try await context.database.query("UPDATE users SET blocked_at = \(blocked ? Date() : nil) WHERE id = \(member.from.id)")
            return
        }
        guard let (event, user, chatID, callbackID) = event(update) else { return }
        let settings = context.settings
        let language = Catalog.Language(languageCode: user.languageCode)
        var startTraining: UUID?
        var callbackText: String??

        let replyLanguage = try await context.database.withTransaction { tx -> Catalog.Language in
            let isNew = try await tx.query("""
                INSERT INTO users (id, first_name, language) VALUES (\(user.id), \(user.firstName), \(language.rawValue)) ON CONFLICT (id) DO NOTHING RETURNING id
                """).count == 1
            if isNew, settings.welcomeCredits > 0 {
                _ = try await CreditLedger.move(userID: user.id, amount: settings.welcomeCredits, reference: "welcome:\(user.id)", reason: "welcome", on: tx)
            }
            let stored = try await tx.query("SELECT state FROM chat_state WHERE chat_id = \(chatID) FOR UPDATE").first?.decode(String.self, at: 0)
            let step = stored.flatMap { try? JSONDecoder().decode(ChatStep.self, from: Data($0.utf8)) } ?? .idle
            var collecting: Avatar?
            if case .collecting(let id) = step {
                collecting = try await tx.query("SELECT \(Avatar.columns) FROM avatars WHERE id = \(id) AND user_id = \(user.id)").first.map(Avatar.init(row:))
            }
            let facts = BotFacts(
                isNewUser: isNew, balance: try await CreditLedger.balance(userID: user.id, on: tx), trainingPrice: settings.trainingPrice,
                minimumPhotos: settings.minimumPhotos, maximumPhotos: settings.maximumPhotos, collecting: collecting, newAvatarID: UUID()
            )
            let (next, actions) = Conversation.handle(step, event, facts)
            var userLanguage = Catalog.Language(languageCode: try await tx.query("SELECT language FROM users WHERE id = \(user.id)")[0].decode(String.self, at: 0))
            var replies = 0
            for action in actions {
                switch action {
                case .reply(let reply):
                    replies += 1
                    try await Outbox.send(render(reply, chatID: chatID, language: userLanguage), uniqueKey: "update:\(updateKey):\(replies)", on: tx, queue: context.queue)
                case .answerCallback(let key):
                    callbackText = .some(key.map { Catalog.shared.text($0, userLanguage) })
                case .createAvatar(let id, let kind, let gender, let name):
                    _ = try await AvatarStore.createAvatar(id: id, userID: user.id, name: name, kind: kind, gender: gender, on: tx)
                case .recordConsent:
                    try await tx.query("UPDATE users SET consented_at = coalesce(consented_at, now()) WHERE id = \(user.id)")
                case .ingestPhoto(let avatarID, let fileID, let fileUniqueID, let size):
                    try await context.queue.enqueue(try PhotoIngest.job(.init(userID: user.id, avatarID: avatarID, fileID: fileID, fileUniqueID: fileUniqueID, fileSize: size)), on: tx)
                case .startTraining(let avatarID):
                    startTraining = avatarID
                case .setLanguage(let code):
                    try await tx.query("UPDATE users SET language = \(code) WHERE id = \(user.id)")
                    userLanguage = Catalog.Language(languageCode: code)
                }
            }
            let encoded = String(decoding: try JSONEncoder().encode(next), as: UTF8.self)
            try await tx.query("""
                INSERT INTO chat_state (chat_id, user_id, state) VALUES (\(chatID), \(user.id), \(encoded)::jsonb)
                ON CONFLICT (chat_id) DO UPDATE SET state = excluded.state, updated_at = now()
                """)
            return userLanguage
        }

        if let avatarID = startTraining {
            // Its own transaction: charge + status + job (AvatarStore.startTraining).
            let outcome = try await context.store.startTraining(avatarID: avatarID, userID: user.id, settings: settings)
            let reply: Reply = switch outcome {
            case .started(_, let balance): Reply("training.started.now", ["balance": "\(balance)"])
            case .alreadyTraining: Reply("training.already")
            case .insufficientCredits(let price, let balance): Reply("train.insufficient", ["price": "\(price)", "balance": "\(balance)", "missing": "\(price - balance)"])
            case .tooFewPhotos(let have, let need): Reply("train.too_few", ["count": "\(have)", "min": "\(need)"])
            case .notReady, .notFound: Reply("stale.button")
            }
            try await context.database.withConnection { connection in
                try await Outbox.send(render(reply, chatID: chatID, language: replyLanguage), uniqueKey: "update:\(updateKey):train", on: connection, queue: context.queue)
            }
        }
        if let callbackID, let text = callbackText {
            // Best effort: Telegram forgets queries after ~15 s, and a late answer changes nothing.
            try? await context.telegram.answerCallbackQuery(id: callbackID, text: text)
        }
    }

    static func render(_ reply: Reply, chatID: Int64, language: Catalog.Language) -> OutgoingMessage {
        let catalog = Catalog.shared
        return OutgoingMessage(chatID: chatID, text: catalog.text(reply.key, language, reply.arguments),
                               buttons: reply.buttons.map { row in row.map { .init(catalog.text($0.key, language, $0.arguments), data: $0.data) } })
    }
}
