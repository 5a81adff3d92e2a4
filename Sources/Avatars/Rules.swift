public import Foundation
public import Imaging

/// An avatar's lifecycle (migration 0003 refuses any other move with a trigger).
public enum AvatarStatus: String, Sendable, Codable, CaseIterable {
    case draft, ready, training, completed, failed, cancelled

    /// draft ⇄ ready → training → completed | failed | cancelled; failed and cancelled may retry.
    public func canMove(to next: AvatarStatus) -> Bool {
        switch (self, next) {
        case (.draft, .ready), (.ready, .draft), (.ready, .training),
             (.training, .completed), (.training, .failed), (.training, .cancelled),
             (.failed, .ready), (.cancelled, .ready):
            true
        default:
            false
        }
    }

    /// Photos may be added or removed only before training.
    public var acceptsPhotos: Bool { self == .draft || self == .ready }
}

public enum AvatarKind: String, Sendable, Codable, CaseIterable { case portrait, style }
public enum Gender: String, Sendable, Codable, CaseIterable { case female, male, other }

/// The product's tunables (configuration, not code): prices, photo limits, training presets.
public struct PipelineSettings: Sendable {
    public var photoBucket = "avatars"
    public var generatedBucket = "generated"
    public var minimumPhotos = 10
    public var maximumPhotos = 20
    /// The shorter side of an accepted photo, in pixels.
    public var minimumShortSide = 512
    /// Largest accepted photo (Telegram lets bots download 20 MB).
    public var maximumPhotoBytes = 20_000_000
    public var trainingPrice = 100
    public var imagePrice = 5
    public var welcomeCredits = 150
    /// Trainer steps (the portrait trainer's default is 2500; the fast trainer has none).
    public var portraitSteps = 2500
    public var styleSteps = 1000
    /// Photos downloaded at once while building a training ZIP. Modest on purpose: the archive
    /// packs each photo as its download ends, which overlaps only if they do not all end together.
    public var downloadConcurrency = 8
    /// A training whose webhook has not come this long after submission is polled at FAL.
    public var reconcileTrainingAfter: TimeInterval = 20 * 60
    /// A training still unfinished this long after submission is cancelled and refunded.
    public var trainingTimeout: TimeInterval = 3 * 3600
    /// The same for generations (they take seconds, not minutes).
    public var reconcileGenerationAfter: TimeInterval = 5 * 60
    public var generationTimeout: TimeInterval = 30 * 60
    /// A job that died between marking a submission and recording FAL's answer cannot tell
    /// whether FAL got the request (FAL has no idempotency keys), so it never submits again: it
    /// waits this long for the webhook (whose `ref` names the attempt) and then fails and refunds.
    public var trainingUnconfirmedAfter: TimeInterval = 30 * 60
    public var generationUnconfirmedAfter: TimeInterval = 10 * 60
    /// How often reconciliation runs.
    public var reconcileEvery: Duration = .seconds(60)
    /// Our public webhook URL for FAL (`https://…/fal/webhook`).
    public var falWebhookURL: String

    public init(falWebhookURL: String) { self.falWebhookURL = falWebhookURL }
}

/// Why a photo was refused; each is a key of the message catalogue.
public enum PhotoRejection: String, Error, Sendable, Codable, Equatable {
    case notAnImage = "photo.rejected.not_image"
    case tooSmall = "photo.rejected.too_small"
    case tooLarge = "photo.rejected.too_large"
    case damaged = "photo.rejected.damaged"
    case duplicate = "photo.rejected.duplicate"
    case limitReached = "photo.rejected.limit"
    case avatarClosed = "photo.rejected.closed"
    case unavailable = "photo.rejected.unavailable"
}

public enum PhotoRules {
    /// Checks a downloaded file by its bytes (never its name): a JPEG, PNG or WebP whose shorter
    /// side reaches the minimum and whose size is within the limit.
    public static func check(header: ImageHeader?, complete: Bool, size: Int, settings: PipelineSettings) -> Result<ImageHeader, PhotoRejection> {
        guard size <= settings.maximumPhotoBytes else { return .failure(.tooLarge) }
        guard let header else { return .failure(.notAnImage) }
        guard complete else { return .failure(.damaged) }
        guard min(header.width, header.height) >= settings.minimumShortSide else { return .failure(.tooSmall) }
        return .success(header)
    }

    /// `{user_id}/{avatar_id}/{photo_uuid}.jpg`, the layout the design fixes.
    public static func objectKey(userID: Int64, avatarID: UUID, photoID: UUID) -> String {
        "\(userID)/\(avatarID.uuidString.lowercased())/\(photoID.uuidString.lowercased()).jpg"
    }
}

public enum GenerationRules {
    /// A prompt of 3–1000 characters after trimming, without control characters other than line
    /// breaks and tabs: they mean nothing to the model, and a NUL cannot be stored in a chat's
    /// state (jsonb).
    public static func validPrompt(_ raw: String) -> String? {
        let prompt = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        let control = prompt.unicodeScalars.contains { $0.properties.generalCategory == .control && !"\n\r\t".unicodeScalars.contains($0) }
        guard (3...1000).contains(prompt.count), !control else { return nil }
        return prompt
    }
}

public enum AvatarRules {
    /// A name of 2–40 characters after trimming, without control characters.
    public static func validName(_ raw: String) -> String? {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (2...40).contains(name.count), !name.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) else { return nil }
        return name
    }

    /// The avatar's own trigger: a rare token derived from its id (so two avatars never share
    /// one), followed by the subject for portraits, e.g. `aisha7k2qpx woman`.
    public static func triggerPhrase(avatarID: UUID, kind: AvatarKind, gender: Gender) -> String {
        let alphabet = Array("abcdefghjkmnpqrstuvwxyz23456789")
        let bytes = withUnsafeBytes(of: avatarID.uuid) { Array($0) }
        let token = "aisha" + String(bytes.prefix(6).map { alphabet[Int($0) % alphabet.count] })
        switch kind {
        case .style: return token
        case .portrait: return token + " " + (gender == .female ? "woman" : gender == .male ? "man" : "person")
        }
    }
}
