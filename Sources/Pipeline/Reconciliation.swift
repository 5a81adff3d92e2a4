import Avatars
import FAL
import Foundation
import JobQueue
public import Logging
import Postgres

/// `fal.reconcile` (periodic): trainings whose webhook never came are asked about at FAL and
/// finished with the same logic as a webhook; trainings past the hard timeout are cancelled at
/// FAL, failed and refunded. The system this replaces lost every training whose webhook went
/// astray; this one loses none.
public enum Reconciliation {
    public static let kind = "fal.reconcile"

    static func periodic(_ context: PipelineContext) -> PeriodicJob { PeriodicJob(kind: kind, every: context.settings.reconcileEvery) }

    static func handler(_ context: PipelineContext) -> JobHandler {
        JobHandler(kind: kind, timeout: .seconds(300)) { _, logger in _ = try await run(context: context, logger: logger) }
    }

    public struct Report: Sendable, Equatable {
        public var checked = 0
        public var finished = 0
        public var timedOut = 0

        public init(checked: Int = 0, finished: Int = 0, timedOut: Int = 0) {
            self.checked = checked
            self.finished = finished
            self.timedOut = timedOut
        }
    }

    /// A request whose webhook is late, and what ends it when it is too late.
    struct Overdue {
        var subject: String
        var handle: FALClient.QueueHandle
        var age: TimeInterval
        var timeout: TimeInterval
        var expire: () async throws -> Void
    }

    /// One pass. Safe to run anywhere, any number of times: every effect goes through the
    /// guarded, idempotent writes `fal.result` uses.
    public static func run(context: PipelineContext, logger: Logger) async throws -> Report {
        let settings = context.settings
        let trainings = try await context.database.query("""
            SELECT id, training_attempt, fal_request_id, training_model, extract(epoch FROM now() - submitted_at)::float8
            FROM avatars
            WHERE status = 'training' AND fal_request_id IS NOT NULL AND submitted_at < now() - make_interval(secs => \(settings.reconcileTrainingAfter))
            ORDER BY submitted_at LIMIT 100
            """).map { row -> Overdue in
            let (avatarID, attempt, requestID) = (try row.decode(UUID.self, at: 0), try row.decode(Int.self, at: 1), try row.decode(String.self, at: 2))
            return Overdue(subject: "avatar \(avatarID)", handle: context.fal.handle(model: try row.decode(String?.self, at: 3) ?? FALModel.portraitTrainer, requestID: requestID),
                           age: try row.decode(Double.self, at: 4), timeout: settings.trainingTimeout) {
                try await FALResults.failTraining(avatarID: avatarID, attempt: attempt, reasonKey: "training.reason.timeout", context: context, logger: logger)
            }
        }
        let generations = try await context.database.query("""
            SELECT id, fal_request_id, extract(epoch FROM now() - submitted_at)::float8 FROM generations
            WHERE status = 'submitted' AND submitted_at < now() - make_interval(secs => \(settings.reconcileGenerationAfter))
            ORDER BY submitted_at LIMIT 100
            """).map { row -> Overdue in
            let id = try row.decode(UUID.self, at: 0)
            return Overdue(subject: "generation \(id)", handle: context.fal.handle(model: FALModel.fluxLora, requestID: try row.decode(String.self, at: 1)),
                           age: try row.decode(Double.self, at: 2), timeout: settings.generationTimeout) {
                try await Generations.fail(id, reasonKey: "generation.reason.service", context: context, logger: logger)
            }
        }
        var report = Report()
        for item in trainings + generations {
            report.checked += 1
            do {
                if let result = try await context.fal.poll(item.handle) {
                    // The same code as a webhook: it finds the training or generation by request id.
                    try await FALResults.apply(result, ref: nil, context: context, logger: logger)
                    logger.notice("finished by reconciliation (its webhook never came)", metadata: ["subject": "\(item.subject)", "fal.request_id": "\(item.handle.requestID)"])
                    report.finished += 1
                    continue
                }
            } catch {
                logger.warning("reconciliation could not reach FAL", metadata: ["subject": "\(item.subject)", "error": "\(error)"])
            }
            if item.age > item.timeout {
                _ = try? await context.fal.cancel(item.handle)
                try await item.expire()
                report.timedOut += 1
            }
        }
        return report
    }
}
