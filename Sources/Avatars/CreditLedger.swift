public import Postgres

/// Integer credits. Every movement is one statement that inserts the ledger row (unique
/// reference: a repeat does nothing) and moves the balance (a CHECK keeps it ≥ 0), so a
/// movement can neither apply twice nor overdraw, whatever runs concurrently.
public enum CreditLedger {
    public enum Movement: Sendable, Equatable {
        /// Applied; the balance after it.
        case applied(balance: Int)
        /// A movement with this reference was applied before: nothing changed.
        case alreadyApplied
        /// It would make the balance negative: nothing changed.
        case insufficient
    }

    /// Moves `amount` (negative: a charge) for `userID` under `reference`, inside the caller's
    /// transaction (`connection` must be in one: the movement commits with what it pays for).
    public static func move(userID: Int64, amount: Int, reference: String, reason: String, on connection: PostgresConnection) async throws -> Movement {
        precondition(amount != 0, "a movement of zero credits")
        do {
            // A savepoint, so a refused charge does not abort the caller's transaction.
            try await connection.query("SAVEPOINT credit_move")
            let row = try await connection.query("""
                WITH entry AS (
                    INSERT INTO credit_ledger (user_id, amount, reference, reason) VALUES (\(userID), \(amount), \(reference), \(reason))
                    ON CONFLICT (reference) DO NOTHING
                    RETURNING id
                ), moved AS (
                    UPDATE users SET balance = balance + \(amount) WHERE id = \(userID) AND EXISTS (SELECT 1 FROM entry)
                    RETURNING balance
                )
                SELECT (SELECT count(*) FROM entry)::int, (SELECT balance FROM moved)
                """)[0]
            try await connection.query("RELEASE SAVEPOINT credit_move")
            let (inserted, balance) = try row.decode(Int.self, Int?.self)
            guard inserted == 1 else { return .alreadyApplied }
            guard let balance else { throw AvatarError.unknownUser(userID) }
            return .applied(balance: balance)
        } catch let error as PostgresError where error.sqlState == "23514" {
            try await connection.query("ROLLBACK TO SAVEPOINT credit_move")
            return .insufficient
        }
    }

    /// The balance.
    public static func balance(userID: Int64, on connection: PostgresConnection) async throws -> Int {
        try await connection.query("SELECT balance FROM users WHERE id = \(userID)").first?.decode(Int.self, at: 0) ?? 0
    }
}
