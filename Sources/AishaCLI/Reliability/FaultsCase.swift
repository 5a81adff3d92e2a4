import Foundation
import Postgres
import Sandbox

/// Case 3: the S3 server stops answering while photos and trainings move, and FAL misbehaves in
/// every way the Sandbox can: 5xx answers, slow answers, ERROR results, lost and duplicated
/// webhooks, a training that never ends. Each person must get an honest outcome — ready, or
/// failed with the credits back — and every refund must happen exactly once.
struct FaultsCase: ReliabilityCase {
    static let name = "faults"
    static let title = "S3 outages and FAL failures (5xx, slow, ERROR, lost and duplicate webhooks, stuck)"

    /// One person, one fault, the outcome they must see and the balance they must end with.
    struct Scenario {
        let label: String
        let faults: [SandboxFAL.Fault]
        let outcome: String
        let balance: Int
        var pauseS3 = false
    }

    static let scenarios: [Scenario] = [
        .init(label: "FAL answers 503 twice", faults: [.serverError(503), .serverError(503)], outcome: "is ready", balance: 50),
        .init(label: "FAL answers after 3 s", faults: [.slowResponse(.seconds(3))], outcome: "is ready", balance: 50),
        .init(label: "the training ends in ERROR", faults: [.errorResult("Injected failure")], outcome: "credits were returned", balance: 150),
        .init(label: "the webhook is lost (reconciliation polls FAL)", faults: [.lostWebhook], outcome: "is ready", balance: 50),
        .init(label: "the webhook arrives twice", faults: [.duplicateWebhook], outcome: "is ready", balance: 50),
        .init(label: "the training never ends (timeout → cancel → refund)", faults: [.stuck], outcome: "credits were returned", balance: 150),
        .init(label: "S3 stops answering for 5 s as the training starts", faults: [], outcome: "is ready", balance: 50, pauseS3: true),
    ]

    func run(_ context: ReliabilityContext) async throws -> CaseReport {
        let moto = try Self.motoPID(localDirectory: context.localDirectory)
        defer { kill(moto, SIGCONT) }
        let sandbox = Sandbox(fal: .init(trainingDuration: .seconds(1), generationDuration: .milliseconds(200), webhookRetryDelay: .milliseconds(200)))
        let overrides = ["AISHA_RECONCILE_TRAINING_AFTER_SECONDS": "4", "AISHA_TRAINING_TIMEOUT_SECONDS": "15",
                         "AISHA_RECONCILE_GENERATION_AFTER_SECONDS": "4", "AISHA_GENERATION_TIMEOUT_SECONDS": "15"]
        let report = try await ReliabilityStack.run(adminURL: context.adminURL, migrations: context.migrations, workers: 2, overrides: overrides, sandbox: sandbox,
                                       logDirectory: context.logDirectory(Self.name)) { stack in
            var report = CaseReport(name: Self.name)
            let scenarios = Self.scenarios
            let journeys = scenarios.indices.map { Journey(sandbox: sandbox, userID: 930_000 + Int64($0)) }
            // Everyone sends their album at once while S3 freezes for 5 s in the middle.
            let failures = Failures()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for journey in journeys {
                    group.addTask {
                        do {
                            try await journey.createAvatar(name: "Avatar \(journey.user.id)")
                            try await journey.sendPhotos(10)
                        } catch { failures.add("\(error)") }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(4))
                    kill(moto, SIGSTOP)
                    try await Task.sleep(for: .seconds(5))
                    kill(moto, SIGCONT)
                }
                try await group.waitForAll()
            }
            let photos = try await stack.count("SELECT count(*) FROM avatar_photos")
            report.line("\(journeys.count) people sent albums of 10 while S3 was frozen (SIGSTOP) for 5 s: \(photos) of \(journeys.count * 10) photos stored")
            report.check(failures.count == 0 && photos == journeys.count * 10, "albums during the S3 outage: \(failures.all.prefix(3))")

            var faultCount = 1
            for (scenario, journey) in zip(scenarios, journeys) {
                sandbox.fal.inject(contentsOf: scenario.faults)
                faultCount += scenario.faults.count + (scenario.pauseS3 ? 1 : 0)
                let started = ContinuousClock.now
                var outcome = "ok"
                do {
                    if scenario.pauseS3 {
                        async let pause: Void = { kill(moto, SIGSTOP); try? await Task.sleep(for: .seconds(5)); kill(moto, SIGCONT) }()
                        try await journey.train(expect: scenario.outcome)
                        await pause
                    } else {
                        try await journey.train(expect: scenario.outcome)
                    }
                } catch { outcome = "\(error)" }
                let balance = try await stack.count("SELECT balance FROM users WHERE id = \(journey.user.id)")
                let refunds = try await stack.count("SELECT count(*) FROM credit_ledger WHERE user_id = \(journey.user.id) AND reference LIKE 'refund:%'")
                let told = sandbox.telegram.messages(inChat: journey.user.id).filter { $0.fromBot && ($0.text ?? "").contains(scenario.outcome) }.count
                report.line("\(scenario.label): told “…\(scenario.outcome)…” \(told)× after \(String(format: "%.1f", BenchSupport.seconds(ContinuousClock.now - started))) s; balance \(balance), refunds \(refunds)")
                report.check(outcome == "ok", "\(scenario.label): \(outcome)")
                report.check(balance == scenario.balance, "\(scenario.label): balance \(balance), expected \(scenario.balance)")
                report.check(refunds == (scenario.balance == 150 ? 1 : 0), "\(scenario.label): \(refunds) refunds")
            }

            // A failed generation is refunded too.
            let generator = journeys[0]
            sandbox.fal.inject(.errorResult("Injected generation failure"))
            faultCount += 1
            var generation = "ok"
            do { try await generator.generate(images: 2, expect: "credits were returned") } catch { generation = "\(error)" }
            let generatorBalance = try await stack.count("SELECT balance FROM users WHERE id = \(generator.user.id)")
            report.line("a generation that ends in ERROR: \(generation == "ok" ? "the user was told and refunded" : generation); balance \(generatorBalance)")
            report.check(generation == "ok" && generatorBalance == 50, "generation refund: \(generation), balance \(generatorBalance)")

            let quiet = try await stack.waitForQuiet(timeout: .seconds(60))
            let jobs = try await stack.jobFigures()
            let trainings = sandbox.fal.requests.filter { $0.model != "fal-ai/flux-lora" }
            let duplicates = trainings.count - Set(trainings.compactMap(\.webhookURL)).count
            report.line("faults injected: \(faultCount); FAL trainings submitted: \(trainings.count) (duplicates \(duplicates)); jobs: \(jobs.total), \(jobs.retried) retried, \(jobs.dead) dead, \(jobs.unfinished) unfinished; balance ≠ ledger: \(try await stack.ledgerMismatches())")
            report.check(quiet, "jobs still unfinished: \(jobs.unfinished)")
            report.check(duplicates == 0, "a training was submitted twice")
            if !report.failures.isEmpty { for line in try await stack.diagnosis() { report.line("diagnosis: " + line) } }
            return report
        }
        return report
    }

    /// The local S3 server's process (deploy/local/s3.sh keeps its pid).
    static func motoPID(localDirectory: String) throws -> pid_t {
        let path = localDirectory + "/s3/pid"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, 0) == 0 else {
            throw BenchError("the local S3 server is not running (no live pid in \(path)); run make services-start")
        }
        return pid
    }
}
