import Avatars
public import FAL
import Foundation
import JSON
import JobQueue
public import Logging
import Messages
import Postgres

/// `fal.result`: a verified FAL webhook (or a polled result) applied to the training it
/// belongs to. Applying the same result twice changes nothing: every write is guarded by the
/// avatar's status and attempt, and money moves by unique reference.
public enum FALResults {
    public static let kind = "fal.result"

    struct Payload: Decodable {
        var ref: String?
        var webhook: FALWebhookPayload
    }

    /// How long a result whose request id we do not know (yet) is looked at again, every few
    /// seconds, before it is logged and dropped — a webhook can overtake the row that records its
    /// submission. Measured from the job's creation: a reschedule does not count an attempt, so
    /// `job.attempt` cannot bound it (it did once, and such a job came back every 10 s forever).
    static let unknownRequestWindow: TimeInterval = 60

    static func handler(_ context: PipelineContext) -> JobHandler {
        JobHandler(kind: kind, timeout: .seconds(60)) { job, logger in
            let payload = try job.decode(Payload.self)
            let applied = try await apply(payload.webhook, ref: payload.ref, context: context, logger: logger)
            if !applied {
                guard Date().timeIntervalSince(job.createdAt) < unknownRequestWindow else {
                    logger.warning("FAL result for a request we never submitted; ignored", metadata: ["fal.request_id": "\(payload.webhook.requestID)"])
                    return
                }
                throw JobFailure.retryAt(Date().addingTimeInterval(5), reason: "unknown FAL request id (not recorded yet?)")
            }
        }
    }

    /// Applies a result; false when its request id belongs to nothing we know.
    @discardableResult
    public static func apply(_ result: FALWebhookPayload, ref: String?, context: PipelineContext, logger: Logger) async throws -> Bool {
        let store = context.store
        var avatar = try await store.avatar(requestID: result.requestID)
        if avatar == nil, let ref, let (avatarID, attempt) = parseTrainingReference(ref) {
            // The submit happened but recording its id did not (a crash): adopt it now.
            if try await store.recordSubmission(avatarID: avatarID, attempt: attempt, requestID: result.requestID) {
                logger.info("adopted a training request id from its webhook", metadata: ["avatar": "\(avatarID)", "fal.request_id": "\(result.requestID)"])
                avatar = try await store.avatar(requestID: result.requestID)
            }
        }
        guard let avatar else { return try await Generations.apply(result, ref: ref, context: context, logger: logger) }
        guard avatar.status == .training else { return true }  // applied before, or cancelled meanwhile

        if result.status == .ok, let output = trainingOutput(result.payload) {
            // The message is queued in the completion's transaction (a crash between the two once lost it).
            let outcome = try await store.completeTraining(avatarID: avatar.id, attempt: avatar.trainingAttempt, loraURL: output.diffusersLoraFile.url, configURL: output.configFile?.url) { done, tx in
                try await notify(done, key: "training.completed", event: "done", buttons: [
                    [OutgoingMessage.Button("button.generate", data: "gen:av:\(done.id.uuidString.lowercased())")],
                    [OutgoingMessage.Button("button.avatars", data: "av:list:0")],
                ], context: context, on: tx)
            }
            if case .completed = outcome {
                logger.info("training completed", metadata: ["avatar": "\(avatar.id)", "fal.request_id": "\(result.requestID)"])
            }
            return true
        }
        // ERROR, or OK without a LoRA file: a failure, never a fabricated result.
        let reason = result.status == .ok ? "training.reason.no_result" : (result.error?.contains("422") == true ? "training.reason.rejected_photos" : "training.reason.service")
        try await failTraining(avatarID: avatar.id, attempt: avatar.trainingAttempt, reasonKey: reason, context: context, logger: logger)
        return true
    }

    static func trainingOutput(_ payload: JSONValue?) -> TrainingOutput? {
        guard let payload, let data = try? JSONEncoder().encode(payload) else { return nil }
        return try? JSONDecoder().decode(TrainingOutput.self, from: data)
    }

    static func parseTrainingReference(_ ref: String) -> (UUID, Int)? {
        let parts = ref.split(separator: ":")
        guard parts.count == 3, parts[0] == "train", let id = UUID(uuidString: String(parts[1])), let attempt = Int(parts[2]) else { return nil }
        return (id, attempt)
    }

    /// Fails the attempt, refunds it once, and tells the user why (in their language).
    static func failTraining(avatarID: UUID, attempt: Int, reasonKey: String, context: PipelineContext, logger: Logger) async throws {
        let outcome = try await context.store.failTraining(avatarID: avatarID, attempt: attempt, error: reasonKey) { avatar, tx in
            try await notify(avatar, key: "training.failed", event: "failed", reasonKey: reasonKey, buttons: [
                [OutgoingMessage.Button("button.retry", data: "av:retry:\(avatarID.uuidString.lowercased())"),
                 OutgoingMessage.Button("button.delete", data: "av:del:\(avatarID.uuidString.lowercased())")],
            ], context: context, on: tx)
        }
        guard case .failed(_, let refunded) = outcome else { return }
        logger.warning("training failed", metadata: ["avatar": "\(avatarID)", "reason": "\(reasonKey)", "refunded": "\(refunded)"])
    }

    /// One message per (avatar, attempt, event).
    static func notify(_ avatar: Avatar, key: String, event: String, reasonKey: String? = nil, buttons: [[OutgoingMessage.Button]], context: PipelineContext, on connection: PostgresConnection) async throws {
        var arguments = ["name": avatar.name, "price": "\(avatar.trainingPrice ?? 0)"]
        if let reasonKey { arguments["reason"] = reasonKey }
        try await context.tell(avatar.userID, key, arguments, buttons: buttons,
                               uniqueKey: "training:\(avatar.id.uuidString.lowercased()):\(avatar.trainingAttempt):\(event)", on: connection)
    }
}
