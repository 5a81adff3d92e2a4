public import Foundation
public import JobQueue
public import Postgres

extension AvatarStore {
    public enum TrainingStart: Sendable, Equatable {
        /// Charged and queued: the `avatar.train` job will build the ZIP and submit.
        case started(attempt: Int, balance: Int)
        case alreadyTraining
        case notReady(AvatarStatus)
        case tooFewPhotos(have: Int, need: Int)
        case insufficientCredits(price: Int, balance: Int)
        case notFound
    }

    /// The job that prepares and submits training attempt `attempt`.
    public static func trainJob(avatarID: UUID, attempt: Int) -> JobRequest {
        JobRequest(kind: "avatar.train", payload: Data(#"{"avatar_id":"\#(avatarID.uuidString.lowercased())","attempt":\#(attempt)}"#.utf8),
                   maxAttempts: 8, uniqueKey: "avatar.train:\(avatarID.uuidString.lowercased()):\(attempt)")
    }

    /// Moves a ready avatar of `userID` to training, charges the price and enqueues the job —
    /// all in one transaction, so there is no charge without a job and no job without a charge.
    public func startTraining(avatarID: UUID, userID: Int64, settings: PipelineSettings) async throws -> TrainingStart {
        try await database.withTransaction { tx in
            guard let row = try await tx.query("SELECT status, photo_count, training_attempt FROM avatars WHERE id = \(avatarID) AND user_id = \(userID) FOR UPDATE").first else {
                return .notFound
            }
            let status = AvatarStatus(rawValue: try row.decode(String.self, at: 0)) ?? .failed
            let (count, previous) = (try row.decode(Int.self, at: 1), try row.decode(Int.self, at: 2))
            if status == .training { return .alreadyTraining }
            // A failed or cancelled avatar retries through ready.
            guard status == .ready || status == .failed || status == .cancelled else { return .notReady(status) }
            guard count >= settings.minimumPhotos else { return .tooFewPhotos(have: count, need: settings.minimumPhotos) }
            let attempt = previous + 1
            let price = settings.trainingPrice
            let balance: Int
            switch try await CreditLedger.move(userID: userID, amount: -price, reference: "training:\(avatarID.uuidString.lowercased()):\(attempt)", reason: "training", on: tx) {
            case .applied(let after): balance = after
            case .alreadyApplied: balance = try await CreditLedger.balance(userID: userID, on: tx)
            case .insufficient: return .insufficientCredits(price: price, balance: try await CreditLedger.balance(userID: userID, on: tx))
            }
            if status != .ready { try await tx.query("UPDATE avatars SET status = 'ready' WHERE id = \(avatarID)") }
            try await tx.query("""
                UPDATE avatars SET status = 'training', training_attempt = \(attempt), training_price = \(price), fal_request_id = NULL,
                    images_data_url = NULL, submit_started_at = NULL, submitted_at = NULL, lora_url = NULL, config_url = NULL, error = NULL
                WHERE id = \(avatarID)
                """)
            try await JobQueue(database: database).enqueue(Self.trainJob(avatarID: avatarID, attempt: attempt), on: tx)
            return .started(attempt: attempt, balance: balance)
        }
    }

    /// What a (possibly retried) `avatar.train` job finds.
    public struct TrainingProgress: Sendable, Equatable {
        public var status: AvatarStatus
        public var attempt: Int
        public var imagesDataURL: String?
        public var submitStartedAt: Date?
        public var requestID: String?
        public var trainingPrice: Int?
    }

    public func trainingProgress(avatarID: UUID) async throws -> TrainingProgress? {
        try await database.query("SELECT status, training_attempt, images_data_url, submit_started_at, fal_request_id, training_price FROM avatars WHERE id = \(avatarID)").first.map { row in
            TrainingProgress(status: AvatarStatus(rawValue: try row.decode(String.self, at: 0)) ?? .failed, attempt: try row.decode(Int.self, at: 1),
                             imagesDataURL: try row.decode(String?.self, at: 2), submitStartedAt: try row.decode(Date?.self, at: 3),
                             requestID: try row.decode(String?.self, at: 4), trainingPrice: try row.decode(Int?.self, at: 5))
        }
    }

    /// Remembers the uploaded ZIP so a retry does not build and upload it again.
    public func recordUpload(avatarID: UUID, attempt: Int, url: String) async throws {
        try await database.query("UPDATE avatars SET images_data_url = \(url) WHERE id = \(avatarID) AND training_attempt = \(attempt) AND status = 'training'")
    }

    /// Marks the moment before the submit call; returns false when the attempt is no longer
    /// current or was already marked (then the caller must not submit).
    public func markSubmitting(avatarID: UUID, attempt: Int, model: String, input: Data) async throws -> Bool {
        try await database.query("""
            UPDATE avatars SET submit_started_at = now(), training_model = \(model), training_input = \(String(decoding: input, as: UTF8.self))::jsonb
            WHERE id = \(avatarID) AND training_attempt = \(attempt) AND status = 'training' AND submit_started_at IS NULL
            RETURNING id
            """).count == 1
    }

    /// Clears the submit mark after FAL answered that it did not queue the request (5xx, 429).
    public func clearSubmitting(avatarID: UUID, attempt: Int) async throws {
        try await database.query("UPDATE avatars SET submit_started_at = NULL WHERE id = \(avatarID) AND training_attempt = \(attempt) AND status = 'training' AND fal_request_id IS NULL")
    }

    /// Records FAL's request id for the attempt (also used when a webhook reveals it).
    @discardableResult
    public func recordSubmission(avatarID: UUID, attempt: Int, requestID: String) async throws -> Bool {
        try await database.query("""
            UPDATE avatars SET fal_request_id = \(requestID), submitted_at = coalesce(submitted_at, now())
            WHERE id = \(avatarID) AND training_attempt = \(attempt) AND status = 'training' AND (fal_request_id IS NULL OR fal_request_id = \(requestID))
            RETURNING id
            """).count == 1
    }

    public enum TrainingOutcome: Sendable, Equatable {
        case completed(avatar: Avatar)
        case failed(avatar: Avatar, refunded: Int)
        /// Already applied, or the avatar left training (cancelled, deleted): nothing changed.
        case unchanged
    }

    /// Training OK: store the LoRA, complete, and make it the main avatar if the user has none.
    /// What must happen in the same transaction as a change, when the change applies — telling
    /// the user (an outbox row), so the message exists exactly when the change does.
    public typealias InTransaction = @Sendable (Avatar, PostgresConnection) async throws -> Void

    public func completeTraining(avatarID: UUID, attempt: Int, loraURL: String, configURL: String?, then: InTransaction? = nil) async throws -> TrainingOutcome {
        try await database.withTransaction { tx in
            guard let user = try await tx.query("SELECT user_id FROM avatars WHERE id = \(avatarID)").first?.decode(Int64.self, at: 0) else { return .unchanged }
            // The user's row lock serialises "is there a main avatar?" between their avatars.
            try await tx.query("SELECT 1 FROM users WHERE id = \(user) FOR UPDATE")
            let rows = try await tx.query("""
                UPDATE avatars SET status = 'completed', lora_url = \(loraURL), config_url = \(configURL), completed_at = now(), error = NULL,
                    is_main = NOT EXISTS (SELECT 1 FROM avatars WHERE user_id = \(user) AND is_main)
                WHERE id = \(avatarID) AND training_attempt = \(attempt) AND status = 'training'
                RETURNING \(Avatar.columns)
                """)
            guard let row = rows.first else { return .unchanged }
            let avatar = try Avatar(row: row)
            try await then?(avatar, tx)
            return .completed(avatar: avatar)
        }
    }

    /// Training failed (or was cancelled): record why, refund the attempt once.
    public func failTraining(avatarID: UUID, attempt: Int, error: String, status: AvatarStatus = .failed, then: InTransaction? = nil) async throws -> TrainingOutcome {
        precondition(status == .failed || status == .cancelled)
        return try await database.withTransaction { tx in
            let rows = try await tx.query("""
                UPDATE avatars SET status = \(status.rawValue), error = \(error)
                WHERE id = \(avatarID) AND training_attempt = \(attempt) AND status = 'training'
                RETURNING \(Avatar.columns)
                """)
            guard let row = rows.first else { return .unchanged }
            let avatar = try Avatar(row: row)
            let price = avatar.trainingPrice ?? 0
            if price > 0 {
                _ = try await CreditLedger.move(userID: avatar.userID, amount: price, reference: "refund:training:\(avatarID.uuidString.lowercased()):\(attempt)", reason: "training refund", on: tx)
            }
            try await then?(avatar, tx)
            return .failed(avatar: avatar, refunded: price)
        }
    }
}
