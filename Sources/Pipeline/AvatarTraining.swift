public import Avatars
import BlockingIO
import Curl
import FAL
public import Foundation
import JobQueue
public import Logging
import Messages
import ObjectStorage
import Postgres
import Zip

/// `avatar.train`: the avatar's photos from MinIO → a ZIP → FAL storage → the trainer, with our
/// webhook. It never submits twice: the ZIP's URL, a mark set just before the submit call and
/// FAL's request id are recorded as they happen, and a retried or rescued job resumes from them.
/// Threads for libzip's blocking work (two trainings can pack at once per worker process).
let zipThreads = BlockingThreadPool(name: "zip", threadCount: 2)

public enum AvatarTraining {
    public static let kind = "avatar.train"

    struct Payload: Codable {
        var avatar_id: UUID
        var attempt: Int
    }

    static func handler(_ context: PipelineContext) -> JobHandler {
        JobHandler(kind: kind, timeout: .seconds(900)) { job, logger in
            let payload = try job.decode(Payload.self)
            try await run(avatarID: payload.avatar_id, attempt: payload.attempt, context: context, logger: logger)
        }
    }

    /// Our reference in the webhook URL, so a result can be matched even if recording its
    /// request id never happened.
    public static func reference(avatarID: UUID, attempt: Int) -> String { "train:\(avatarID.uuidString.lowercased()):\(attempt)" }

    public static func run(avatarID: UUID, attempt: Int, context: PipelineContext, logger: Logger) async throws {
        let store = context.store
        guard let progress = try await store.trainingProgress(avatarID: avatarID), progress.status == .training, progress.attempt == attempt else { return }
        if progress.requestID != nil { return }  // submitted and recorded: nothing left to do
        if let marked = progress.submitStartedAt {
            // A previous run may have reached FAL and died before recording the answer.
            // Submitting again could train (and pay) twice: wait for the webhook to tell us.
            let waitFor = context.settings.trainingUnconfirmedAfter
            if Date().timeIntervalSince(marked) < waitFor {
                throw JobFailure.retryAt(Date().addingTimeInterval(min(60, max(1, waitFor / 10))), reason: "submit outcome unknown; waiting for FAL's webhook")
            }
            try await FALResults.failTraining(avatarID: avatarID, attempt: attempt, reasonKey: "training.reason.unconfirmed", context: context, logger: logger)
            return
        }
        guard let avatar = try await store.avatar(avatarID) else { return }

        let imagesURL: String
        if let uploaded = progress.imagesDataURL {
            imagesURL = uploaded
        } else {
            imagesURL = try await uploadArchive(of: avatar, context: context, logger: logger)
            try await store.recordUpload(avatarID: avatarID, attempt: attempt, url: imagesURL)
            CrashPoints.hit("train:after-upload")
        }

        let model: String
        let typed: any Encodable & Sendable
        switch avatar.kind {
        case .portrait:
            model = FALModel.portraitTrainer
            typed = PortraitTrainerInput(imagesDataURL: imagesURL, triggerPhrase: avatar.triggerPhrase, steps: context.settings.portraitSteps)
        case .style:
            model = FALModel.fastTraining
            typed = FastTrainingInput(imagesDataURL: imagesURL, triggerWord: avatar.triggerPhrase, isStyle: true, steps: context.settings.styleSteps)
        }
        let input = try JSONEncoder().encode(typed)  // recorded as sent
        guard try await store.markSubmitting(avatarID: avatarID, attempt: attempt, model: model, input: input) else { return }
        let webhook = context.settings.falWebhookURL + (context.settings.falWebhookURL.contains("?") ? "&" : "?") + "ref=" + reference(avatarID: avatarID, attempt: attempt)
        let handle: FALClient.QueueHandle
        do {
            handle = try await context.fal.submit(model: model, input: typed, webhookURL: webhook)
        } catch let error as FALError where error.status >= 500 || error.status == 429 || error.status == 408 {
            // FAL answered and did not queue it: safe to try again later.
            try await store.clearSubmitting(avatarID: avatarID, attempt: attempt)
            throw error
        } catch let error as FALError {
            logger.warning("FAL refused the training", metadata: ["avatar": "\(avatarID)", "status": "\(error.status)"])
            try await FALResults.failTraining(avatarID: avatarID, attempt: attempt, reasonKey: "training.reason.service", context: context, logger: logger)
            return
        }
        // A transport error above leaves the mark: FAL may have queued it; the webhook will say.
        CrashPoints.hit("train:after-submit")
        try await store.recordSubmission(avatarID: avatarID, attempt: attempt, requestID: handle.requestID)
        logger.info("training submitted", metadata: ["avatar": "\(avatarID)", "fal.request_id": "\(handle.requestID)", "model": "\(model)"])
    }

    /// Downloads the photos (bounded parallelism, straight to files), packs them as stored
    /// entries and uploads the ZIP to FAL storage. Memory stays flat whatever the photos weigh:
    /// every byte goes disk → disk → network.
    static func uploadArchive(of avatar: Avatar, context: PipelineContext, logger: Logger) async throws -> String {
        let photos = try await context.store.photos(of: avatar.id)
        guard photos.count >= context.settings.minimumPhotos else { throw JobFailure.permanent("only \(photos.count) photos") }
        let url = try await uploadArchive(photos: photos.map { ($0.objectKey, $0.format) }, context: context)
        logger.info("training archive uploaded", metadata: ["avatar": "\(avatar.id)", "photos": "\(photos.count)"])
        return url
    }

    /// The training preparation on its own (also what `aisha bench pipeline` times): stored
    /// photos (key, format) → parallel downloads to files → a ZIP of stored entries → FAL storage.
    /// The archive is written while the downloads run: libzip packs each photo, in order, as
    /// soon as its download is complete (hence a modest download concurrency: with all 20 at
    /// once they share the bandwidth and all finish at the end, leaving nothing to overlap).
    public static func uploadArchive(photos: [(key: String, format: String)], context: PipelineContext) async throws -> String {
        let folder = try context.scratchFolder("train")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let storage = context.storage, bucket = context.settings.photoBucket, concurrency = context.settings.downloadConcurrency
        let files = photos.indices.map { PendingFile(path: folder + "/\($0)") }
        let names = photos.enumerated().map { index, photo in String(format: "photo_%02d.%@", index + 1, photo.format == "jpeg" ? "jpg" : photo.format) }
        let archive = folder + "/photos.zip"
        // libzip reads and writes every byte in zip_close, blocking while it waits for a photo:
        // it runs on a thread of its own, never on Swift's cooperative pool.
        async let packed: Void = zipThreads.run {
            var writer = try ZipWriter(path: archive)
            for (file, name) in zip(files, names) { try writer.addFile(file, as: name) }
            try writer.finish()
        }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                var running = 0
                for (photo, file) in zip(photos, files) {
                    if running >= concurrency { try await group.next(); running -= 1 }
                    running += 1
                    group.addTask {
                        try await storage.get(bucket: bucket, key: photo.key, toFile: file.path)
                        file.finish()
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            // Unblock the packer (it stops at the first photo that will never come) before leaving its scope.
            for file in files { file.fail() }
            _ = try? await packed
            throw error
        }
        try await packed
        return try await context.fal.upload(fileAt: archive, contentType: "application/zip", fileName: "photos.zip")
    }

    /// Cancels a running training at FAL (best effort: FAL may have finished meanwhile) and
    /// fails the attempt as cancelled, refunding it once. Returns the refunded avatar, or nil
    /// when it was not training.
    public static func cancel(avatarID: UUID, reason: String, context: PipelineContext, then: AvatarStore.InTransaction? = nil) async throws -> (avatar: Avatar, refunded: Int)? {
        guard let avatar = try await context.store.avatar(avatarID), avatar.status == .training else { return nil }
        if let requestID = avatar.falRequestID {
            let model = try await context.database.query("SELECT training_model FROM avatars WHERE id = \(avatarID)").first?.decode(String?.self, at: 0) ?? FALModel.portraitTrainer
            _ = try? await context.fal.cancel(context.fal.handle(model: model, requestID: requestID))
        }
        guard case .failed(let cancelled, let refunded) = try await context.store.failTraining(avatarID: avatarID, attempt: avatar.trainingAttempt, error: reason, status: .cancelled, then: then) else { return nil }
        return (cancelled, refunded)
    }
}
