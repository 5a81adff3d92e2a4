public import Avatars
public import Foundation
import Imaging
public import JobQueue
public import Logging
import Messages
import ObjectStorage
import Postgres
import Signing
import Telegram

/// `photo.ingest`: one photo (or image document) a user sent for an avatar → Telegram → checks
/// → MinIO → a row, or a refusal with a reason the bot shows.
public enum PhotoIngest {
    public static let kind = "photo.ingest"

    public struct Payload: Codable, Sendable, Equatable {
        public var userID: Int64
        public var avatarID: UUID
        public var fileID: String
        public var fileUniqueID: String
        public var fileSize: Int?

        public init(userID: Int64, avatarID: UUID, fileID: String, fileUniqueID: String, fileSize: Int?) {
            self.userID = userID
            self.avatarID = avatarID
            self.fileID = fileID
            self.fileUniqueID = fileUniqueID
            self.fileSize = fileSize
        }
    }

    /// One job per (avatar, Telegram file): a redelivered or repeated photo is one job.
    public static func job(_ payload: Payload) throws -> JobRequest {
        try JobRequest(kind: kind, json: payload, maxAttempts: 8, uniqueKey: "photo:\(payload.avatarID.uuidString.lowercased()):\(payload.fileUniqueID)")
    }

    /// The photo's id follows from (avatar, Telegram file): a retried job writes the same object
    /// key, so a crash between upload and insert leaves no orphan.
    static func photoID(avatarID: UUID, fileUniqueID: String) -> UUID {
        var bytes = SHA256.hash(Array("\(avatarID.uuidString.lowercased()):\(fileUniqueID)".utf8)).prefix(16).map { $0 }
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // RFC 4122 layout, name-based
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    static func handler(_ context: PipelineContext) -> JobHandler {
        JobHandler(kind: kind, timeout: .seconds(120)) { job, logger in
            try await run(try job.decode(Payload.self), context: context, logger: logger)
        }
    }

    public enum Outcome: Sendable, Equatable {
        case accepted(count: Int, status: AvatarStatus)
        case rejected(PhotoRejection)
        case alreadyDecided
    }

    @discardableResult
    public static func run(_ payload: Payload, context: PipelineContext, logger: Logger) async throws -> Outcome {
        let store = context.store
        let photoID = photoID(avatarID: payload.avatarID, fileUniqueID: payload.fileUniqueID)
        let key = PhotoRules.objectKey(userID: payload.userID, avatarID: payload.avatarID, photoID: photoID)
        if let decided = try await store.upload(avatarID: payload.avatarID, fileUniqueID: payload.fileUniqueID) {
            // A rerun after a crash between a refusal and what follows it: finish the clean-up and
            // tell the user (keyed, so never twice). An acceptance queued its progress message in
            // its own transaction.
            if !decided.accepted {
                try await removeUnlessKept(key, context: context)
                if let reason = decided.reason.flatMap(PhotoRejection.init(rawValue:)) { try await notify(payload, reason, context: context) }
            }
            return .alreadyDecided
        }
        guard let avatar = try await store.avatar(payload.avatarID), avatar.userID == payload.userID, avatar.status.acceptsPhotos else {
            return try await reject(payload, .avatarClosed, context: context)
        }
        if let size = payload.fileSize, size > context.settings.maximumPhotoBytes { return try await reject(payload, .tooLarge, context: context) }

        let folder = try context.scratchFolder("photo")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/original"
        do {
            let file = try await context.telegram.getFile(fileID: payload.fileID)
            try await context.telegram.download(file, to: path)
        } catch let error as TelegramError where !error.isTransient {
            return try await reject(payload, error.description.contains("too big") ? .tooLarge : .unavailable, context: context)
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let header: ImageHeader
        let parsed = ImageHeader.parse(bytes)
        let complete = parsed.map { ImageHeader.isComplete(bytes, format: $0.format) } ?? false
        switch PhotoRules.check(header: parsed, complete: complete, size: bytes.count, settings: context.settings) {
        case .failure(let reason): return try await reject(payload, reason, context: context)
        case .success(let checked): header = checked
        }
        _ = try await context.storage.put(bucket: context.settings.photoBucket, key: key, fileAt: path, contentType: header.contentType)
        let added = try await store.addPhoto(
            avatarID: payload.avatarID, photoID: photoID, objectKey: key, sha256: SHA256.hexDigest(bytes), fileUniqueID: payload.fileUniqueID,
            format: header.format.rawValue, size: bytes.count, width: header.width, height: header.height, settings: context.settings
        ) { count, tx in
            // Queued in the photo's transaction, under the avatar's lock: progress messages are
            // ordered as their counts, so coalescing keeps the latest (the reliability suite once
            // saw "9 of 20" outlive "10 of 20" when two photos' messages were queued out of order).
            try await progress(payload, count: count, context: context, on: tx)
        }
        switch added {
        case .accepted(let count, let status):
            logger.debug("photo accepted", metadata: ["avatar": "\(payload.avatarID)", "count": "\(count)"])
            return .accepted(count: count, status: status)
        case .rejected(let reason):
            // Not ours to keep (a duplicate by content, the cap, a closed avatar): remove what we stored.
            try await removeUnlessKept(key, context: context)
            try await notify(payload, reason, context: context)
            return .rejected(reason)
        }
    }

    /// The avatar's one progress message, edited in place: count, a bar, and from the minimum
    /// on the "Start training" button with price and balance. Queued per accepted photo and
    /// coalesced, so an album costs one or two edits, not twenty.
    private static func progress(_ payload: Payload, count: Int, context: PipelineContext, on connection: PostgresConnection) async throws {
        let settings = context.settings
        let balance = try await connection.query("SELECT balance FROM users WHERE id = \(payload.userID)").first?.decode(Int.self, at: 0) ?? 0
        let bar = String(repeating: "▓", count: count) + String(repeating: "░", count: max(0, settings.maximumPhotos - count))
        let arguments = ["count": "\(count)", "min": "\(settings.minimumPhotos)", "max": "\(settings.maximumPhotos)", "bar": bar,
                         "price": "\(settings.trainingPrice)", "balance": "\(balance)"]
        let id = payload.avatarID.uuidString.lowercased()
        let ready = count >= settings.minimumPhotos
        var buttons: [[OutgoingMessage.Button]] = ready ? [[.init("train.start", data: "train:\(id)")]] : []
        buttons.append([.init("photos.mine", data: "ph:list:\(id)"), .init("photos.cancel_draft", data: "av:del:\(id)")])
        try await context.tell(payload.userID, ready ? "photos.progress.ready" : "photos.progress", arguments, buttons: buttons,
                               tag: "progress:\(id)", coalesce: true, uniqueKey: "progress:\(id):\(count)", on: connection)
    }

    private static func removeUnlessKept(_ key: String, context: PipelineContext) async throws {
        let kept = try await context.database.query("SELECT 1 FROM avatar_photos WHERE object_key = \(key)").count > 0
        if !kept { try await context.storage.delete(bucket: context.settings.photoBucket, key: key) }
    }

    private static func reject(_ payload: Payload, _ reason: PhotoRejection, context: PipelineContext) async throws -> Outcome {
        try await context.store.reject(avatarID: payload.avatarID, fileUniqueID: payload.fileUniqueID, reason: reason)
        try await notify(payload, reason, context: context)
        return .rejected(reason)
    }

    /// The refusal's reason, in the user's language.
    private static func notify(_ payload: Payload, _ reason: PhotoRejection, context: PipelineContext) async throws {
        try await context.tell(payload.userID, reason.rawValue, ["min": "\(context.settings.minimumShortSide)", "max": "\(context.settings.maximumPhotos)"],
                               uniqueKey: "photo:\(payload.avatarID.uuidString.lowercased()):\(payload.fileUniqueID)")
    }
}
