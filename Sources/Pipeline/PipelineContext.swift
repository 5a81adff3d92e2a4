public import Avatars
public import FAL
public import Foundation
public import JobQueue
import Logging
import Messages
public import ObjectStorage
public import Postgres
public import RateLimit
public import Telegram

/// What the pipeline's handlers work with; built once per worker process.
public struct PipelineContext: Sendable {
    public var database: PostgresClient
    public var storage: ObjectStorage
    public var fal: FALClient
    public var telegram: TelegramClient
    public var settings: PipelineSettings
    /// Where ZIPs and downloads are staged (removed whatever happens).
    public var scratchDirectory: String

    public init(database: PostgresClient, storage: ObjectStorage, fal: FALClient, telegram: TelegramClient, settings: PipelineSettings, scratchDirectory: String = NSTemporaryDirectory()) {
        self.database = database
        self.storage = storage
        self.fal = fal
        self.telegram = telegram
        self.settings = settings
        self.scratchDirectory = scratchDirectory
    }

    public var store: AvatarStore { AvatarStore(database: database) }
    public var queue: JobQueue { JobQueue(database: database) }

    /// The user's language for messages.
    func language(of userID: Int64, on connection: PostgresConnection) async throws -> Catalog.Language {
        Catalog.Language(languageCode: try await connection.query("SELECT language FROM users WHERE id = \(userID)").first?.decode(String.self, at: 0))
    }

    /// Queues a message for a user, written from catalogue keys in the user's language: the text,
    /// its arguments (those that are keys are translated) and the buttons' labels. One message
    /// per `uniqueKey`. Pass `connection` to queue it inside the caller's transaction.
    public func tell(
        _ userID: Int64, chatID: Int64? = nil, _ key: String, _ arguments: [String: String] = [:], buttons: [[OutgoingMessage.Button]] = [],
        tag: String? = nil, coalesce: Bool = false, uniqueKey: String, on connection: PostgresConnection? = nil
    ) async throws {
        func send(_ connection: PostgresConnection) async throws {
            let language = try await self.language(of: userID, on: connection)
            let catalog = Catalog.shared
            let message = OutgoingMessage(
                chatID: chatID ?? userID, text: catalog.localized(key, language, arguments),
                buttons: buttons.map { row in row.map { OutgoingMessage.Button(catalog.localized($0.text, language, arguments), data: $0.data) } },
                tag: tag, coalesce: coalesce
            )
            try await Outbox.send(message, uniqueKey: uniqueKey, on: connection, queue: queue)
        }
        if let connection { try await send(connection) } else { try await database.withConnection { try await send($0) } }
    }

    /// A fresh scratch folder for one job; the caller removes it.
    func scratchFolder(_ name: String) throws -> String {
        let path = scratchDirectory + "/aisha-\(name)-\(UUID().uuidString.lowercased())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Every pipeline handler.
    public func handlers(rateLimited: RateLimitedTelegramFactory) -> [JobHandler] {
        [PhotoIngest.handler(self), AvatarTraining.handler(self), FALResults.handler(self), Reconciliation.handler(self),
         Generations.runHandler(self)] + Purge.handlers(self) + [
         Outbox.handler(telegram: rateLimited.make(telegram, database), database: database, storage: storage, scratchDirectory: scratchDirectory)]
    }

    /// The pipeline's periodic jobs (reconciliation).
    public var periodicJobs: [PeriodicJob] { [Reconciliation.periodic(self)] }
}

/// Builds the rate-limited sender (a seam for tests that want other limits).
public struct RateLimitedTelegramFactory: Sendable {
    public let make: @Sendable (TelegramClient, PostgresClient) -> RateLimitedTelegram
    public init(make: @escaping @Sendable (TelegramClient, PostgresClient) -> RateLimitedTelegram = { RateLimitedTelegram(client: $0, limiter: RateLimiter(database: $1)) }) {
        self.make = make
    }
}
