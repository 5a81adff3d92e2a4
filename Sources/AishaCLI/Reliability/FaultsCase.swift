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
        var s3: S3Fault?
    }

    /// What happens to S3 as a scenario's training starts.
    enum S3Fault { case down, frozen }

    static let scenarios: [Scenario] = [
        .init(label: "FAL answers 503 twice", faults: [.serverError(503), .serverError(503)], outcome: "is ready", balance: 50),
        .init(label: "FAL answers after 3 s", faults: [.slowResponse(.seconds(3))], outcome: "is ready", balance: 50),
        .init(label: "the training ends in ERROR", faults: [.errorResult("Injected failure")], outcome: "credits were returned", balance: 150),
        .init(label: "the webhook is lost (reconciliation polls FAL)", faults: [.lostWebhook], outcome: "is ready", balance: 50),
        .init(label: "the webhook arrives twice", faults: [.duplicateWebhook], outcome: "is ready", balance: 50),
        .init(label: "the training never ends (timeout → cancel → refund)", faults: [.stuck], outcome: "credits were returned", balance: 150),
        .init(label: "S3 is down for 5 s as the training starts (connections refused and reset)", faults: [], outcome: "is ready", balance: 50, s3: .down),
        .init(label: "S3 hangs for 5 s as the training starts (SIGSTOP: connections accepted, never answered)", faults: [], outcome: "is ready", balance: 50, s3: .frozen),
    ]

    func run(_ context: ReliabilityContext) async throws -> CaseReport {
        let moto = try Self.motoPID(localDirectory: context.localDirectory)
        defer { kill(moto, SIGCONT) }
        let sandbox = Sandbox(fal: .init(trainingDuration: .seconds(1), generationDuration: .milliseconds(200), webhookRetryDelay: .milliseconds(200)))
        // The workers reach S3 through a gate the case can shut (a restart without losing moto's state).
        guard let upstream = ProcessInfo.processInfo.environment["MINIO_ENDPOINT"]?.split(separator: ":").last.flatMap({ Int($0) }) else {
            throw BenchError("MINIO_ENDPOINT is not set (source .local/env)")
        }
        let gate = try TCPGate(upstreamPort: upstream)
        defer { gate.shut() }
        let overrides = ["MINIO_ENDPOINT": "127.0.0.1:\(gate.port)", "AISHA_RECONCILE_TRAINING_AFTER_SECONDS": "4", "AISHA_TRAINING_TIMEOUT_SECONDS": "15",
                         "AISHA_RECONCILE_GENERATION_AFTER_SECONDS": "4", "AISHA_GENERATION_TIMEOUT_SECONDS": "15"]
        let report = try await ReliabilityStack.run(adminURL: context.adminURL, migrations: context.migrations, workers: 2, overrides: overrides, sandbox: sandbox,
                                       logDirectory: context.logDirectory(Self.name)) { stack in
            var report = CaseReport(name: Self.name)
            let scenarios = Self.scenarios
            let journeys = scenarios.indices.map { Journey(sandbox: sandbox, userID: 930_000 + Int64($0)) }
            // Everyone sends their album at once while S3 goes down for 5 s in the middle.
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
                    try await Self.outage(.down, gate: gate, moto: moto)
                }
                try await group.waitForAll()
            }
            let photos = try await stack.count("SELECT count(*) FROM avatar_photos")
            let retriedIngests = try await stack.count("SELECT count(*) FROM jobs WHERE kind = 'photo.ingest' AND jsonb_array_length(errors) > 0")
            report.line("\(journeys.count) people sent albums of 10 while S3 was down for 5 s: \(photos) of \(journeys.count * 10) photos stored, \(retriedIngests) ingests failed at least once and were retried")
            report.check(failures.count == 0 && photos == journeys.count * 10, "albums during the S3 outage: \(failures.all.prefix(3))")

            var faultCount = 1
            for (scenario, journey) in zip(scenarios, journeys) {
                sandbox.fal.inject(contentsOf: scenario.faults)
                faultCount += scenario.faults.count + (scenario.s3 == nil ? 0 : 1)
                let started = ContinuousClock.now
                var outcome = "ok"
                do {
                    if let fault = scenario.s3 {
                        async let outage: Void = Self.outage(fault, gate: gate, moto: moto)
                        try await journey.train(expect: scenario.outcome)
                        try await outage
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

    /// S3 unavailable for 5 s: down (the gate refuses and resets) or frozen (SIGSTOP: accepted, never answered).
    static func outage(_ fault: S3Fault, gate: TCPGate, moto: pid_t) async throws {
        switch fault {
        case .down: gate.shut()
        case .frozen: kill(moto, SIGSTOP)
        }
        try await Task.sleep(for: .seconds(5))
        switch fault {
        case .down: try gate.open()
        case .frozen: kill(moto, SIGCONT)
        }
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
