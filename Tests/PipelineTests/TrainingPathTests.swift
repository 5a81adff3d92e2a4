import Avatars
import FAL
import Foundation
import JSON
import JobQueue
import ObjectStorage
import Pipeline
import Postgres
import Sandbox
import TestSupport
import Testing
import Zip

/// The training path end to end: real PostgreSQL, moto S3, the webhook server, the worker, and
/// the Sandbox's Telegram and FAL.
@Suite struct TrainingPathTests {
    @Test func twelvePhotosToATrainedAvatar() async throws {
        try await Harness.run { h in
            let user: Int64 = 7001
            let avatar = try await h.userWithAvatar(user)
            for seed in 1...12 { try await h.sendPhoto(Harness.jpeg(UInt64(seed)), userID: user, avatarID: avatar.id) }
            try await h.sendPhoto(Harness.jpeg(3), userID: user, avatarID: avatar.id)                           // a duplicate
            try await h.sendPhoto(Harness.jpeg(99, width: 300, height: 300), userID: user, avatarID: avatar.id)  // too small
            try await h.sendPhoto(Array("just text, named photo.jpg".utf8), userID: user, avatarID: avatar.id)   // not an image
            let decided = try await h.eventually { try await h.database.query("SELECT count(*) FROM photo_uploads WHERE avatar_id = \(avatar.id)")[0].decode(Int.self, at: 0) == 15 }
            #expect(decided)
            let ready = try #require(try await h.store.avatar(avatar.id))
            #expect(ready.status == .ready && ready.photoCount == 12)
            let reasons = try await h.database.query("SELECT reason FROM photo_uploads WHERE avatar_id = \(avatar.id) AND outcome = 'rejected' ORDER BY reason").map { try $0.decode(String.self, at: 0) }
            #expect(reasons == ["photo.rejected.duplicate", "photo.rejected.not_image", "photo.rejected.too_small"])
            // The refused duplicate's object is removed just after its refusal commits.
            let cleaned = try await h.eventually {
                try await h.context.storage.list(bucket: h.context.settings.photoBucket, prefix: "\(user)/\(avatar.id.uuidString.lowercased())/").count == 12
            }
            #expect(cleaned, "exactly the accepted photos are stored, under {user}/{avatar}/{uuid}.jpg")

            #expect(try await h.store.startTraining(avatarID: avatar.id, userID: user, settings: h.context.settings) == .started(attempt: 1, balance: 50))
            #expect(try await h.store.startTraining(avatarID: avatar.id, userID: user, settings: h.context.settings) == .alreadyTraining, "a double tap charges once")
            let completed = try await h.eventually { try await h.store.avatar(avatar.id)?.status == .completed }
            #expect(completed)
            let trained = try #require(try await h.store.avatar(avatar.id))
            // The ZIP FAL got: 12 stored JPEG entries.
            let request = try #require(h.sandbox.fal.requests.first { $0.model == FALModel.portraitTrainer })
            #expect(h.sandbox.fal.requests.filter { $0.model == FALModel.portraitTrainer }.count == 1, "submitted once")
            #expect(request.input["trigger_phrase"]?.stringValue == trained.triggerPhrase && request.input["steps"] == .number(2500))
            #expect(request.webhookURL?.contains("ref=train:\(avatar.id.uuidString.lowercased()):1") == true)
            let zipURL = try #require(request.input["images_data_url"]?.stringValue)
            let zip = try #require(h.sandbox.fal.file(at: zipURL))
            let path = NSTemporaryDirectory() + "/received-\(UUID()).zip"
            try zip.write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let reader = try ZipReader(path: path)
            #expect(reader.entries.count == 12 && reader.entries.allSatisfy { $0.isStored && $0.name.hasSuffix(".jpg") })
            // The LoRA is the one FAL produced, nothing invented; the first completed avatar is main.
            #expect(trained.loraURL.flatMap { h.sandbox.fal.file(at: $0) }.map { String(decoding: $0.prefix(12), as: UTF8.self) } == "SANDBOX-LORA")
            #expect(trained.isMain && trained.falRequestID == request.id)
            #expect(try await h.balance(user) == 50)
            // The user heard about each refusal and the result, with buttons.
            let told = try await h.eventually { h.botTexts(user).contains { $0.contains("is ready") } }
            #expect(told)
            let texts = h.botTexts(user)
            #expect(texts.contains { $0.contains("already sent this photo") } && texts.contains { $0.contains("at least 512 pixels") } && texts.contains { $0.contains("not a photo") })
            let done = try #require(h.sandbox.telegram.messages(inChat: user).last { $0.text?.contains("is ready") == true })
            #expect(done.keyboard.flatMap { $0 }.map(\.text) == ["Generate", "My avatars"])
            #expect(h.sandbox.telegram.floodRejections == 0)
        }
    }

    @Test func falErrorFailsRefundsAndSaysSoInRussian() async throws {
        try await Harness.run { h in
            let user: Int64 = 7002
            let avatar = try await h.userWithAvatar(user, language: "ru")
            for seed in 1...10 { try await h.sendPhoto(Harness.jpeg(UInt64(100 + seed)), userID: user, avatarID: avatar.id) }
            #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .ready })
            h.sandbox.fal.inject(.errorResult("CUDA out of memory"), .duplicateWebhook)
            #expect(try await h.store.startTraining(avatarID: avatar.id, userID: user, settings: h.context.settings) == .started(attempt: 1, balance: 50))
            #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .failed })
            #expect(try await h.eventually { h.botTexts(user).contains { $0.contains("не удалось") } })
            try await Task.sleep(for: .milliseconds(500))  // the duplicate webhook has been delivered too
            #expect(try await h.balance(user) == 150, "refunded exactly once")
            let ledger = try await h.database.query("SELECT amount, reference FROM credit_ledger WHERE user_id = \(user) ORDER BY id").map { try $0.decode(Int.self, at: 0) }
            #expect(ledger == [150, -100, 100])
            #expect(h.botTexts(user).filter { $0.contains("не удалось") }.count == 1, "one message however many deliveries")
            let failedMessage = try #require(h.sandbox.telegram.messages(inChat: user).last { $0.text?.contains("не удалось") == true })
            #expect(failedMessage.keyboard.flatMap { $0 }.map(\.text) == ["Повторить", "Удалить"])

            // Retry: a second attempt, charged again under its own reference, and this time it works.
            #expect(try await h.store.startTraining(avatarID: avatar.id, userID: user, settings: h.context.settings) == .started(attempt: 2, balance: 50))
            #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .completed })
            #expect(try await h.balance(user) == 50)
        }
    }

    @Test func theTrainerRejectingTheArchiveEndsInARefund() async throws {
        // A trainer that wants more images than we send (as if our ZIP were short).
        let sandbox = Sandbox(fal: .init(trainingDuration: .milliseconds(200), minimumImages: [FALModel.portraitTrainer: 15], webhookRetryDelay: .milliseconds(100)))
        try await Harness.run(sandbox: sandbox) { h in
            let user: Int64 = 7003
            let avatar = try await h.userWithAvatar(user)
            for seed in 1...10 { try await h.sendPhoto(Harness.jpeg(UInt64(200 + seed)), userID: user, avatarID: avatar.id) }
            #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .ready })
            _ = try await h.store.startTraining(avatarID: avatar.id, userID: user, settings: h.context.settings)
            #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .failed })
            #expect(try await h.store.avatar(avatar.id)?.error == "training.reason.rejected_photos")
            #expect(try await h.balance(user) == 150)
            #expect(try await h.eventually { h.botTexts(user).contains { $0.contains("could not use the photos") && $0.contains("100 credits were returned") } })
        }
    }

    @Test func aPhotoMissingFromStorageFailsThePreparationCleanly() async throws {
        try await Harness.run { h in
            // The archive is packed while photos download; a download that fails must stop it
            // (not leave it waiting for the photo), and leave no scratch file behind.
            var context = h.context
            context.scratchDirectory = NSTemporaryDirectory() + "/aisha-missing-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: context.scratchDirectory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: context.scratchDirectory) }
            var photos: [(key: String, format: String)] = []
            for index in 0..<12 {
                let key = "missing-test/\(UUID().uuidString).jpg"
                if index != 2 { _ = try await context.storage.put(bucket: context.settings.photoBucket, key: key, data: Data(Harness.jpeg(UInt64(300 + index))), contentType: "image/jpeg") }
                photos.append((key, "jpeg"))
            }
            let uploadsBefore = h.sandbox.fal.uploadCount
            let started = ContinuousClock.now
            await #expect(throws: ObjectStorageError.self) { try await AvatarTraining.uploadArchive(photos: photos, context: context) }
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(try FileManager.default.contentsOfDirectory(atPath: context.scratchDirectory).isEmpty, "scratch files removed")
            #expect(h.sandbox.fal.uploadCount == uploadsBefore, "nothing uploaded")
        }
    }

    @Test func aCrashBetweenSubmitAndRecordNeverSubmitsTwice() async throws {
        try await Harness.run { h in
            let user: Int64 = 7004
            let avatar = try await h.userWithAvatar(user)
            for seed in 1...10 { try await h.sendPhoto(Harness.jpeg(UInt64(300 + seed)), userID: user, avatarID: avatar.id) }
            #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .ready })
            // Reproduce what a worker killed right after FAL accepted the submit leaves behind:
            // the mark is set, FAL has the request, our row has no request id. (The stuck fault
            // holds the training until we release it, after the retried job has run.)
            try await h.database.withTransaction { tx in
                _ = try await CreditLedger.move(userID: user, amount: -100, reference: "training:\(avatar.id.uuidString.lowercased()):1", reason: "training", on: tx)
                try await tx.query("UPDATE avatars SET status = 'training', training_attempt = 1, training_price = 100 WHERE id = \(avatar.id)")
            }
            #expect(try await h.store.markSubmitting(avatarID: avatar.id, attempt: 1, model: FALModel.portraitTrainer, input: Data("{}".utf8)))
            h.sandbox.fal.inject(.stuck)
            let handle = try await h.context.fal.submit(
                model: FALModel.portraitTrainer, input: PortraitTrainerInput(imagesDataURL: "none", triggerPhrase: avatar.triggerPhrase),
                webhookURL: h.context.settings.falWebhookURL + "?ref=" + AvatarTraining.reference(avatarID: avatar.id, attempt: 1))
            // The rescued job runs again: it must not submit.
            try await JobQueue(database: h.database).enqueue(AvatarStore.trainJob(avatarID: avatar.id, attempt: 1))
            try await Task.sleep(for: .seconds(1))
            #expect(h.sandbox.fal.requests.count == 1, "no second submission")
            // FAL finishes; its webhook names our reference, and the result is adopted and applied.
            // (The sandbox's trainer fails "none" as an archive: the refund path runs.)
            await h.sandbox.fal.release(handle.requestID)
            #expect(try await h.eventually { try await h.store.avatar(avatar.id)?.status == .failed })
            let final = try #require(try await h.store.avatar(avatar.id))
            #expect(final.falRequestID == handle.requestID && h.sandbox.fal.requests.count == 1)
            #expect(try await h.balance(user) == 150)
        }
    }
}

@Suite struct PhotoIngestTests {
    /// Pillow-made PNG and WebP, a truncated JPEG, and an album of 25 at once: 20 kept, the rest
    /// refused with reasons, and storage holds exactly what was kept.
    @Test func realFilesAndAnAlbumOfTwentyFive() async throws {
        try await Harness.run { h in
            let user: Int64 = 7005
            let avatar = try await h.userWithAvatar(user)
            func pillow(_ format: String) async throws -> [UInt8] {
                let path = NSTemporaryDirectory() + "/pillow-\(UUID())"
                defer { try? FileManager.default.removeItem(atPath: path) }
                _ = try await TestServices.run("/usr/bin/env", ["python3", "-c", "import sys, os\nfrom PIL import Image\nImage.frombytes('RGB', (700, 900), os.urandom(700*900*3)).save(sys.argv[1], '\(format)')", path])
                return try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            }
            let png = try await pillow("PNG"), webp = try await pillow("WEBP")
            let jpeg = try await pillow("JPEG")
            let truncated = Array(jpeg.prefix(jpeg.count * 2 / 3))  // header intact, image cut short
            // First the three odd files, one by one; then an album of 22 at once.
            for (index, file) in [png, webp, truncated].enumerated() {
                try await h.sendPhoto(file, userID: user, avatarID: avatar.id)
                #expect(try await h.eventually { try await h.database.query("SELECT count(*) FROM photo_uploads WHERE avatar_id = \(avatar.id)")[0].decode(Int.self, at: 0) == index + 1 })
            }
            let users = h.sandbox.telegram.user(id: user)
            _ = await users.sendAlbum((1...22).map { Harness.jpeg(UInt64(5000 + $0)) })
            let fileIDs = h.sandbox.telegram.messages(inChat: user).filter { !$0.fromBot }.compactMap(\.fileIDs.first).suffix(22)
            #expect(fileIDs.count == 22)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for fileID in fileIDs {
                    group.addTask { try await JobQueue(database: h.database).enqueue(try PhotoIngest.job(.init(userID: user, avatarID: avatar.id, fileID: fileID, fileUniqueID: "u-" + fileID, fileSize: nil))) }
                }
                try await group.waitForAll()
            }
            #expect(try await h.eventually(.seconds(30)) { try await h.database.query("SELECT count(*) FROM photo_uploads WHERE avatar_id = \(avatar.id)")[0].decode(Int.self, at: 0) == 25 })
            let accepted = try await h.database.query("SELECT format, count(*) FROM avatar_photos WHERE avatar_id = \(avatar.id) GROUP BY format ORDER BY format").map { "\(try $0.decode(String.self, at: 0))=\(try $0.decode(Int.self, at: 1))" }
            let total = try await h.store.avatar(avatar.id)?.photoCount
            #expect(total == 20)
            #expect(accepted.contains("png=1") && accepted.contains("webp=1"), "\(accepted)")
            let rejected = try await h.database.query("SELECT reason, count(*) FROM photo_uploads WHERE avatar_id = \(avatar.id) AND outcome = 'rejected' GROUP BY reason ORDER BY reason").map { "\(try $0.decode(String.self, at: 0))=\(try $0.decode(Int.self, at: 1))" }
            #expect(rejected == ["photo.rejected.damaged=1", "photo.rejected.limit=4"])
            let cleaned = try await h.eventually { try await h.context.storage.list(bucket: h.context.settings.photoBucket, prefix: "\(user)/").count == 20 }
            #expect(cleaned, "refused photos were removed from storage")
        }
    }
}
