public import Foundation
public import Postgres

/// Domain errors that are bugs or races, not user mistakes.
public enum AvatarError: Error, Equatable, Sendable {
    case unknownUser(Int64)
}

/// An avatar row.
public struct Avatar: Sendable, Equatable {
    public var id: UUID
    public var userID: Int64
    public var name: String
    public var kind: AvatarKind
    public var gender: Gender
    public var status: AvatarStatus
    public var isMain: Bool
    public var triggerPhrase: String
    public var photoCount: Int
    public var trainingAttempt: Int
    public var trainingPrice: Int?
    public var falRequestID: String?
    public var loraURL: String?
    public var configURL: String?
    public var error: String?
    public var createdAt: Date
    public var submittedAt: Date?

    public static let columns: PostgresQuery = """
        id, user_id, name, kind, gender, status, is_main, trigger_phrase, photo_count, training_attempt, training_price,
        fal_request_id, lora_url, config_url, error, created_at, submitted_at
        """

    /// An avatar built in memory (tests of the pure rules and screens).
    public init(id: UUID = UUID(), userID: Int64, name: String, kind: AvatarKind = .portrait, gender: Gender = .female, status: AvatarStatus,
                isMain: Bool = false, photoCount: Int = 0, createdAt: Date = Date()) {
        self.id = id
        self.userID = userID
        self.name = name
        self.kind = kind
        self.gender = gender
        self.status = status
        self.isMain = isMain
        self.triggerPhrase = "TOK"
        self.photoCount = photoCount
        self.trainingAttempt = 1
        self.createdAt = createdAt
        self.loraURL = status == .completed ? "https://example.invalid/lora.safetensors" : nil
    }

    public init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, at: 0)
        userID = try row.decode(Int64.self, at: 1)
        name = try row.decode(String.self, at: 2)
        kind = AvatarKind(rawValue: try row.decode(String.self, at: 3)) ?? .portrait
        gender = Gender(rawValue: try row.decode(String.self, at: 4)) ?? .other
        status = AvatarStatus(rawValue: try row.decode(String.self, at: 5)) ?? .failed
        isMain = try row.decode(Bool.self, at: 6)
        triggerPhrase = try row.decode(String.self, at: 7)
        photoCount = try row.decode(Int.self, at: 8)
        trainingAttempt = try row.decode(Int.self, at: 9)
        trainingPrice = try row.decode(Int?.self, at: 10)
        falRequestID = try row.decode(String?.self, at: 11)
        loraURL = try row.decode(String?.self, at: 12)
        configURL = try row.decode(String?.self, at: 13)
        error = try row.decode(String?.self, at: 14)
        createdAt = try row.decode(Date.self, at: 15)
        submittedAt = try row.decode(Date?.self, at: 16)
    }
}

/// A stored photo.
public struct AvatarPhoto: Sendable, Equatable {
    public var id: UUID
    public var objectKey: String
    public var format: String
    public var sizeBytes: Int
}

/// The avatar tables' reads and writes. Every write that races is one guarded statement or a
/// transaction holding the avatar's row lock.
public struct AvatarStore: Sendable {
    public let database: PostgresClient

    public init(database: PostgresClient) { self.database = database }

    /// Registers a user on first contact with the welcome credits (once, by reference).
    @discardableResult
    public func ensureUser(id: Int64, firstName: String, language: String, welcomeCredits: Int) async throws -> Bool {
        try await database.withTransaction { tx in
            let created = try await tx.query("""
                INSERT INTO users (id, first_name, language) VALUES (\(id), \(firstName), \(language == "ru" ? "ru" : "en"))
                ON CONFLICT (id) DO NOTHING RETURNING id
                """).count == 1
            if created, welcomeCredits > 0 {
                _ = try await CreditLedger.move(userID: id, amount: welcomeCredits, reference: "welcome:\(id)", reason: "welcome", on: tx)
            }
            return created
        }
    }

    public func createAvatar(id: UUID = UUID(), userID: Int64, name: String, kind: AvatarKind, gender: Gender) async throws -> Avatar {
        try await database.withConnection { try await Self.createAvatar(id: id, userID: userID, name: name, kind: kind, gender: gender, on: $0) }
    }

    /// Creates a draft avatar on `connection` (inside the caller's transaction); a repeat with
    /// the same id returns the existing row.
    public static func createAvatar(id: UUID, userID: Int64, name: String, kind: AvatarKind, gender: Gender, on connection: PostgresConnection) async throws -> Avatar {
        let trigger = AvatarRules.triggerPhrase(avatarID: id, kind: kind, gender: gender)
        try await connection.query("""
            INSERT INTO avatars (id, user_id, name, kind, gender, trigger_phrase) VALUES (\(id), \(userID), \(name), \(kind.rawValue), \(gender.rawValue), \(trigger))
            ON CONFLICT (id) DO NOTHING
            """)
        return try Avatar(row: try await connection.query("SELECT \(Avatar.columns) FROM avatars WHERE id = \(id)")[0])
    }

    public func avatar(_ id: UUID) async throws -> Avatar? {
        try await database.query("SELECT \(Avatar.columns) FROM avatars WHERE id = \(id)").first.map(Avatar.init(row:))
    }

    public func avatar(requestID: String) async throws -> Avatar? {
        try await database.query("SELECT \(Avatar.columns) FROM avatars WHERE fal_request_id = \(requestID)").first.map(Avatar.init(row:))
    }

    public func photos(of avatarID: UUID) async throws -> [AvatarPhoto] {
        try await database.query("SELECT id, object_key, format, size_bytes FROM avatar_photos WHERE avatar_id = \(avatarID) ORDER BY created_at, id").map { row in
            AvatarPhoto(id: try row.decode(UUID.self, at: 0), objectKey: try row.decode(String.self, at: 1), format: try row.decode(String.self, at: 2), sizeBytes: try row.decode(Int.self, at: 3))
        }
    }

    /// Was a photo with this Telegram `file_unique_id` already decided for the avatar?
    public func upload(avatarID: UUID, fileUniqueID: String) async throws -> (accepted: Bool, reason: String?)? {
        try await database.query("SELECT outcome = 'accepted', reason FROM photo_uploads WHERE avatar_id = \(avatarID) AND file_unique_id = \(fileUniqueID)").first.map {
            (try $0.decode(Bool.self, at: 0), try $0.decode(String?.self, at: 1))
        }
    }

    /// Records a refusal (first decision wins).
    public func reject(avatarID: UUID, fileUniqueID: String, reason: PhotoRejection) async throws {
        try await database.query("""
            INSERT INTO photo_uploads (avatar_id, file_unique_id, outcome, reason) VALUES (\(avatarID), \(fileUniqueID), 'rejected', \(reason.rawValue))
            ON CONFLICT DO NOTHING
            """)
    }

    public enum PhotoAdded: Sendable, Equatable {
        case accepted(count: Int, status: AvatarStatus)
        case rejected(PhotoRejection)
    }

    /// Adds a validated, stored photo. Holding the avatar's row lock, it checks the status and
    /// the cap (the CHECK on photo_count backs it up), refuses duplicates by content or Telegram
    /// id, and moves a draft to ready at the minimum — so 25 concurrent album photos leave 20.
    public func addPhoto(avatarID: UUID, photoID: UUID, objectKey: String, sha256: String, fileUniqueID: String,
                         format: String, size: Int, width: Int, height: Int, settings: PipelineSettings,
                         then: (@Sendable (_ count: Int, PostgresConnection) async throws -> Void)? = nil) async throws -> PhotoAdded {
        try await database.withTransaction { tx in
            let locked = try await tx.query("SELECT status, photo_count FROM avatars WHERE id = \(avatarID) FOR UPDATE")
            let outcome: PhotoAdded
            if let row = locked.first {
                let status = AvatarStatus(rawValue: try row.decode(String.self, at: 0)) ?? .failed
                let count = try row.decode(Int.self, at: 1)
                if !status.acceptsPhotos {
                    outcome = .rejected(.avatarClosed)
                } else if count >= settings.maximumPhotos {
                    outcome = .rejected(.limitReached)
                } else {
                    let inserted = try await tx.query("""
                        INSERT INTO avatar_photos (id, avatar_id, object_key, sha256, file_unique_id, format, size_bytes, width, height)
                        VALUES (\(photoID), \(avatarID), \(objectKey), \(sha256), \(fileUniqueID), \(format), \(size), \(width), \(height))
                        ON CONFLICT DO NOTHING RETURNING id
                        """).count == 1
                    if inserted {
                        let next = count + 1
                        let newStatus: AvatarStatus = status == .draft && next >= settings.minimumPhotos ? .ready : status
                        try await tx.query("UPDATE avatars SET photo_count = \(next), status = \(newStatus.rawValue) WHERE id = \(avatarID)")
                        // Under the avatar's row lock: what `then` queues is ordered as the counts are.
                        try await then?(next, tx)
                        outcome = .accepted(count: next, status: newStatus)
                    } else {
                        outcome = .rejected(.duplicate)
                    }
                }
            } else {
                outcome = .rejected(.avatarClosed)  // deleted meanwhile
            }
            if locked.first != nil {
                let (kind, reason): (String, String?) = if case .rejected(let why) = outcome { ("rejected", why.rawValue) } else { ("accepted", nil) }
                try await tx.query("""
                    INSERT INTO photo_uploads (avatar_id, file_unique_id, outcome, reason) VALUES (\(avatarID), \(fileUniqueID), \(kind), \(reason))
                    ON CONFLICT DO NOTHING
                    """)
            }
            return outcome
        }
    }

    /// Removes one photo of a draft or ready avatar of `userID`: the row, the count (ready goes
    /// back to draft below the minimum) and its upload decision (so it may be sent again).
    /// Returns the object key to delete from storage, or nil when nothing was removed.
    public func removePhoto(avatarID: UUID, photoID: UUID, userID: Int64, settings: PipelineSettings) async throws -> String? {
        try await database.withTransaction { tx in
            guard let row = try await tx.query("SELECT status, photo_count FROM avatars WHERE id = \(avatarID) AND user_id = \(userID) FOR UPDATE").first,
                  let status = AvatarStatus(rawValue: try row.decode(String.self, at: 0)), status.acceptsPhotos else { return nil }
            guard let removed = try await tx.query("DELETE FROM avatar_photos WHERE id = \(photoID) AND avatar_id = \(avatarID) RETURNING object_key, file_unique_id").first else { return nil }
            let (key, fileUniqueID) = try removed.decode(String.self, String.self)
            let count = try row.decode(Int.self, at: 1) - 1
            let next: AvatarStatus = status == .ready && count < settings.minimumPhotos ? .draft : status
            try await tx.query("UPDATE avatars SET photo_count = \(count), status = \(next.rawValue) WHERE id = \(avatarID)")
            try await tx.query("DELETE FROM photo_uploads WHERE avatar_id = \(avatarID) AND file_unique_id = \(fileUniqueID)")
            return key
        }
    }
}
