import Curl
import FAL
import Foundation
import RateLimit
import Postgres
import Sandbox
import Synchronization

/// Case 4: hostile and broken input at volume on both webhooks, with real users mixed in.
/// Every bad request must get its 4xx and store nothing; odd-but-valid Telegram updates must
/// be stored and handled without a dead job; the real users must still get their replies.
struct BadInputCase: ReliabilityCase {
    static let name = "bad-input"
    static let title = "100,000 malformed, oversized, forged and replayed webhooks, with real users mixed in"

    /// What a request is and the status it must get.
    enum Kind: String, CaseIterable {
        case tgWrongSecret = "telegram: wrong secret", tgNoSecret = "telegram: no secret", tgGarbage = "telegram: not JSON"
        case tgTruncated = "telegram: truncated JSON", tgNoUpdateID = "telegram: no update_id", tgOversized = "telegram: over 1 MiB"
        case tgReplay = "telegram: replayed update", tgOdd = "telegram: odd but valid update"
        case falNoHeaders = "fal: no signature headers", falBadSignature = "fal: wrong signature", falStale = "fal: stale timestamp"
        case falTampered = "fal: body changed after signing", falReplay = "fal: replayed signed webhook", falOversized = "fal: over 1 MiB"

        var expected: Int {
            switch self {
            case .tgWrongSecret, .tgNoSecret, .falNoHeaders, .falBadSignature, .falStale, .falTampered: 401
            case .tgGarbage, .tgTruncated, .tgNoUpdateID: 400
            case .tgOversized, .falOversized: 413
            case .tgReplay, .tgOdd, .falReplay: 200
            }
        }
    }

    func run(_ context: ReliabilityContext) async throws -> CaseReport {
        let total = context.quick ? 20_000 : 100_000, goodUsers = 200
        let sandbox = Sandbox(telegram: .init(perChatLimit: .init(count: 100, per: 1, burst: 100), globalLimit: .init(count: 100_000, per: 1, burst: 100_000)))
        let report = try await ReliabilityStack.run(adminURL: context.adminURL, migrations: context.migrations, workers: 1, overrides: ["AISHA_TELEGRAM_GLOBAL_PER_SECOND": "100000"],
                                       sandbox: sandbox, logDirectory: context.logDirectory(Self.name)) { stack in
            var report = CaseReport(name: Self.name)
            let telegramURL = stack.serverBase + "/telegram/webhook", falURL = stack.serverBase + "/fal/webhook"
            let secret = stack.secret
            // The one authentic FAL webhook (for a request we never submitted) and the one update that is replayed.
            let falBody = Array(#"{"request_id":"rel-unknown-1","gateway_request_id":"rel-unknown-1","status":"OK","payload":{"images":[]}}"#.utf8)
            let replayed = Self.update(id: 8_999_999, text: "/help", userID: 960_999)
            let oversized = [UInt8](repeating: UInt8(ascii: " "), count: (1 << 20) + 10)
            let counts = Locked<[Kind: (sent: Int, right: Int, wrong: [Int: Int])]>([:])
            let http = CurlClient()
            for chat in Self.oddChats { _ = sandbox.telegram.user(id: chat, firstName: "O") }
            let good = (0..<goodUsers).map { sandbox.telegram.user(id: 961_000 + Int64($0), firstName: "G\($0)") }
            let oddIDs = Locked<Set<Int64>>([])
            let started = ContinuousClock.now

            // Requests in a fixed order of kinds (weights below), 64 in flight, a real user every 500.
            let weights: [(Kind, Int)] = [
                (.tgWrongSecret, 12), (.tgNoSecret, 8), (.tgGarbage, 10), (.tgTruncated, 12), (.tgNoUpdateID, 8), (.tgOversized, 1), (.tgReplay, 6), (.tgOdd, 8),
                (.falNoHeaders, 8), (.falBadSignature, 10), (.falStale, 6), (.falTampered, 6), (.falReplay, 4), (.falOversized, 1),
            ]
            let plan = weights.flatMap { Array(repeating: $0.0, count: $0.1) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                var inFlight = 0
                for index in 0..<total {
                    if inFlight >= 64 { try await group.next(); inFlight -= 1 }
                    inFlight += 1
                    if index % 500 == 0 {
                        let user = good[(index / 500) % goodUsers]
                        group.addTask { _ = await user.send("/help") }
                        continue
                    }
                    let kind = plan[index % plan.count]
                    group.addTask {
                        var rng = SystemRandomNumberGenerator()
                        let (url, headers, body) = Self.request(kind, index: index, secret: secret, telegramURL: telegramURL, falURL: falURL,
                                                               falBody: falBody, replayed: replayed, oversized: oversized, sandbox: sandbox, rng: &rng)
                        if kind == .tgOdd, let id = Self.updateID(body) { _ = oddIDs.withLock { $0.insert(id) } }
                        let status = (try? await http.execute(CurlRequest(.post, url: url, headers: headers, body: .bytes(Data(body)), timeout: .seconds(20))))?.status ?? 0
                        counts.withLock { counts in
                            var entry = counts[kind] ?? (0, 0, [:])
                            entry.sent += 1
                            if status == kind.expected { entry.right += 1 } else { entry.wrong[status, default: 0] += 1 }
                            counts[kind] = entry
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = BenchSupport.seconds(ContinuousClock.now - started)
            // The authentic webhook for a request we never submitted is looked at again for a minute, then dropped.
            let quiet = try await stack.waitForQuiet(timeout: .seconds(120), excluding: ["fal.result"])
            let figures = counts.withLock { $0 }
            let sent = figures.values.reduce(0) { $0 + $1.sent }
            let wrong = figures.filter { !$0.value.wrong.isEmpty }
            let oddStored = oddIDs.withLock { $0.count }
            let updates = try await stack.count("SELECT count(*) FROM jobs WHERE kind = 'telegram.update'")
            let results = try await stack.count("SELECT count(*) FROM jobs WHERE kind = 'fal.result'")
            let answered = good.filter { user in sandbox.telegram.messages(inChat: user.id).contains { $0.fromBot } }.count
            let goodSent = (total + 499) / 500
            let jobs = try await stack.jobFigures(excluding: ["fal.result"])
            let dead = try await stack.deadJobs()

            report.line("\(sent) bad or replayed requests + \(goodSent) real /help updates in \(String(format: "%.1f", elapsed)) s (\(Int(Double(sent) / elapsed))/s, 64 in flight)")
            for kind in Kind.allCases {
                guard let entry = figures[kind] else { continue }
                let misses = entry.wrong.map { "\($0.value) × \($0.key)" }.joined(separator: ", ")
                report.line("  \(kind.rawValue): \(entry.sent) sent, \(entry.right) answered \(kind.expected)\(misses.isEmpty ? "" : "; wrong: " + misses)")
            }
            report.line("stored: \(updates) telegram.update jobs (expected \(oddStored) odd + 1 replayed + \(goodSent) real = \(oddStored + 1 + goodSent)), \(results) fal.result (expected 1)")
            report.line("real users answered: \(answered)/\(min(goodUsers, goodSent)); jobs \(jobs.total), dead \(jobs.dead), unfinished \(jobs.unfinished); server alive: \(stack.serverAlive)")
            report.check(wrong.isEmpty, "requests with the wrong answer: \(wrong.map { "\($0.key.rawValue): \($0.value.wrong)" })")
            report.check(updates == oddStored + 1 + goodSent && results == 1, "stored \(updates) updates and \(results) results")
            report.check(answered == min(goodUsers, goodSent), "real users left unanswered: \(min(goodUsers, goodSent) - answered)")
            report.check(quiet && jobs.dead == 0, "unfinished \(jobs.unfinished), dead: \(dead)")
            report.check(stack.serverAlive, "the server died")
            return report
        }
        return report
    }

    // MARK: - Building requests

    static func request(
        _ kind: Kind, index: Int, secret: String, telegramURL: String, falURL: String, falBody: [UInt8], replayed: [UInt8], oversized: [UInt8],
        sandbox: Sandbox, rng: inout SystemRandomNumberGenerator
    ) -> (String, [(name: String, value: String)], [UInt8]) {
        let json: (name: String, value: String) = ("Content-Type", "application/json")
        let tg: [(name: String, value: String)] = [json, ("X-Telegram-Bot-Api-Secret-Token", secret)]
        let valid = update(id: Int64(7_000_000 + index), text: "hello", userID: 960_000)
        switch kind {
        case .tgWrongSecret: return (telegramURL, [json, ("X-Telegram-Bot-Api-Secret-Token", secret + "x")], valid)
        case .tgNoSecret: return (telegramURL, [json], valid)
        case .tgGarbage: return (telegramURL, tg, (0..<Int.random(in: 1...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        case .tgTruncated: return (telegramURL, tg, Array(valid.prefix(Int.random(in: 0..<(valid.count - 1), using: &rng))))
        case .tgNoUpdateID: return (telegramURL, tg, Array(#"{"message":{"message_id":1,"chat":{"id":1,"type":"private"},"date":1,"text":"hi"}}"#.utf8))
        case .tgOversized: return (telegramURL, tg, oversized)
        case .tgReplay: return (telegramURL, tg, replayed)
        case .tgOdd: return (telegramURL, tg, oddUpdate(id: Int64(7_000_000 + index), rng: &rng))
        case .falNoHeaders: return (falURL, [json], falBody)
        case .falBadSignature:
            var headers = falHeaders(sandbox.fal.signedHeaders(requestID: "rel-unknown-1", body: falBody))
            headers[4].value = String((0..<128).map { _ in "0123456789abcdef".randomElement(using: &rng)! })
            return (falURL, headers, falBody)
        case .falStale: return (falURL, falHeaders(sandbox.fal.signedHeaders(requestID: "rel-unknown-1", body: falBody, timestamp: Date().addingTimeInterval(-600))), falBody)
        case .falTampered:
            var body = falBody
            body[Int.random(in: 0..<body.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            return (falURL, falHeaders(sandbox.fal.signedHeaders(requestID: "rel-unknown-1", body: falBody)), body)
        case .falReplay: return (falURL, falHeaders(sandbox.fal.signedHeaders(requestID: "rel-unknown-1", body: falBody)), falBody)
        case .falOversized: return (falURL, falHeaders(sandbox.fal.signedHeaders(requestID: "rel-unknown-1", body: oversized)), oversized)
        }
    }

    static func falHeaders(_ signed: FALWebhookSignature.Headers) -> [(name: String, value: String)] {
        [("Content-Type", "application/json"), ("X-Fal-Webhook-Request-Id", signed.requestID), ("X-Fal-Webhook-User-Id", signed.userID),
         ("X-Fal-Webhook-Timestamp", signed.timestamp), ("X-Fal-Webhook-Signature", signed.signature)]
    }

    static func update(id: Int64, text: String, userID: Int64) -> [UInt8] {
        Array(#"{"update_id":\#(id),"message":{"message_id":1,"from":{"id":\#(userID),"is_bot":false,"first_name":"B"},"chat":{"id":\#(userID),"type":"private"},"date":1767225600,"text":"\#(text)"}}"#.utf8)
    }

    /// Valid JSON with an `update_id` that no well-behaved client sends: unknown kinds, missing
    /// fields, wrong types, huge texts, odd unicode, forged callbacks without a message.
    /// The odd updates come from these private chats (real ones in the Sandbox, so the bot's replies
    /// arrive), and some from a group the bot is not in (its replies meet "chat not found").
    static let oddChats: ClosedRange<Int64> = 962_000...962_999

    static func oddUpdate(id: Int64, rng: inout SystemRandomNumberGenerator) -> [UInt8] {
        let chat = Int64.random(in: oddChats, using: &rng)
        let odd = ["\u{202E}evil\u{200B}", "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}", "\u{FFFD}\u{0301}\u{0301}", "𝕬𝖎𝖘𝖍𝖆", "\\ud83d\\ude00", "\\t\\n\\\\"]
        let text = odd.randomElement(using: &rng)!
        let huge = String(repeating: "ж", count: Int.random(in: 4_000...60_000, using: &rng))
        let variants = [
            #"{"update_id":\#(id),"message_reaction":{"chat":{"id":1,"type":"private"},"message_id":1,"date":1,"old_reaction":[],"new_reaction":[{"type":"emoji","emoji":"👍"}]}}"#,
            #"{"update_id":\#(id),"brand_new_kind":{"anything":[1,2,{"x":null}]}}"#,
            #"{"update_id":\#(id),"message":{"message_id":1,"chat":{"id":\#(chat),"type":"private"},"date":1,"text":"\#(huge)"}}"#,
            #"{"update_id":\#(id),"message":{"message_id":"one","chat":"nope","text":12}}"#,
            #"{"update_id":\#(id),"message":{"message_id":1,"from":{"id":\#(chat),"is_bot":false,"first_name":"\#(text)"},"chat":{"id":\#(chat),"type":"private"},"date":1,"text":"/start \#(text)"}}"#,
            #"{"update_id":\#(id),"callback_query":{"id":"x","from":{"id":\#(chat),"is_bot":false,"first_name":"Z"},"chat_instance":"1","data":"av:del:\#(text)"}}"#,
            #"{"update_id":\#(id),"message":{"message_id":1,"from":{"id":\#(chat),"is_bot":false,"first_name":"Z"},"chat":{"id":-100123,"type":"supergroup"},"date":1,"photo":[]}}"#,
            #"{"update_id":\#(id),"edited_message":null,"message":null}"#,
        ]
        return Array(variants.randomElement(using: &rng)!.utf8)
    }

    static func updateID(_ body: [UInt8]) -> Int64? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        return (object["update_id"] as? NSNumber)?.int64Value
    }
}
