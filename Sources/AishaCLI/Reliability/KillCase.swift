import Foundation
import Postgres
import Sandbox

/// Case 1: workers SIGKILLed at random moments while people go through the whole journey.
/// Every journey must still finish, no training or generation may reach FAL twice, no credit
/// may move twice, and no job may be lost or left dead.
struct KillCase: ReliabilityCase {
    static let name = "kill"
    static let title = "SIGKILL workers at random moments during every kind of job"

    func run(_ context: ReliabilityContext) async throws -> CaseReport {
        let users = context.quick ? 6 : 12, kills = context.quick ? 10 : 20
        let sandbox = Sandbox(fal: .init(trainingDuration: .seconds(2), generationDuration: .milliseconds(300)))
        let report = try await ReliabilityStack.run(adminURL: context.adminURL, migrations: context.migrations, workers: 2, sandbox: sandbox, logDirectory: context.logDirectory(Self.name)) { stack in
            var report = CaseReport(name: Self.name)
            let journeys = (0..<users).map { Journey(sandbox: sandbox, userID: 910_000 + Int64($0)) }
            let failures = Failures()
            let people = Task {
                await withTaskGroup(of: Void.self) { group in
                    for (index, journey) in journeys.enumerated() {
                        group.addTask {
                            try? await Task.sleep(for: .milliseconds(1500 * index))
                            do { try await journey.run() } catch { failures.add("\(error)") }
                        }
                    }
                }
            }
            // The killer: a random worker, at a random moment, 0.5–2.5 s apart; a replacement starts at once.
            var rng = SystemRandomNumberGenerator()
            var hitKinds: [String: Int] = [:], idleKills = 0
            try await Task.sleep(for: .seconds(2))
            for _ in 0..<kills {
                try await Task.sleep(for: .milliseconds(Int.random(in: 500...2500, using: &rng)))
                guard let victim = stack.workers.randomElement(using: &rng) else { break }
                let running = try await stack.database.query("SELECT kind FROM jobs WHERE state = 'running' AND locked_by LIKE \("%:\(victim):%")").map { try $0.decode(String.self, at: 0) }
                await stack.kill(worker: victim)
                try stack.startWorker()
                if running.isEmpty { idleKills += 1 }
                for kind in Set(running) { hitKinds[kind, default: 0] += 1 }
            }
            await people.value
            let quiet = try await stack.waitForQuiet(timeout: .seconds(120))

            let finished = users - failures.count
            let trainings = sandbox.fal.requests.filter { $0.model.contains("trainer") || $0.model.contains("training") }
            let generations = sandbox.fal.requests.filter { $0.model == "fal-ai/flux-lora" }
            let trainingDuplicates = trainings.count - Set(trainings.compactMap(\.webhookURL)).count
            let generationDuplicates = generations.count - Set(generations.compactMap(\.webhookURL)).count
            let jobs = try await stack.jobFigures()
            let wrongBalances = try await stack.count("SELECT count(*) FROM users WHERE balance <> 40")
            let ledgerRows = try await stack.count("SELECT count(*) FROM credit_ledger")
            let duplicateMessages = Self.duplicateMessages(sandbox, chats: journeys.map(\.user.id))

            report.line("\(users) people, each: /start → create → album of 10 → train → ready → generate 2 images; 2 workers")
            report.line("SIGKILLs: \(kills) (\(kills - idleKills) while the victim held jobs); job kinds killed mid-run: " +
                        hitKinds.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
            report.line("journeys finished: \(finished)/\(users); jobs: \(jobs.total) in all, \(jobs.retried) needed another attempt, \(jobs.unfinished) unfinished, \(jobs.dead) dead")
            report.line("FAL: \(sandbox.fal.uploadCount) ZIP uploads, \(trainings.count) trainings submitted (duplicates: \(trainingDuplicates)), \(generations.count) generations (duplicates: \(generationDuplicates))")
            report.line("credits: \(ledgerRows) ledger movements; users whose balance is not 150 − 100 − 2×5 = 40: \(wrongBalances); balance ≠ ledger sum: \(try await stack.ledgerMismatches())")
            report.line("messages the user saw twice (a send killed after Telegram took it, before its acknowledgement): \(duplicateMessages)")
            for failure in failures.all.prefix(5) { report.fail(failure) }
            report.check(quiet && jobs.unfinished == 0, "jobs still unfinished after 120 s: \(jobs.unfinished)")
            let dead = try await stack.deadJobs()
            report.check(jobs.dead == 0, "dead jobs: \(dead)")
            report.check(finished == users, "\(users - finished) journeys did not finish")
            report.check(trainingDuplicates == 0 && generationDuplicates == 0, "a paid FAL request was submitted twice")
            report.check(sandbox.fal.uploadCount == users, "ZIP uploads: \(sandbox.fal.uploadCount), trainings: \(users)")
            report.check(wrongBalances == 0 && ledgerRows == users * 3, "credits moved wrongly (ledger rows \(ledgerRows), expected \(users * 3))")
            report.check(kills - idleKills > 0, "no kill hit a running job")
            return report
        }
        return report
    }

    /// Bot messages (not edits) whose text appeared twice in a row in a chat.
    static func duplicateMessages(_ sandbox: Sandbox, chats: [Int64]) -> Int {
        chats.reduce(0) { total, chat in
            let texts = sandbox.telegram.messages(inChat: chat).filter { $0.fromBot && $0.mediaGroupID == nil }.map { $0.text ?? $0.caption ?? "" }
            return total + zip(texts, texts.dropFirst()).filter { $0 == $1 && !$0.isEmpty }.count
        }
    }
}
