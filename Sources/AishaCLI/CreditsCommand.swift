import ArgumentParser
import Avatars
import Foundation
import Logging
import Postgres

/// `aisha credits …`: an operator's view of and hand on a user's credits (through the ledger).
struct CreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "credits", abstract: "Show or grant a user's credits.", subcommands: [Grant.self, Show.self])

    static func client() throws -> PostgresClient {
        guard let url = ProcessInfo.processInfo.environment["AISHA_DATABASE_URL"] else { throw ValidationError("set AISHA_DATABASE_URL") }
        return try PostgresClient(url: url, maxConnections: 1, logger: Logger(label: "aisha.credits"))
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add (or, negative, remove) credits, recorded in the ledger with a reason.")
        @Argument(help: "Telegram user id.") var user: Int64
        @Argument(help: "Credits; to remove, pass a negative amount after `--`: `aisha credits grant 42 --reason fix -- -10`.") var amount: Int
        @Option(help: "Why (shown in the ledger).") var reason: String
        @Option(help: "A unique reference, so running the same grant twice applies it once (default: a fresh one).") var reference: String?

        func run() async throws {
            guard amount != 0 else { throw ValidationError("amount must not be 0") }
            let client = try CreditsCommand.client()
            defer { client.shutdown() }
            guard try await client.query("SELECT 1 FROM users WHERE id = \(user)").count == 1 else { throw ValidationError("no user \(user) (users appear when they first write to the bot)") }
            let reference = reference ?? "grant:\(UUID().uuidString.lowercased())"
            let result = try await client.withTransaction { tx in
                try await CreditLedger.move(userID: user, amount: amount, reference: reference, reason: "grant: " + reason, on: tx)
            }
            switch result {
            case .applied(let balance): print("applied \(amount > 0 ? "+" : "")\(amount) (\(reason)); balance \(balance); reference \(reference)")
            case .alreadyApplied: print("already applied earlier under reference \(reference); nothing changed")
            case .insufficient: throw ValidationError("that would make the balance negative; nothing changed")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Balance and the last ledger movements.")
        @Argument(help: "Telegram user id.") var user: Int64
        @Option(help: "Movements to list.") var limit = 20

        func run() async throws {
            let client = try CreditsCommand.client()
            defer { client.shutdown() }
            guard let balance = try await client.query("SELECT balance FROM users WHERE id = \(user)").first?.decode(Int.self, at: 0) else {
                throw ValidationError("no user \(user)")
            }
            print("user \(user): balance \(balance)")
            for row in try await client.query("SELECT amount, reason, reference, created_at FROM credit_ledger WHERE user_id = \(user) ORDER BY id DESC LIMIT \(limit)") {
                let (amount, reason, reference, at) = try row.decode(Int.self, String.self, String.self, Date.self)
                print("  \(ISO8601DateFormatter().string(from: at))  \(amount > 0 ? "+" : "")\(amount)  \(reason)  \(reference)")
            }
        }
    }
}
