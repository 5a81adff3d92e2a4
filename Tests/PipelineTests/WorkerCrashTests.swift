import Avatars
import FAL
import Foundation
import Imaging
import JobQueue
import ObjectStorage
import Postgres
import Sandbox
import TestSupport
import Testing

/// Real `aisha-worker` processes SIGKILLed at the two dangerous moments of a training: after
/// the ZIP upload (before the submit) and after the submit (before its id is recorded). The
/// next worker must neither upload nor submit again, and the training must still complete.
@Suite(.serialized) struct WorkerCrashTests {
    @Test(arguments: ["train:after-upload", "train:after-submit"])
    func aKilledWorkerNeitherRepeatsNorLosesTheTraining(crashPoint: String) async throws {
        let sandbox = Sandbox(fal: .init(trainingDuration: .milliseconds(500), webhookRetryDelay: .milliseconds(200)))
        try await TestDatabase.withMigrated { testDatabase in
            let database = try testDatabase.client(maxConnections: 4)
            defer { database.shutdown() }
            try await sandbox.run { endpoints in
                try await Harness.runServer(databaseURL: testDatabase.url, jwksURL: endpoints.falJWKS) { serverBase in
                    let bucket = "crash-\(UUID().uuidString.prefix(8).lowercased())"
                    let storage = ObjectStorage(configuration: try .fromEnvironment())
                    try await storage.createBucketIfMissing(bucket)
                    var settings = PipelineSettings(falWebhookURL: serverBase + "/fal/webhook")
                    settings.photoBucket = bucket
                    let store = AvatarStore(database: database)
                    let user: Int64 = 7401
                    try await store.ensureUser(id: user, firstName: "K", language: "en", welcomeCredits: 150)
                    sandbox.telegram.user(id: user)
                    let avatar = try await store.createAvatar(userID: user, name: "Crash test", kind: .portrait, gender: .male)
                    for index in 0..<10 {
                        let photo = UUID(), key = PhotoRules.objectKey(userID: user, avatarID: avatar.id, photoID: photo)
                        _ = try await storage.put(bucket: bucket, key: key, data: Data(Harness.jpeg(UInt64(index + 1))), contentType: "image/jpeg")
                        _ = try await store.addPhoto(avatarID: avatar.id, photoID: photo, objectKey: key, sha256: "s\(index)", fileUniqueID: "f\(index)",
                                                     format: "jpeg", size: 1, width: 640, height: 640, settings: settings)
                    }
                    #expect(try await store.startTraining(avatarID: avatar.id, userID: user, settings: settings) == .started(attempt: 1, balance: 50))

                    let environment = Harness.workerEnvironment(databaseURL: testDatabase.url, serverBase: serverBase, sandbox: sandbox, endpoints: endpoints, bucket: bucket)
                    let worker = TestServices.productsDirectory + "/aisha-worker"
                    let log = NSTemporaryDirectory() + "/crash-\(UUID()).log"
                    defer { try? FileManager.default.removeItem(atPath: log) }
                    let victim = try TestServices.spawn(worker, [], environment: environment.merging(["AISHA_CRASH_POINT": crashPoint]) { $1 }, logPath: log)
                    #expect(await TestServices.waitForExit(victim) == 128 + SIGKILL, "the worker died at \(crashPoint)")
                    let uploadsBefore = sandbox.fal.uploadCount, submitsBefore = sandbox.fal.requests.count
                    #expect(uploadsBefore == 1 && submitsBefore == (crashPoint == "train:after-submit" ? 1 : 0))
                    #expect(try await store.avatar(avatar.id)?.falRequestID == nil, "the id was never recorded")

                    let survivor = try TestServices.spawn(worker, [], environment: environment, logPath: log)
                    let completed = try await eventually(.seconds(60)) { try await store.avatar(avatar.id)?.status == .completed }
                    kill(survivor, SIGTERM)
                    #expect(await TestServices.waitForExit(survivor) == 0)
                    #expect(completed, "the training was not lost: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                    #expect(sandbox.fal.uploadCount == 1, "the ZIP was uploaded once")
                    #expect(sandbox.fal.requests.count == 1, "the trainer was submitted once")
                    let done = try #require(try await store.avatar(avatar.id))
                    #expect(done.falRequestID == sandbox.fal.requests.first?.id && done.loraURL != nil)
                    #expect(try await database.query("SELECT balance FROM users WHERE id = \(user)")[0].decode(Int.self, at: 0) == 50, "charged once")
                }
            }
        }
    }

    func eventually(_ timeout: Duration, _ condition: @escaping @Sendable () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}
