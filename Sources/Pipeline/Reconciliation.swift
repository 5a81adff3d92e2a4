public import Avatars
import FAL
public import Foundation
public import JobQueue
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

    /// One pass. Safe to run anywhere, any number of times: every effect goes through the
    /// guarded, idempotent writes `fal.result` uses.
    public static func run(context: PipelineContext, logger: Logger) async throws -> Report {
        let settings = context.settings
        let overdue = try await context.database.query("""
            SELECT id, training_attempt, fal_request_id, training_model, extract(epoch FROM now() - submitted_at)::float8
            FROM avatars
            WHERE status = 'training' AND fal_request_id IS NOT NULL AND submitted_at < now() - make_interval(secs => \(settings.reconcileTrainingAfter))
            ORDER BY submitted_at LIMIT 100
            """).map { row in
            (try row.decode(UUID.self, at: 0), try row.decode(Int.self, at: 1), try row.decode(String.self, at: 2), try row.decode(String?.self, at: 3) ?? FALModel.portraitTrainer, try row.decode(Double.self, at: 4))
        }
        var report = Report()
        for (avatarID, attempt, requestID, model, age) in overdue {
            report.checked += 1
            let handle = context.fal.handle(model: model, requestID: requestID)
            do {
                if let result = try await context.fal.poll(handle) {
                    try await FALResults.apply(result, ref: nil, context: context, logger: logger)
                    logger.notice("training finished by reconciliation (its webhook never came)", metadata: ["avatar": "\(avatarID)", "fal.request_id": "\(requestID)"])
                    report.finished += 1
                    continue
                }
            } catch {
                logger.warning("reconciliation could not reach FAL", metadata: ["avatar": "\(avatarID)", "error": "\(error)"])
            }
            if age > settings.trainingTimeout {
                _ = try? await context.fal.cancel(handle)
                try await FALResults.failTraining(avatarID: avatarID, attempt: attempt, reasonKey: "training.reason.timeout", context: context, logger: logger)
                report.timedOut += 1
            }
        }
        try await reconcileGenerations(context: context, logger: logger, report: &report)
        return report
    }

    static func reconcileGenerations(context: PipelineContext, logger: Logger, report: inout Report) async throws {
        let settings = context.settings
        let overdue = try await context.database.query("""
            SELECT id, fal_request_id, extract(epoch FROM now() - submitted_at)::float8 FROM generations
            WHERE status = 'submitted' AND submitted_at < now() - make_interval(secs => \(settings.reconcileGenerationAfter))
            ORDER BY submitted_at LIMIT 100
            """).map { (try $0.decode(UUID.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(Double.self, at: 2)) }
        for (id, requestID, age) in overdue {
            report.checked += 1
            let handle = context.fal.handle(model: FALModel.fluxLora, requestID: requestID)
            do {
                if let result = try await context.fal.poll(handle) {
                    _ = try await Generations.apply(result, ref: nil, context: context, logger: logger)
                    report.finished += 1
                    continue
                }
            } catch {
                logger.warning("reconciliation could not reach FAL", metadata: ["generation": "\(id)", "error": "\(error)"])
            }
            if age > settings.generationTimeout {
                _ = try? await context.fal.cancel(handle)
                try await Generations.fail(id, reasonKey: "generation.reason.service", context: context, logger: logger)
                report.timedOut += 1
            }
        }
    }
}
