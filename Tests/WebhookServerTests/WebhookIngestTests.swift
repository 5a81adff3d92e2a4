import Foundation
import FAL
import JobQueue
import Telegram
import TestSupport
import Testing
@testable import WebhookServer

/// The pure rules of the two webhooks.
@Suite struct WebhookIngestTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func fixture(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: fixtures.appendingPathComponent(name))) }

    /// Every update kind Telegram may send is stored — the ones we model with their chat's serial
    /// key, the others (inline queries, join requests …) too, for the worker to ignore.
    @Test(arguments: [
        ("start-command.json", "tg:chat:"), ("album-item-1.json", "tg:chat:111111111"), ("document-photo.json", "tg:chat:"),
        ("callback-query.json", "tg:chat:111111111"), ("callback-inaccessible.json", "tg:chat:"), ("edited-message.json", "tg:chat:111111111"),
        ("my-chat-member-kicked.json", "tg:chat:"), ("pre-checkout-query.json", "tg:user:111111111"), ("message-reaction.json", nil),
        ("inline-query.json", nil), ("chat-join-request.json", nil),
    ] as [(String, String?)])
    func everyUpdateKindBecomesAJob(file: String, serialPrefix: String?) throws {
        let body = try Self.fixture("telegram/" + file)
        let job = try WebhookIngest.telegramJob(body: body)
        let updateID = try #require((try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])?["update_id"] as? Int)
        #expect(job.kind == "telegram.update" && job.uniqueKey == "tg:update:\(updateID)" && job.payload == Data(body))
        if let serialPrefix { #expect(job.serialKey?.hasPrefix(serialPrefix) == true, "\(String(describing: job.serialKey))") }
    }

    @Test func malformedUpdatesAreRefused() {
        for body in ["", "{", "[]", "null", #"{"message":{}}"#, #"{"update_id":"12"}"#, #"{"update_id":1.5}"#, "\u{FEFF}garbage"] {
            #expect(throws: WebhookIngest.Refusal.self, "\(body)") { try WebhookIngest.telegramJob(body: Array(body.utf8)) }
        }
        // An update whose known kind has an unexpected shape is still stored, without a serial key.
        let odd = try? WebhookIngest.telegramJob(body: Array(#"{"update_id":5,"message":{"chat":"not an object"}}"#.utf8))
        #expect(odd?.uniqueKey == "tg:update:5" && odd?.serialKey == nil)
    }

    @Test func secretComparison() {
        #expect(WebhookIngest.telegramSecretMatches("s3cret_A-1", secret: "s3cret_A-1"))
        #expect(!WebhookIngest.telegramSecretMatches("s3cret_A-2", secret: "s3cret_A-1"))
        #expect(!WebhookIngest.telegramSecretMatches("s3cret_A-1 ", secret: "s3cret_A-1"))
        #expect(!WebhookIngest.telegramSecretMatches("", secret: "s3cret_A-1"))
        #expect(!WebhookIngest.telegramSecretMatches(nil, secret: "s3cret_A-1"))
        #expect(ServerConfiguration.isValidSecret("abc_DEF-123") && !ServerConfiguration.isValidSecret("with space") && !ServerConfiguration.isValidSecret(""))
    }

    @Test func falJobsAreKeyedByRequestID() throws {
        let body = try Self.fixture("fal/webhook-training-ok.json")
        let requestID = try #require((try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])?["request_id"] as? String)
        let job = try WebhookIngest.falJob(body: body, headerRequestID: requestID)
        #expect(job.kind == "fal.result" && job.uniqueKey == "fal:result:\(requestID)")
        struct Wrapped: Decodable { var ref: String?; var webhook: FALWebhookPayload }
        #expect(try JSONDecoder().decode(Wrapped.self, from: job.payload).ref == nil)
        let withRef = try WebhookIngest.falJob(body: body, headerRequestID: requestID, ref: "train:0b7e:2")
        let wrapped = try JSONDecoder().decode(Wrapped.self, from: withRef.payload)
        #expect(wrapped.ref == "train:0b7e:2" && wrapped.webhook.requestID == requestID)
        let hostile = try WebhookIngest.falJob(body: body, headerRequestID: requestID, ref: #"x","ref":"evil"#)
        #expect(try JSONDecoder().decode(Wrapped.self, from: hostile.payload).ref == nil, "a reference we never wrote is dropped")
        #expect(throws: WebhookIngest.Refusal.unauthorized("request id in the body differs from the signed header")) {
            try WebhookIngest.falJob(body: body, headerRequestID: "another-request")
        }
        #expect(throws: WebhookIngest.Refusal.self) { try WebhookIngest.falJob(body: Array(#"{"status":"OK"}"#.utf8), headerRequestID: "x") }
    }

    @Test func configurationFromTheEnvironment() throws {
        let base = ["AISHA_DATABASE_URL": "postgres://a:b@127.0.0.1:5432/c", "AISHA_TELEGRAM_WEBHOOK_SECRET": "abc"]
        let configuration = try ServerConfiguration(environment: base)
        #expect(configuration.telegramBodyLimit == 1 << 20 && configuration.falJWKSURL == "https://rest.fal.ai/.well-known/jwks.json" && configuration.port == 8080)
        #expect(throws: ConfigurationError.self) { try ServerConfiguration(environment: ["AISHA_DATABASE_URL": "postgres://x"]) }
        #expect(throws: ConfigurationError.self) { try ServerConfiguration(environment: base.merging(["AISHA_TELEGRAM_WEBHOOK_SECRET": "no spaces allowed"]) { $1 }) }
        #expect(throws: ConfigurationError.self) { try ServerConfiguration(environment: base.merging(["AISHA_TELEGRAM_BODY_LIMIT": "-1"]) { $1 }) }
    }
}

/// The one-pass scanner agrees with the full decoder and with a JSON validator.
@Suite struct UpdateScannerTests {
    @Test func serialKeysMatchTheFullDecoder() throws {
        let folder = WebhookIngestTests.fixtures.appendingPathComponent("telegram")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix("error-") && $0 != "getfile-ok.json" }
        #expect(files.count >= 12)
        for file in files {
            let body = try Data(contentsOf: folder.appendingPathComponent(file))
            let update = try JSONDecoder().decode(Update.self, from: body)
            let job = try WebhookIngest.telegramJob(body: Array(body))
            #expect(job.uniqueKey == "tg:update:\(update.updateID)" && job.serialKey == update.serialKey, "\(file)")
        }
    }

    /// Random mutations of a valid update: the scanner accepts exactly the bodies a strict
    /// RFC 8259 parser (`StrictJSON`, Python's) accepts as an object.
    @Test func acceptsExactlyWellFormedJSON() async throws {
        let seed = Array(#"{"update_id":77,"message":{"message_id":1,"date":2,"chat":{"id":-100,"type":"group"},"text":"a \"quoted\" é 😀 [1,2.5e3,true,null]"}}"#.utf8)
        let bodies = StrictJSON.mutations(of: seed, count: 3000)
        let verdicts = try await StrictJSON.pythonVerdicts(bodies)
        var accepted = 0
        for (body, verdict) in zip(bodies, verdicts) {
            let strict = verdict?.first == UInt8(ascii: "{")
            let scanned = UpdateScanner.scan(body) != nil
            if scanned { accepted += 1 }
            if scanned != strict {
                Issue.record("disagree (strict \(strict), scanner \(scanned)): \(String(decoding: body, as: UTF8.self))")
                return
            }
        }
        #expect(accepted > 100 && accepted < 2900, "the mutations exercised both sides (\(accepted) accepted)")
    }
}
