import ArgumentParser
import Foundation
import JobQueue
import Logging
import Postgres

/// `aisha jobs …`: look at and steer the job queue.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "Inspect and steer the job queue.",
        subcommands: [Stats.self, List.self, Show.self, Retry.self, Cancel.self]
    )

    struct Options: ParsableArguments {
        @Option(help: "PostgreSQL URL or conninfo (default: $AISHA_DATABASE_URL).")
        var databaseURL: String?

        func queue() throws -> (JobQueue, PostgresClient) {
            guard let url = databaseURL ?? ProcessInfo.processInfo.environment["AISHA_DATABASE_URL"] else {
                throw ValidationError("no database: pass --database-url or set AISHA_DATABASE_URL")
            }
            let client = try PostgresClient(url: url, maxConnections: 2, logger: Logger(label: "aisha.jobs"))
            return (JobQueue(database: client), client)
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Depth by kind and state, age of the oldest due job, dead jobs.")
        @OptionGroup var options: Options

        func run() async throws {
            let (queue, client) = try options.queue()
            defer { client.shutdown() }
            let stats = try await queue.statistics()
            print("kind".padding(toLength: 28, withPad: " ", startingAt: 0) + "state".padding(toLength: 12, withPad: " ", startingAt: 0) + "count")
            for row in stats.counts {
                print(row.kind.padding(toLength: 28, withPad: " ", startingAt: 0) + row.state.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0) + "\(row.count)")
            }
            print("oldest due job waiting: \(stats.oldestAvailableAge)")
            print("dead: \(stats.dead)   running with an expired lease: \(stats.expiredLeases)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The newest jobs (no payloads).")
        @OptionGroup var options: Options
        @Option(help: "available, running, completed, dead or cancelled.") var state: String?
        @Option(help: "Only this kind.") var kind: String?
        @Option(help: "How many.") var limit = 50

        func run() async throws {
            let jobState = try state.map { value -> JobState in
                guard let parsed = JobState(rawValue: value) else { throw ValidationError("unknown state \(value)") }
                return parsed
            }
            let (queue, client) = try options.queue()
            defer { client.shutdown() }
            for job in try await queue.list(state: jobState, kind: kind, limit: limit) {
                print("\(job.id)\t\(job.kind)\t\(job.state.rawValue)\tattempt \(job.attempt)/\(job.maxAttempts)\trun_at \(job.runAt)\(job.serialKey.map { "\tserial \($0)" } ?? "")")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One job with its payload and every attempt's error.")
        @OptionGroup var options: Options
        @Argument var id: Int64

        func run() async throws {
            let (queue, client) = try options.queue()
            defer { client.shutdown() }
            guard let job = try await queue.job(id: id) else { throw ValidationError("no job \(id)") }
            print("""
                id          \(job.id)
                kind        \(job.kind)
                state       \(job.state.rawValue)
                attempt     \(job.attempt) of \(job.maxAttempts)
                priority    \(job.priority)
                run_at      \(job.runAt)
                created_at  \(job.createdAt)
                finished_at \(job.finishedAt.map { "\($0)" } ?? "-")
                unique_key  \(job.uniqueKey ?? "-")
                serial_key  \(job.serialKey ?? "-")
                locked_by   \(job.lockedBy ?? "-")
                payload     \(job.payload)
                errors      \(job.errors)
                """)
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a dead or cancelled job again, with fresh attempts.")
        @OptionGroup var options: Options
        @Argument var id: Int64

        func run() async throws {
            let (queue, client) = try options.queue()
            defer { client.shutdown() }
            guard try await queue.retry(id: id) else { throw ValidationError("job \(id) is not dead or cancelled") }
            print("job \(id) is available again")
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a job that has not started.")
        @OptionGroup var options: Options
        @Argument var id: Int64

        func run() async throws {
            let (queue, client) = try options.queue()
            defer { client.shutdown() }
            guard try await queue.cancel(id: id) else { throw ValidationError("job \(id) is not waiting (running or finished jobs cannot be cancelled)") }
            print("job \(id) cancelled")
        }
    }
}
