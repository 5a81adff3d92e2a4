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
        // A job killed between marking a submission and recording it waits this long for FAL's webhook, then refunds.
        let overrides = ["AISHA_TRAINING_UNCONFIRMED_SECONDS": "20", "AISHA_GENERATION_UNCONFIRMED_SECONDS": "20"]
        let report = try await ReliabilityStack.run(adminURL: context.adminURL, migrations: context.migrations, workers: 2, overrides: overrides, sandbox: sandbox, logDirectory: context.logDirectory(Self.name)) { stack in
            var report = CaseReport(name: Self.name)
            let journeys = (0..<users).map { Journey(sandbox: sandbox, userID: 910_000 + Int64($0)) }
            let failures = Failures(), outcomes = Locked<[Int64: Journey.Outcome]>([:])
            let people = Task {
                await withTaskGroup(of: Void.self) { group in
                    for (index, journey) in journeys.enumerated() {
                        group.addTask {
                            try? await Task.sleep(for: .milliseconds(1500 * index))
                            do {
                                let outcome = try await journey.run(acceptRefunds: true)
                                outcomes.withLock { $0[journey.user.id] = outcome }
                            } catch { failures.add("\(error)") }
                        }
                    }
                }
            }
            // The killer: after a random pause, it watches for a worker in the middle of a job —
            // preferring the kinds hit least so far — and SIGKILLs it; a replacement starts at once.
            var hitKinds: [String: Int] = [:], idleKills = 0
            try await Task.sleep(for: .seconds(2))
            for _ in 0..<kills {
                try await Task.sleep(for: .milliseconds(Int.random(in: 300...1500)))
                var victim: pid_t?, running: [String] = []
                let watchUntil = ContinuousClock.now + .seconds(3)
                while victim == nil, ContinuousClock.now < watchUntil {
                    let rows = try await stack.database.query("""
                        SELECT kind, split_part(locked_by, ':', 2)::int FROM jobs
                        WHERE state = 'running' AND kind NOT IN ('jobs.prune', 'fal.reconcile')
                        """).map { (try $0.decode(String.self, at: 0), pid_t(try $0.decode(Int.self, at: 1))) }
                    let live = Set(stack.workers)
                    // For the first half of the watch only a kind hit least so far will do.
                    let fewest = Self.kinds.map { hitKinds[$0, default: 0] }.min() ?? 0
                    let choosy = ContinuousClock.now < watchUntil - .milliseconds(1500)
                    let candidates = rows.filter { live.contains($0.1) && (!choosy || hitKinds[$0.0, default: 0] == fewest) }
                    if let pick = candidates.min(by: { hitKinds[$0.0, default: 0] < hitKinds[$1.0, default: 0] }) {
                        victim = pick.1
                        running = rows.filter { $0.1 == pick.1 }.map(\.0)
                    } else {
                        try await Task.sleep(for: .milliseconds(5))
                    }
                }
                guard let target = victim ?? stack.workers.randomElement() else { break }
                await stack.kill(worker: target)
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
            // Each ending has one right balance and one right number of ledger movements.
            let ended = outcomes.withLock { $0 }
            func expected(_ outcome: Journey.Outcome) -> (balance: Int, movements: Int) {
                switch outcome {
                case .delivered: (150 - 100 - 10, 3)
                case .trainingRefunded: (150, 3)
                case .generationRefunded: (150 - 100, 4)
                }
            }
            var wrongBalances = 0
            for (user, outcome) in ended where try await stack.count("SELECT balance FROM users WHERE id = \(user)") != expected(outcome).balance { wrongBalances += 1 }
            let ledgerRows = try await stack.count("SELECT count(*) FROM credit_ledger")
            let expectedRows = ended.values.reduce(0) { $0 + expected($1).movements } + (users - ended.count) * 3
            let refunded = ended.values.filter { if case .delivered = $0 { false } else { true } }.count
            let duplicateMessages = Self.duplicateMessages(sandbox, chats: journeys.map(\.user.id))

            report.line("\(users) people, each: /start → create → album of 10 → train → ready → generate 2 images; 2 workers (lease 5 s)")
            report.line("SIGKILLs: \(kills) (\(kills - idleKills) while the victim held a job, seen running just before the kill); kinds held at those moments: " +
                        hitKinds.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
            report.line("journeys finished: \(finished)/\(users); jobs: \(jobs.total) in all, \(jobs.retried) needed another attempt, \(jobs.unfinished) unfinished, \(jobs.dead) dead")
            report.line("FAL: \(sandbox.fal.uploadCount) ZIP uploads, \(trainings.count) trainings submitted (duplicates: \(trainingDuplicates)), \(generations.count) generations (duplicates: \(generationDuplicates))")
            report.line("endings: \(ended.count - refunded) delivered, \(refunded) refunded after a kill left a submission unconfirmed (\(ended.values.filter { if case .trainingRefunded = $0 { true } else { false } }.count) trainings)")
            report.line("credits: \(ledgerRows) ledger movements (expected \(expectedRows)); users whose balance is not what their ending implies: \(wrongBalances); balance ≠ ledger sum: \(try await stack.ledgerMismatches())")
            report.line("messages the user saw twice (a send killed after Telegram took it, before its acknowledgement): \(duplicateMessages)")
            for failure in failures.all.prefix(5) { report.fail(failure) }
            report.check(quiet && jobs.unfinished == 0, "jobs still unfinished after 120 s: \(jobs.unfinished)")
            let dead = try await stack.deadJobs()
            report.check(jobs.dead == 0, "dead jobs: \(dead)")
            report.check(finished == users, "\(users - finished) journeys did not finish")
            report.check(trainingDuplicates == 0 && generationDuplicates == 0, "a paid FAL request was submitted twice")
            report.check(wrongBalances == 0 && ledgerRows == expectedRows, "credits moved wrongly (ledger rows \(ledgerRows), expected \(expectedRows))")
            report.check(kills - idleKills > 0, "no kill hit a running job")
            let missed = Self.kinds.filter { hitKinds[$0] == nil }
            if !missed.isEmpty { report.line("kinds no kill happened to catch this run: \(missed.joined(separator: ", ")) (the worker crash tests kill avatar.train at its two dangerous points every run)") }
            if !report.failures.isEmpty { for line in try await stack.diagnosis() { report.line("diagnosis: " + line) } }
            return report
        }
        return report
    }

    /// The job kinds a person's journey runs.
    static let kinds = ["telegram.update", "telegram.send", "photo.ingest", "avatar.train", "fal.result", "generation.run"]

    /// Bot messages (not edits) whose text appeared twice in a row in a chat.
    static func duplicateMessages(_ sandbox: Sandbox, chats: [Int64]) -> Int {
        chats.reduce(0) { total, chat in
            let texts = sandbox.telegram.messages(inChat: chat).filter { $0.fromBot && $0.mediaGroupID == nil }.map { $0.text ?? $0.caption ?? "" }
            return total + zip(texts, texts.dropFirst()).filter { $0 == $1 && !$0.isEmpty }.count
        }
    }
}
