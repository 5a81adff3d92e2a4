public import Foundation
public import JobQueue
public import Postgres

/// A generation row.
public struct Generation: Sendable, Equatable {
    public var id: UUID
    public var userID: Int64
    public var avatarID: UUID?
    public var chatID: Int64
    public var prompt: String
    public var aspectRatio: String
    public var imageCount: Int
    public var price: Int
    public var status: String
    public var falRequestID: String?
    public var submittedAt: Date?

    static let columns: PostgresQuery = "id, user_id, avatar_id, chat_id, prompt, aspect_ratio, image_count, price, status, fal_request_id, submitted_at"

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, at: 0)
        userID = try row.decode(Int64.self, at: 1)
        avatarID = try row.decode(UUID?.self, at: 2)
        chatID = try row.decode(Int64.self, at: 3)
        prompt = try row.decode(String.self, at: 4)
        aspectRatio = try row.decode(String.self, at: 5)
        imageCount = try row.decode(Int.self, at: 6)
        price = try row.decode(Int.self, at: 7)
        status = try row.decode(String.self, at: 8)
        falRequestID = try row.decode(String?.self, at: 9)
        submittedAt = try row.decode(Date?.self, at: 10)
    }
}

/// Generations: reserve (charge + row + job, atomically), submit, complete or fail with refund.
public struct GenerationStore: Sendable {
    public let database: PostgresClient

    public init(database: PostgresClient) { self.database = database }

    public enum Request: Sendable, Equatable {
        case started(id: UUID, balance: Int)
        case avatarNotReady
        case insufficientCredits(price: Int, balance: Int)
        case invalid
    }

    public static func runJob(_ id: UUID) -> JobRequest {
        JobRequest(kind: "generation.run", payload: Data(#"{"generation_id":"\#(id.uuidString.lowercased())"}"#.utf8), maxAttempts: 8, uniqueKey: "generation.run:\(id.uuidString.lowercased())")
    }

    /// Charges `count × imagePrice` and queues the generation, in one transaction. `id` makes
    /// a repeated request (a double tap) the same request.
    public func request(id: UUID = UUID(), userID: Int64, avatarID: UUID, chatID: Int64, prompt: String, aspectRatio: String, count: Int, settings: PipelineSettings) async throws -> Request {
        guard let trimmed = GenerationRules.validPrompt(prompt), (1...4).contains(count), ["1:1", "3:4", "4:3", "9:16", "16:9"].contains(aspectRatio) else { return .invalid }
        return try await database.withTransaction { tx in
            guard try await tx.query("SELECT 1 FROM avatars WHERE id = \(avatarID) AND user_id = \(userID) AND status = 'completed' FOR SHARE").count == 1 else { return .avatarNotReady }
            let price = count * settings.imagePrice
            let balance: Int
            switch try await CreditLedger.move(userID: userID, amount: -price, reference: "generation:\(id.uuidString.lowercased())", reason: "generation", on: tx) {
            case .applied(let after): balance = after
            case .alreadyApplied: return .started(id: id, balance: try await CreditLedger.balance(userID: userID, on: tx))
            case .insufficient: return .insufficientCredits(price: price, balance: try await CreditLedger.balance(userID: userID, on: tx))
            }
            try await tx.query("""
                INSERT INTO generations (id, user_id, avatar_id, chat_id, prompt, aspect_ratio, image_count, price)
                VALUES (\(id), \(userID), \(avatarID), \(chatID), \(trimmed), \(aspectRatio), \(count), \(price))
                """)
            try await JobQueue(database: database).enqueue(Self.runJob(id), on: tx)
            return .started(id: id, balance: balance)
        }
    }

    public func generation(_ id: UUID) async throws -> Generation? {
        try await database.query("SELECT \(Generation.columns) FROM generations WHERE id = \(id)").first.map(Generation.init(row:))
    }

    public func generation(requestID: String) async throws -> Generation? {
        try await database.query("SELECT \(Generation.columns) FROM generations WHERE fal_request_id = \(requestID)").first.map(Generation.init(row:))
    }

    /// Marks the moment before submitting (pending → pending with submitted_at); false if already marked.
    public func markSubmitting(_ id: UUID) async throws -> Bool {
        try await database.query("UPDATE generations SET submitted_at = now() WHERE id = \(id) AND status = 'pending' AND submitted_at IS NULL RETURNING id").count == 1
    }

    public func clearSubmitting(_ id: UUID) async throws {
        try await database.query("UPDATE generations SET submitted_at = NULL WHERE id = \(id) AND status = 'pending'")
    }

    @discardableResult
    public func recordSubmission(_ id: UUID, requestID: String) async throws -> Bool {
        try await database.query("""
            UPDATE generations SET fal_request_id = \(requestID), status = 'submitted', submitted_at = coalesce(submitted_at, now())
            WHERE id = \(id) AND status IN ('pending', 'submitted') AND (fal_request_id IS NULL OR fal_request_id = \(requestID))
            RETURNING id
            """).count == 1
    }

    /// Fails the generation and refunds it, once; false when it had already ended.
    /// Fails a pending or submitted generation and refunds it once; `then` runs in the same
    /// transaction when it applies (to tell the user).
    public func fail(_ id: UUID, error: String, then: (@Sendable (Generation, PostgresConnection) async throws -> Void)? = nil) async throws -> Generation? {
        try await database.withTransaction { tx in
            guard let row = try await tx.query("""
                UPDATE generations SET status = 'failed', error = \(error), completed_at = now()
                WHERE id = \(id) AND status IN ('pending', 'submitted') RETURNING \(Generation.columns)
                """).first else { return nil }
            let generation = try Generation(row: row)
            if generation.price > 0 {
                _ = try await CreditLedger.move(userID: generation.userID, amount: generation.price, reference: "refund:generation:\(id.uuidString.lowercased())", reason: "generation refund", on: tx)
            }
            try await then?(generation, tx)
            return generation
        }
    }
}
