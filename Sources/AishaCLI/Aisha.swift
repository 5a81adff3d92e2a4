import ArgumentParser

@main
struct Aisha: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aisha",
        abstract: "Operate Aisha: migrations and (in later releases) jobs, credits, webhooks, sandbox and benchmarks.",
        subcommands: [MigrateCommand.self, JobsCommand.self, BenchCommand.self]
    )
}
