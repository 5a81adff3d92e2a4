import Foundation
import Logging

extension JobQueue {
    /// The kind of the built-in job that deletes old finished jobs.
    public static let pruneKind = "jobs.prune"

    /// The handler for `jobs.prune`, and its hourly schedule, for a worker to register.
    public func pruning(retention: Duration = .seconds(7 * 86_400), deadRetention: Duration = .seconds(30 * 86_400)) -> (JobHandler, PeriodicJob) {
        let handler = JobHandler(kind: JobQueue.pruneKind, timeout: .seconds(600)) { _, logger in
            let deleted = try await self.prune(retention: retention, deadRetention: deadRetention)
            logger.info("pruned finished jobs", metadata: ["jobs.deleted": "\(deleted)"])
        }
        return (handler, PeriodicJob(kind: JobQueue.pruneKind, every: .seconds(3600)))
    }
}
