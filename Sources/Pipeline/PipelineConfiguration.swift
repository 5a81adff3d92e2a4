import Avatars
import FAL
import Foundation
import ObjectStorage
public import Postgres
import Telegram

/// A configuration mistake, said plainly (the worker exits with it).
public struct PipelineConfigurationError: Error, CustomStringConvertible {
    public let description: String
}

extension PipelineContext {
    /// Reads the worker's settings (docs/configuration.md): MinIO, FAL, Telegram, the public FAL
    /// webhook URL, prices and limits.
    public static func fromEnvironment(_ environment: [String: String], database: PostgresClient) throws -> PipelineContext {
        func required(_ name: String) throws -> String {
            guard let value = environment[name], !value.isEmpty else { throw PipelineConfigurationError(description: "\(name) is required") }
            return value
        }
        func number(_ name: String, _ fallback: Int) throws -> Int {
            guard let value = Int(environment[name] ?? String(fallback)), value >= 0 else { throw PipelineConfigurationError(description: "\(name) must be a whole number ≥ 0") }
            return value
        }
        var settings = PipelineSettings(falWebhookURL: try required("AISHA_FAL_WEBHOOK_URL"))
        settings.photoBucket = environment["AISHA_PHOTO_BUCKET"] ?? settings.photoBucket
        settings.generatedBucket = environment["AISHA_GENERATED_BUCKET"] ?? settings.generatedBucket
        settings.trainingPrice = try number("AISHA_TRAINING_PRICE", settings.trainingPrice)
        settings.imagePrice = try number("AISHA_IMAGE_PRICE", settings.imagePrice)
        settings.welcomeCredits = try number("AISHA_WELCOME_CREDITS", settings.welcomeCredits)
        settings.portraitSteps = try number("AISHA_PORTRAIT_STEPS", settings.portraitSteps)
        settings.styleSteps = try number("AISHA_STYLE_STEPS", settings.styleSteps)
        func seconds(_ name: String, _ fallback: TimeInterval) throws -> TimeInterval { TimeInterval(try number(name, Int(fallback))) }
        settings.reconcileTrainingAfter = try seconds("AISHA_RECONCILE_TRAINING_AFTER_SECONDS", settings.reconcileTrainingAfter)
        settings.trainingTimeout = try seconds("AISHA_TRAINING_TIMEOUT_SECONDS", settings.trainingTimeout)
        settings.reconcileGenerationAfter = try seconds("AISHA_RECONCILE_GENERATION_AFTER_SECONDS", settings.reconcileGenerationAfter)
        settings.generationTimeout = try seconds("AISHA_GENERATION_TIMEOUT_SECONDS", settings.generationTimeout)
        settings.trainingUnconfirmedAfter = try seconds("AISHA_TRAINING_UNCONFIRMED_SECONDS", settings.trainingUnconfirmedAfter)
        settings.generationUnconfirmedAfter = try seconds("AISHA_GENERATION_UNCONFIRMED_SECONDS", settings.generationUnconfirmedAfter)
        let every = try number("AISHA_RECONCILE_EVERY_SECONDS", 60)
        guard every > 0 else { throw PipelineConfigurationError(description: "AISHA_RECONCILE_EVERY_SECONDS must be at least 1") }
        settings.reconcileEvery = .seconds(every)
        let storage = ObjectStorage(configuration: try ObjectStorage.Configuration.fromEnvironment(environment))
        let fal = FALClient(configuration: .init(
            key: try required("FAL_KEY"), queueBaseURL: environment["FAL_QUEUE_URL"] ?? "https://queue.fal.run", restBaseURL: environment["FAL_REST_URL"] ?? "https://rest.fal.ai"
        ))
        let telegram = TelegramClient(token: try required("AISHA_TELEGRAM_BOT_TOKEN"), apiBaseURL: environment["AISHA_TELEGRAM_API_URL"] ?? "https://api.telegram.org")
        return PipelineContext(database: database, storage: storage, fal: fal, telegram: telegram, settings: settings,
                               scratchDirectory: environment["AISHA_SCRATCH_DIR"] ?? NSTemporaryDirectory())
    }

    /// Creates the buckets if they are missing (an empty, misnamed bucket once took the old system down).
    public func prepareStorage() async throws {
        try await storage.createBucketIfMissing(settings.photoBucket)
        try await storage.createBucketIfMissing(settings.generatedBucket)
    }
}
