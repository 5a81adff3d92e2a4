import Avatars
import Curl
import FAL
public import Foundation
import JobQueue
public import Logging
import Messages
import ObjectStorage
import Postgres

/// `generation.run`, and the generation half of `fal.result`: submit `fal-ai/flux-lora` with the
/// avatar's LoRA and trigger phrase; on the result copy every image into our storage, record
/// it, and send it to the chat; on failure refund. Same never-twice rules as training.
public enum Generations {
    public static let kind = "generation.run"

    struct Payload: Codable { var generation_id: UUID }

    static func runHandler(_ context: PipelineContext) -> JobHandler {
        JobHandler(kind: kind, timeout: .seconds(120)) { job, logger in
            try await submit(try job.decode(Payload.self).generation_id, context: context, logger: logger)
        }
    }

    public static func reference(_ id: UUID) -> String { "gen:\(id.uuidString.lowercased())" }

    /// The prompt as sent: the avatar's trigger phrase leads, unless the user already wrote it.
    public static func prompt(_ text: String, trigger: String) -> String {
        text.localizedCaseInsensitiveContains(trigger) ? text : "\(trigger), \(text)"
    }

    public static func submit(_ id: UUID, context: PipelineContext, logger: Logger) async throws {
        let store = GenerationStore(database: context.database)
        guard let generation = try await store.generation(id), generation.status == "pending" else { return }
        if let marked = generation.submittedAt {
            // Died between the mark and recording FAL's answer: never submit twice (see PipelineSettings).
            let waitFor = context.settings.generationUnconfirmedAfter
            if Date().timeIntervalSince(marked) < waitFor {
                throw JobFailure.retryAt(Date().addingTimeInterval(min(30, max(1, waitFor / 10))), reason: "submit outcome unknown; waiting for FAL's webhook")
            }
            try await fail(id, reasonKey: "generation.reason.unconfirmed", context: context, logger: logger)
            return
        }
        guard let avatarID = generation.avatarID, let avatar = try await context.store.avatar(avatarID), avatar.status == .completed, let lora = avatar.loraURL else {
            try await fail(id, reasonKey: "generation.reason.avatar_gone", context: context, logger: logger)
            return
        }
        let input = try FluxLoraInput(prompt: prompt(generation.prompt, trigger: avatar.triggerPhrase), lora: .init(path: lora),
                                      aspectRatio: AspectRatio(rawValue: generation.aspectRatio) ?? .square, count: generation.imageCount)
        guard try await store.markSubmitting(id) else { return }
        let webhook = context.settings.falWebhookURL + (context.settings.falWebhookURL.contains("?") ? "&" : "?") + "ref=" + reference(id)
        do {
            let handle = try await context.fal.submit(model: FALModel.fluxLora, input: input, webhookURL: webhook)
            try await store.recordSubmission(id, requestID: handle.requestID)
        } catch let error as FALError where error.status >= 500 || error.status == 429 || error.status == 408 {
            try await store.clearSubmitting(id)
            throw error
        } catch let error as FALError {
            logger.warning("FAL refused the generation", metadata: ["generation": "\(id)", "status": "\(error.status)"])
            try await fail(id, reasonKey: "generation.reason.service", context: context, logger: logger)
        }
    }

    /// Applies a result to the generation it belongs to; false when there is none.
    static func apply(_ result: FALWebhookPayload, ref: String?, context: PipelineContext, logger: Logger) async throws -> Bool {
        let store = GenerationStore(database: context.database)
        var generation = try await store.generation(requestID: result.requestID)
        if generation == nil, let ref, ref.hasPrefix("gen:"), let id = UUID(uuidString: String(ref.dropFirst(4))), try await store.recordSubmission(id, requestID: result.requestID) {
            generation = try await store.generation(id)
        }
        guard let generation else { return false }
        guard generation.status == "submitted" else { return true }
        guard result.status == .ok, let payload = result.payload, let output = try? JSONDecoder().decode(FluxLoraOutput.self, from: JSONEncoder().encode(payload)),
              !output.images.isEmpty else {
            try await fail(generation.id, reasonKey: "generation.reason.service", context: context, logger: logger)
            return true
        }
        // Copy every image into our storage first (FAL's URLs are public and expire): the
        // keys follow from the generation, so a retry overwrites rather than duplicates.
        let folder = try context.scratchFolder("generation")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let http = CurlClient()
        var stored: [(id: UUID, key: String, width: Int, height: Int)] = []
        for (position, image) in output.images.prefix(generation.imageCount).enumerated() {
            let path = folder + "/\(position)"
            let response = try await http.execute(CurlRequest(.get, url: image.url, destination: .file(path: path), timeout: .seconds(60)))
            guard response.isSuccess else { throw JobFailure.retryAt(Date().addingTimeInterval(10), reason: "image download HTTP \(response.status)") }
            let key = "\(generation.userID)/\(generation.id.uuidString.lowercased())/\(position + 1).jpg"
            _ = try await context.storage.put(bucket: context.settings.generatedBucket, key: key, fileAt: path, contentType: image.contentType ?? "image/jpeg")
            stored.append((Self.imageID(generation.id, position), key, image.width ?? 0, image.height ?? 0))
        }
        let completed = try await context.database.withTransaction { tx -> Bool in
            guard try await tx.query("UPDATE generations SET status = 'completed', completed_at = now(), seed = \(output.seed.map { String($0) })::numeric WHERE id = \(generation.id) AND status = 'submitted' RETURNING id").count == 1 else { return false }
            for (position, image) in stored.enumerated() {
                try await tx.query("""
                    INSERT INTO generated_images (id, generation_id, user_id, position, object_key, width, height)
                    VALUES (\(image.id), \(generation.id), \(generation.userID), \(position + 1), \(image.key), \(image.width), \(image.height))
                    ON CONFLICT DO NOTHING
                    """)
            }
            let language = try await context.language(of: generation.userID, on: tx)
            let catalog = Catalog.shared
            let photos = stored.map { OutgoingMessage.Photo(bucket: context.settings.generatedBucket, key: $0.key, imageID: $0.id) }
            let id = generation.id.uuidString.lowercased()
            let buttons: [[OutgoingMessage.Button]] = [[
                .init(catalog.text("button.again", language), data: "gen:again:\(id)"),
                .init(catalog.text("button.favourite", language), data: "gen:fav:\(id)"),
                .init(catalog.text("button.prompt", language), data: "gen:prompt:\(id)"),
            ]]
            let caption = catalog.text("generation.done", language, ["count": "\(stored.count)"])
            if photos.count == 1 {
                try await Outbox.send(.init(chatID: generation.chatID, text: caption, buttons: buttons, photos: photos), uniqueKey: "generation:\(id):photos", on: tx, queue: context.queue)
            } else {
                try await Outbox.send(.init(chatID: generation.chatID, text: caption, photos: photos), uniqueKey: "generation:\(id):photos", on: tx, queue: context.queue)
                try await Outbox.send(.init(chatID: generation.chatID, text: catalog.text("generation.next", language), buttons: buttons), uniqueKey: "generation:\(id):buttons", on: tx, queue: context.queue)
            }
            return true
        }
        if completed { logger.info("generation completed", metadata: ["generation": "\(generation.id)", "images": "\(stored.count)"]) }
        return true
    }

    static func imageID(_ generation: UUID, _ position: Int) -> UUID {
        var bytes = withUnsafeBytes(of: generation.uuid) { Array($0) }
        bytes[15] ^= UInt8(truncatingIfNeeded: position + 1)
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    static func fail(_ id: UUID, reasonKey: String, context: PipelineContext, logger: Logger) async throws {
        // The message is queued in the refund's transaction: a crash cannot leave one without the other.
        guard try await GenerationStore(database: context.database).fail(id, error: reasonKey, then: { generation, tx in
            try await context.tell(generation.userID, chatID: generation.chatID, "generation.failed", ["reason": reasonKey, "price": "\(generation.price)"],
                                   uniqueKey: "generation:\(id.uuidString.lowercased()):failed", on: tx)
        }) != nil else { return }
        logger.warning("generation failed", metadata: ["generation": "\(id)", "reason": "\(reasonKey)"])
    }
}
