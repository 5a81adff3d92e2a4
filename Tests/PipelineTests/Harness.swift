import Avatars
import Bot
import FAL
import Foundation
import Hummingbird
import Imaging
import JobQueue
import Logging
import ObjectStorage
import Pipeline
import Postgres
import RateLimit
import Sandbox
import Telegram
import TestSupport
import WebhookServer

/// Everything real except Telegram and FAL (the Sandbox): PostgreSQL, moto S3, the webhook
/// server and a worker running the pipeline's handlers, all in-process.
struct Harness: Sendable {
    let database: PostgresClient
    let sandbox: Sandbox
    let context: PipelineContext
    let serverBase: String

    var store: AvatarStore { AvatarStore(database: database) }

    static func run(
        sandbox: Sandbox = Sandbox(fal: .init(trainingDuration: .milliseconds(300), generationDuration: .milliseconds(50), webhookRetryDelay: .milliseconds(100))),
        configure: @Sendable (inout PipelineSettings) -> Void = { _ in },
        withBot: Bool = false,
        _ body: @Sendable (Harness) async throws -> Void
    ) async throws {
        try await TestDatabase.withMigrated { testDatabase in
            let database = try testDatabase.client(maxConnections: 12)
            defer { database.shutdown() }
            try await sandbox.run { endpoints in
                try await runServer(databaseURL: testDatabase.url, jwksURL: endpoints.falJWKS) { serverBase in
                    var settings = PipelineSettings(falWebhookURL: serverBase + "/fal/webhook")
                    let suffix = UUID().uuidString.prefix(8).lowercased()
                    settings.photoBucket = "avatars-\(suffix)"
                    settings.generatedBucket = "generated-\(suffix)"
                    configure(&settings)
                    let context = PipelineContext(
                        database: database, storage: ObjectStorage(configuration: try .fromEnvironment()),
                        fal: FALClient(configuration: .init(key: sandbox.fal.configuration.key, queueBaseURL: endpoints.falQueue, restBaseURL: endpoints.falREST)),
                        telegram: TelegramClient(token: sandbox.telegram.configuration.token, apiBaseURL: endpoints.telegramAPI), settings: settings
                    )
                    try await context.prepareStorage()
                    let harness = Harness(database: database, sandbox: sandbox, context: context, serverBase: serverBase)
                    var logger = Logger(label: "test.worker")
                    logger.logLevel = .critical
                    var configuration = JobWorker.Configuration()
                    configuration.pollInterval = .milliseconds(100)
                    let rateLimited = RateLimitedTelegramFactory()
                    let handlers = context.handlers(rateLimited: rateLimited) + (withBot ? [BotHandler.handler(context, rateLimited: rateLimited)] : [])
                    if withBot { sandbox.telegram.setWebhook(.init(url: serverBase + "/telegram/webhook", secretToken: "pipeline_test")) }
                    let worker = JobWorker(queue: JobQueue(database: database), handlers: handlers, configuration: configuration, logger: logger)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await worker.run() }
                        try await body(harness)
                        group.cancelAll()
                    }
                }
            }
        }
    }

    /// The in-process `aisha-server` (what FAL's webhooks reach).
    static func runServer(databaseURL: String, jwksURL: String, _ body: @Sendable (String) async throws -> Void) async throws {
        try await InProcessServer.run(databaseURL: databaseURL, telegramSecret: "pipeline_test", jwksURL: jwksURL) { base, _ in try await body(base) }
    }

    /// The environment of a real `aisha-worker` process against the Sandbox and the in-process
    /// server, with a 2 s lease so a killed worker's jobs come back quickly.
    static func workerEnvironment(databaseURL: String, serverBase: String, sandbox: Sandbox, endpoints: Sandbox.Endpoints, bucket: String) -> [String: String] {
        ProcessInfo.processInfo.environment.merging([
            "AISHA_DATABASE_URL": databaseURL, "AISHA_FAL_WEBHOOK_URL": serverBase + "/fal/webhook", "FAL_KEY": sandbox.fal.configuration.key,
            "FAL_QUEUE_URL": endpoints.falQueue, "FAL_REST_URL": endpoints.falREST, "AISHA_TELEGRAM_BOT_TOKEN": sandbox.telegram.configuration.token,
            "AISHA_TELEGRAM_API_URL": endpoints.telegramAPI, "AISHA_PHOTO_BUCKET": bucket, "AISHA_GENERATED_BUCKET": bucket + "-g",
            "AISHA_WORKER_LEASE_SECONDS": "2", "AISHA_LOG_LEVEL": "warning",
        ]) { $1 }
    }

    /// A user with welcome credits and a fresh portrait avatar.
    func userWithAvatar(_ userID: Int64, credits: Int = 150, language: String = "en") async throws -> Avatar {
        sandbox.telegram.user(id: userID, firstName: "Ann", languageCode: language)
        try await store.ensureUser(id: userID, firstName: "Ann", language: language, welcomeCredits: credits)
        return try await store.createAvatar(userID: userID, name: "Me at work", kind: .portrait, gender: .female)
    }

    /// The user sends `photo` in Telegram (the Sandbox stores it and gives it ids) and the bot
    /// queues its ingest — what the conversation (issue 7) will do for each photo.
    @discardableResult
    func sendPhoto(_ bytes: [UInt8], userID: Int64, avatarID: UUID) async throws -> String {
        await sandbox.telegram.user(id: userID).sendPhoto(bytes)
        let message = try #require(sandbox.telegram.messages(inChat: userID).last { !$0.fromBot })
        let fileID = try #require(message.fileIDs.first)
        let uniqueID = "u-" + fileID
        try await JobQueue(database: database).enqueue(try PhotoIngest.job(.init(userID: userID, avatarID: avatarID, fileID: fileID, fileUniqueID: uniqueID, fileSize: bytes.count)))
        return uniqueID
    }

    /// Polls `condition` every 50 ms for up to `timeout`.
    func eventually(_ timeout: Duration = .seconds(20), _ condition: @escaping @Sendable () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    func balance(_ userID: Int64) async throws -> Int {
        try await database.query("SELECT balance FROM users WHERE id = \(userID)")[0].decode(Int.self, at: 0)
    }

    func botTexts(_ chatID: Int64) -> [String] {
        sandbox.telegram.messages(inChat: chatID).filter(\.fromBot).compactMap(\.text)
    }

    static func jpeg(_ seed: UInt64, width: Int = 640, height: Int = 640) -> [UInt8] {
        JPEGEncoder.encode(width: width, height: height, padding: 4000, seed: seed) { x, y in UInt8(truncatingIfNeeded: x &* 3 &+ y &* 5 &+ Int(seed % 97)) }
    }
}

import Testing
