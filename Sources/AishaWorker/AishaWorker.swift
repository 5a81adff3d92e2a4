import Bot
import Foundation
import JobQueue
import Logging
import Pipeline
import RateLimit
import Postgres
import ServiceLifecycle
import UnixSignals

/// `aisha-worker`: claims and runs jobs until SIGTERM, then drains (see JobWorker).
/// Runs the pipeline's kinds (photo.ingest, avatar.train, fal.result, telegram.send) and the
/// queue's own maintenance (`jobs.prune`, hourly).
@main
struct AishaWorker {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        var logger = Logger(label: "aisha.worker")
        logger.logLevel = Logger.Level(rawValue: environment["AISHA_LOG_LEVEL"] ?? "info") ?? .info
        guard let url = environment["AISHA_DATABASE_URL"], !url.isEmpty else {
            logger.critical("AISHA_DATABASE_URL is required")
            exit(2)
        }
        var configuration = JobWorker.Configuration()
        if let value = environment["AISHA_WORKER_CONCURRENCY"].flatMap(Int.init), value > 0 { configuration.concurrency = value }
        if let value = environment["AISHA_WORKER_SHUTDOWN_GRACE_SECONDS"].flatMap(Int.init), value >= 0 { configuration.shutdownGrace = .seconds(value) }
        configuration.listen = environment["AISHA_WORKER_LISTEN"] != "false"
        if let value = environment["AISHA_WORKER_LEASE_SECONDS"].flatMap(Int.init), value > 0 { configuration.lease = .seconds(value) }
        let poolSize = environment["AISHA_DB_POOL_SIZE"].flatMap(Int.init) ?? 10
        let database = try PostgresClient(url: url, maxConnections: poolSize, logger: logger)
        let queue = JobQueue(database: database)
        let retentionDays = environment["AISHA_JOB_RETENTION_DAYS"].flatMap(Int.init) ?? 7
        let (pruneHandler, pruneSchedule) = queue.pruning(retention: .seconds(retentionDays * 86_400))
        configuration.periodic = [pruneSchedule]
        let pipeline: PipelineContext
        do {
            pipeline = try PipelineContext.fromEnvironment(environment, database: database)
        } catch {
            logger.critical("configuration: \(error)")
            exit(78)  // EX_CONFIG
        }
        try await pipeline.prepareStorage()
        configuration.periodic += pipeline.periodicJobs
        let globalRate = environment["AISHA_TELEGRAM_GLOBAL_PER_SECOND"].flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil } ?? 30
        let global = RateLimit(count: globalRate, per: 1, burst: globalRate)
        let factory = RateLimitedTelegramFactory { client, database in
            RateLimitedTelegram(client: client, limiter: RateLimiter(database: database), limits: { RateLimiter.telegram(chatID: $0, global: global) })
        }
        let handlers = [pruneHandler, BotHandler.handler(pipeline, rateLimited: factory)] + pipeline.handlers(rateLimited: factory)
        let worker = JobWorker(queue: queue, handlers: handlers, configuration: configuration, logger: logger)
        let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        database.shutdown()
    }
}
