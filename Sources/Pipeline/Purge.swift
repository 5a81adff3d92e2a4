public import Foundation
public import JobQueue
public import Logging
import Avatars
import FAL
import ObjectStorage
import Postgres

/// `avatar.purge` and `user.purge`: delete rows and every stored object they own. Objects go
/// first, found by key prefix (so nothing is orphaned even if rows were half-written), then the
/// rows; both steps are idempotent, so a retried job finishes the work.
public enum Purge {
    public static let avatarKind = "avatar.purge"
    public static let userKind = "user.purge"

    struct AvatarPayload: Codable { var user_id: Int64; var avatar_id: UUID }
    struct UserPayload: Codable { var user_id: Int64 }

    public static func avatarJob(userID: Int64, avatarID: UUID) throws -> JobRequest {
        try JobRequest(kind: avatarKind, json: AvatarPayload(user_id: userID, avatar_id: avatarID), uniqueKey: "purge:avatar:\(avatarID.uuidString.lowercased())")
    }

    public static func userJob(userID: Int64) throws -> JobRequest {
        try JobRequest(kind: userKind, json: UserPayload(user_id: userID), uniqueKey: "purge:user:\(userID):\(Int(Date().timeIntervalSince1970))")
    }

    static func handlers(_ context: PipelineContext) -> [JobHandler] {
        [
            JobHandler(kind: avatarKind, timeout: .seconds(300)) { job, logger in
                let payload = try job.decode(AvatarPayload.self)
                try await avatar(payload.avatar_id, userID: payload.user_id, context: context, logger: logger)
            },
            JobHandler(kind: userKind, timeout: .seconds(600)) { job, logger in
                try await user(try job.decode(UserPayload.self).user_id, context: context, logger: logger)
            },
        ]
    }

    /// Deletes one avatar: a running training is cancelled at FAL and refunded first; its photos
    /// go from storage; its rows go. Images generated with it stay in the user's gallery.
    public static func avatar(_ avatarID: UUID, userID: Int64, context: PipelineContext, logger: Logger) async throws {
        if let avatar = try await context.store.avatar(avatarID) {
            guard avatar.userID == userID else { throw JobFailure.permanent("avatar belongs to another user") }
            if avatar.status == .training { _ = try await AvatarTraining.cancel(avatarID: avatarID, reason: "deleted", context: context) }
        }
        let removed = try await deletePrefix("\(userID)/\(avatarID.uuidString.lowercased())/", bucket: context.settings.photoBucket, context: context)
        try await context.database.query("DELETE FROM avatars WHERE id = \(avatarID) AND user_id = \(userID)")
        logger.info("avatar purged", metadata: ["avatar": "\(avatarID)", "objects": "\(removed)"])
    }

    /// "Delete my data": every avatar (trainings cancelled and refunded on the way), every photo
    /// and generated image, then the user's rows — ledger, generations, state — by cascade.
    public static func user(_ userID: Int64, context: PipelineContext, logger: Logger) async throws {
        let avatars = try await context.database.query("SELECT id FROM avatars WHERE user_id = \(userID)").map { try $0.decode(UUID.self, at: 0) }
        for avatarID in avatars { try await avatar(avatarID, userID: userID, context: context, logger: logger) }
        let photos = try await deletePrefix("\(userID)/", bucket: context.settings.photoBucket, context: context)
        let images = try await deletePrefix("\(userID)/", bucket: context.settings.generatedBucket, context: context)
        try await context.database.query("DELETE FROM users WHERE id = \(userID)")
        logger.info("user purged", metadata: ["user": "\(userID)", "avatars": "\(avatars.count)", "objects": "\(photos + images)"])
    }

    static func deletePrefix(_ prefix: String, bucket: String, context: PipelineContext) async throws -> Int {
        let keys = try await context.storage.list(bucket: bucket, prefix: prefix).map(\.key)
        guard !keys.isEmpty else { return 0 }
        let failed = try await context.storage.delete(bucket: bucket, keys: keys)
        guard failed.isEmpty else { throw JobFailure.retryAt(Date().addingTimeInterval(30), reason: "\(failed.count) objects not deleted yet") }
        return keys.count
    }
}
