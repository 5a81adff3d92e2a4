import ArgumentParser

@main
struct Aisha: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aisha",
        abstract: "Operate Aisha: migrations, jobs, the Sandbox and benchmarks.",
        subcommands: [MigrateCommand.self, JobsCommand.self, CreditsCommand.self, TelegramCommand.self, SandboxCommand.self, BenchCommand.self, ReliabilityCommand.self]
    )
}
