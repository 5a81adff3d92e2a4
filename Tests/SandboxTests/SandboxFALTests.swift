import FAL
import Foundation
import Imaging
import JSON
import Sandbox
import Signing
import Synchronization
import Testing

/// Our FAL client and webhook verifier against the Sandbox's FAL (external-apis §1–§4).
@Suite struct SandboxFALTests {
    let sandbox = Sandbox(fal: .init(trainingDuration: .milliseconds(200), generationDuration: .milliseconds(50), webhookRetryDelay: .milliseconds(50)))

    func client(_ endpoints: Sandbox.Endpoints) -> FALClient {
        FALClient(configuration: .init(key: sandbox.fal.configuration.key, queueBaseURL: endpoints.falQueue, restBaseURL: endpoints.falREST))
    }

    /// Verifies a delivery exactly as the server will, and decodes it.
    func verified(_ delivery: Delivery, _ verifier: FALWebhookVerifier) async throws -> FALWebhookPayload {
        let headers = try FALWebhookSignature.Headers { delivery.headers[$0.lowercased()] }
        try await verifier.verify(headers, body: delivery.body)
        let payload = try JSONDecoder().decode(FALWebhookPayload.self, from: Data(delivery.body))
        #expect(headers.requestID == payload.requestID)
        return payload
    }

    /// Every test makes a Sandbox; a folder it made for itself must not outlive it.
    @Test func aTemporaryStorageFolderIsRemovedWithTheSandboxANamedOneIsKept() throws {
        var temporary: String?
        do {
            let scoped = Sandbox()
            temporary = scoped.fal.storageDirectory
            #expect(FileManager.default.fileExists(atPath: scoped.fal.storageDirectory))
        }
        #expect(!FileManager.default.fileExists(atPath: try #require(temporary)))

        let named = NSTemporaryDirectory() + "/aisha-named-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: named) }
        do { _ = Sandbox(storageDirectory: named) }
        #expect(FileManager.default.fileExists(atPath: named))
    }

    @Test func trainingThenGenerationWithWebhooksThatVerify() async throws {
        try await sandbox.run { endpoints in
            let fal = client(endpoints)
            let verifier = FALWebhookVerifier(jwksURL: endpoints.falJWKS)
            let receiver = WebhookReceiver()
            try await receiver.run { webhookBase in
                let zip = try Samples.zip(images: 12, extra: [("photo_0.txt", Array("a photo of [trigger]".utf8))])
                defer { try? FileManager.default.removeItem(atPath: zip) }
                let url = try await fal.upload(fileAt: zip, contentType: "application/zip", fileName: "photos.zip")
                #expect(sandbox.fal.file(at: url) == (try Data(contentsOf: URL(fileURLWithPath: zip))), "the ZIP arrived intact")

                let handle = try await fal.submit(model: FALModel.portraitTrainer, input: PortraitTrainerInput(imagesDataURL: url, triggerPhrase: "ohwx person"), webhookURL: webhookBase + "/fal/webhook?avatar=7")
                let training = try await verified(try #require(await receiver.waitFor(count: 1).first), verifier)
                #expect(receiver.deliveries.withLock { $0[0].path } == "/fal/webhook")
                #expect(training.status == .ok && training.requestID == handle.requestID)
                let output = try JSONDecoder().decode(TrainingOutput.self, from: JSONEncoder().encode(training.payload))
                #expect(sandbox.fal.file(at: output.diffusersLoraFile.url).map { String(decoding: $0.prefix(12), as: UTF8.self) } == "SANDBOX-LORA")
                #expect(try await fal.status(handle).isCompleted)
                #expect(try await fal.result(handle, as: TrainingOutput.self) == output, "polling sees what the webhook said")
                #expect(try await fal.cancel(handle) == .alreadyCompleted)

                let input = try FluxLoraInput(prompt: "ohwx person as an astronaut", lora: .init(path: output.diffusersLoraFile.url), aspectRatio: .portrait3x4, count: 3, seed: 1 << 60)
                _ = try await fal.submit(model: FALModel.fluxLora, input: input, webhookURL: webhookBase + "/fal/webhook")
                let generation = try await verified(try #require(await receiver.waitFor(count: 2).last), verifier)
                let images = try JSONDecoder().decode(FluxLoraOutput.self, from: JSONEncoder().encode(generation.payload))
                #expect(images.images.count == 3)
                for image in images.images {
                    let bytes = try #require(sandbox.fal.file(at: image.url))
                    #expect(ImageHeader.parse(bytes) == ImageHeader(format: .jpeg, width: 768, height: 1024), "a real JPEG of the requested size")
                }
                // The seed survives beyond 2^53 in the raw body (the payload's JSONValue holds a Double).
                #expect(String(decoding: receiver.deliveries.withLock { $0[1].body }, as: UTF8.self).contains("\"seed\":\(UInt64(1) << 60)"))
            }
        }
    }

    @Test func theTrainerRejectsShortOrForeignArchivesLikeTheRealOne() async throws {
        try await sandbox.run { endpoints in
            let fal = client(endpoints)
            let receiver = WebhookReceiver()
            try await receiver.run { webhookBase in
                for (images, extra, expected) in [(5, [], "at least 10"), (12, [("notes.pdf", Array("%PDF-1.4".utf8))], "Unsupported file")] as [(Int, [(String, [UInt8])], String)] {
                    let zip = try Samples.zip(images: images, extra: extra)
                    defer { try? FileManager.default.removeItem(atPath: zip) }
                    let url = try await fal.upload(fileAt: zip, contentType: "application/zip", fileName: "photos.zip")
                    let handle = try await fal.submit(model: FALModel.portraitTrainer, input: PortraitTrainerInput(imagesDataURL: url, triggerPhrase: "x"), webhookURL: webhookBase + "/fal/webhook")
                    let deliveries = await receiver.waitFor(count: receiver.deliveries.withLock { $0.count } + 1)
                    let payload = try JSONDecoder().decode(FALWebhookPayload.self, from: Data(try #require(deliveries.last).body))
                    #expect(payload.status == .error && payload.error == "Invalid status code: 422")
                    #expect(String(describing: payload.payload).contains(expected))
                    do {
                        _ = try await fal.result(handle, as: TrainingOutput.self)
                        Issue.record("a failed training returned a result")
                    } catch let error as FALError {
                        #expect(error.status == 422 && error.detail.contains(expected))
                    }
                }
                // A LoRA this FAL never produced cannot be loaded.
                let input = try FluxLoraInput(prompt: "x", lora: .init(path: "https://example.com/fake.safetensors"), aspectRatio: .square, count: 1)
                let handle = try await fal.submit(model: FALModel.fluxLora, input: input, webhookURL: nil)
                try await Task.sleep(for: .milliseconds(300))
                await #expect(throws: FALError.self) { _ = try await fal.result(handle, as: FluxLoraOutput.self) }
            }
        }
    }

    @Test func injectedFaults() async throws {
        try await sandbox.run { endpoints in
            let fal = client(endpoints)
            let receiver = WebhookReceiver()
            try await receiver.run { webhookBase in
                let webhook = webhookBase + "/fal/webhook"
                func generate() async throws -> FALClient.QueueHandle {
                    try await fal.submit(model: FALModel.fluxLora, input: ["prompt": "a cat"], webhookURL: webhook)
                }
                // 5xx: a typed, retryable error; the next call works.
                sandbox.fal.inject(.serverError(503))
                do {
                    _ = try await generate()
                    Issue.record("the injected 503 did not surface")
                } catch let error as FALError {
                    #expect(error.status == 503 && error.retryable)
                }
                // A lost webhook: the result is still there for polling.
                sandbox.fal.inject(.lostWebhook)
                let lost = try await generate()
                try await Task.sleep(for: .milliseconds(400))
                let lostStatus = try await fal.status(lost)
                #expect(receiver.deliveries.withLock { $0.count } == 0 && lostStatus.isCompleted)
                #expect(try await fal.result(lost, as: FluxLoraOutput.self).images.count == 1)
                // A duplicated webhook: two identical deliveries.
                sandbox.fal.inject(.duplicateWebhook)
                _ = try await generate()
                let twice = await receiver.waitFor(count: 2)
                #expect(twice.count == 2 && twice[0].body == twice[1].body)
                // An ERROR result.
                sandbox.fal.inject(.errorResult("GPU on fire"))
                _ = try await generate()
                let failed = try JSONDecoder().decode(FALWebhookPayload.self, from: Data(try #require(await receiver.waitFor(count: 3).last).body))
                #expect(failed.status == .error && String(describing: failed.payload).contains("GPU on fire"))
                // Stuck until cancelled.
                sandbox.fal.inject(.stuck)
                let stuck = try await generate()
                try await Task.sleep(for: .milliseconds(300))
                #expect(try await fal.status(stuck).status == "IN_QUEUE")
                #expect(try await fal.cancel(stuck) == .requested)
                #expect(try await fal.status(stuck).error != nil)
                // A slow response still answers, late.
                sandbox.fal.inject(.slowResponse(.milliseconds(600)))
                let started = ContinuousClock.now
                _ = try await fal.status(stuck)
                #expect(ContinuousClock.now - started >= .milliseconds(600))
                // A webhook receiver that fails gets retried until it answers 2xx.
                receiver.answer.store(503, ordering: .relaxed)
                _ = try await generate()
                _ = await receiver.waitFor(count: 5)
                receiver.answer.store(200, ordering: .relaxed)
                let retried = await receiver.waitFor(count: 6)
                #expect(retried.count == 6 && retried[3].body == retried[5].body, "the same webhook, redelivered until accepted")
                try await Task.sleep(for: .milliseconds(300))
                #expect(receiver.deliveries.withLock { $0.count } == 6, "and not after it was accepted")
            }
        }
    }

    @Test func keyRotationStillVerifies() async throws {
        try await sandbox.run { endpoints in
            let verifier = FALWebhookVerifier(jwksURL: endpoints.falJWKS, refetchInterval: 0)
            let receiver = WebhookReceiver()
            try await receiver.run { webhookBase in
                let fal = client(endpoints)
                _ = try await fal.submit(model: FALModel.fluxLora, input: ["prompt": "one"], webhookURL: webhookBase + "/f")
                _ = try await verified(try #require(await receiver.waitFor(count: 1).last), verifier)
                sandbox.fal.rotateKey()
                #expect(sandbox.fal.publicKeys.count == 2)
                _ = try await fal.submit(model: FALModel.fluxLora, input: ["prompt": "two"], webhookURL: webhookBase + "/f")
                _ = try await verified(try #require(await receiver.waitFor(count: 2).last), verifier)
                #expect(await verifier.fetchCount == 2, "the new key was fetched once")
                // A tampered body never verifies.
                var forged = try #require(receiver.deliveries.withLock { $0.last })
                forged.body[forged.body.count - 2] ^= 1
                await #expect(throws: FALWebhookError.self) { _ = try await verified(forged, verifier) }
            }
        }
    }
}
