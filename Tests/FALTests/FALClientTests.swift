import FAL
import Foundation
import Hummingbird
import Signing
import Synchronization
import TestSupport
import Testing

/// A loopback stand-in for FAL's queue and storage with the reference's response shapes.
final class FakeFAL: Sendable {
    static let key = "key-id:key-secret"
    let uploads = Mutex<[String: [UInt8]]>([:])
    let webhooks = Mutex<[String]>([])
    let authorizations = Mutex<[String]>([])

    @Sendable static func base(_ request: Request) -> String { "http://" + (request.head.authority ?? "") }

    @Sendable static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func authorized(_ request: Request) -> Bool {
        let value = request.headers[.authorization] ?? ""
        authorizations.withLock { $0.append(value) }
        return value == "Key \(Self.key)"
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let base = FakeFAL.base, json = FakeFAL.json
        let authorized = { @Sendable (request: Request) -> Bool in self.authorized(request) }
        router.post("storage/upload/initiate") { request, _ -> Response in
            guard authorized(request) else { return json(401, #"{"detail":"No user found for Key ID and Secret"}"#) }
            let id = UUID().uuidString.lowercased()
            return json(200, #"{"upload_url":"\#(base(request))/upload/\#(id)?signature=abc","file_url":"\#(base(request))/files/\#(id)/photos.zip"}"#)
        }
        router.put("upload/{id}") { request, context -> Response in
            var bytes: [UInt8] = []
            for try await buffer in request.body { bytes += buffer.readableBytesView }
            self.uploads.withLock { $0[context.parameters.get("id") ?? ""] = bytes }
            return Response(status: .ok)
        }
        router.post("fal-ai/{model}") { request, context -> Response in
            guard authorized(request) else { return json(401, #"{"detail":"Unauthorized"}"#) }
            self.webhooks.withLock { $0.append(request.uri.queryParameters.get("fal_webhook").map { String($0) } ?? "") }
            let model = context.parameters.get("model") ?? ""
            let id = model == "bad-model" ? "bad" : UUID().uuidString.lowercased()
            let prefix = "\(base(request))/fal-ai/\(model)/requests/\(id)"
            return json(200, #"{"request_id":"\#(id)","response_url":"\#(prefix)","status_url":"\#(prefix)/status","cancel_url":"\#(prefix)/cancel","queue_position":0}"#)
        }
        router.get("fal-ai/{model}/requests/{id}/status") { _, _ in json(200, #"{"status":"IN_QUEUE","queue_position":2,"request_id":"x"}"#) }
        router.get("fal-ai/{model}/requests/{id}") { _, context -> Response in
            if context.parameters.get("id") == "bad" {
                return json(422, #"{"detail":[{"loc":["body","images_data_url"],"msg":"field required","type":"missing"}]}"#)
            }
            return json(200, #"{"diffusers_lora_file":{"url":"https://v3.fal.media/files/x/lora.safetensors"},"config_file":{"url":"https://v3.fal.media/files/x/config.json"}}"#)
        }
        router.put("fal-ai/{model}/requests/{id}/cancel") { _, context -> Response in
            context.parameters.get("id") == "bad" ? json(400, #"{"status":"ALREADY_COMPLETED"}"#) : json(202, #"{"status":"CANCELLATION_REQUESTED"}"#)
        }
        return router
    }
}

@Suite struct FALClientTests {
    struct TrainerInput: Encodable { var images_data_url: String; var trigger_phrase: String; var steps: Int }

    @Test func uploadSubmitStatusResultCancel() async throws {
        let fal = FakeFAL()
        try await LoopbackHTTPServer.run(fal.router()) { base in
            let client = FALClient(configuration: .init(key: FakeFAL.key, queueBaseURL: base, restBaseURL: base))
            let zip = FileManager.default.temporaryDirectory.appendingPathComponent("fal-\(UUID()).zip").path
            let bytes = SecureRandom.bytes(count: 300_000)
            try Data(bytes).write(to: URL(fileURLWithPath: zip))
            defer { try? FileManager.default.removeItem(atPath: zip) }

            let fileURL = try await client.upload(fileAt: zip, contentType: "application/zip", fileName: "photos.zip")
            #expect(fileURL.hasPrefix(base + "/files/") && fileURL.hasSuffix("/photos.zip"))
            #expect(fal.uploads.withLock { $0.values.first } == bytes, "the ZIP arrived intact")

            let webhook = "https://bot.example.com/fal/webhook?job=42&x=a b"
            let handle = try await client.submit(model: "fal-ai/flux-lora-portrait-trainer",
                                                 input: TrainerInput(images_data_url: fileURL, trigger_phrase: "ohwx person", steps: 2500), webhookURL: webhook)
            #expect(fal.webhooks.withLock { $0.last } == webhook, "the webhook URL, query and all, survives encoding")
            #expect(handle.statusURL == handle.responseURL + "/status")
            let status = try await client.status(handle)
            #expect(status.status == "IN_QUEUE" && status.queuePosition == 2 && !status.isCompleted && status.error == nil)
            struct Output: Decodable { struct File: Decodable { var url: String }; var diffusers_lora_file: File }
            #expect(try await client.result(handle, as: Output.self).diffusers_lora_file.url == "https://v3.fal.media/files/x/lora.safetensors")
            #expect(try await client.cancel(handle) == .requested)
            // Storage PUTs carry no FAL key; everything else carries it.
            #expect(fal.authorizations.withLock { $0 }.allSatisfy { $0 == "Key \(FakeFAL.key)" })
        }
    }

    @Test func errorsAreTyped() async throws {
        let fal = FakeFAL()
        try await LoopbackHTTPServer.run(fal.router()) { base in
            let client = FALClient(configuration: .init(key: FakeFAL.key, queueBaseURL: base, restBaseURL: base))
            let handle = try await client.submit(model: "fal-ai/bad-model", input: ["prompt": "x"], webhookURL: nil)
            do {
                _ = try await client.result(handle, as: [String: String].self)
                Issue.record("a 422 result decoded")
            } catch let error as FALError {
                #expect(error.status == 422 && !error.retryable && error.detail == "body.images_data_url: field required")
            }
            #expect(try await client.cancel(handle) == .alreadyCompleted)
            let wrongKey = FALClient(configuration: .init(key: "nope:nope", queueBaseURL: base, restBaseURL: base))
            do {
                _ = try await wrongKey.submit(model: "fal-ai/flux-lora", input: ["prompt": "x"], webhookURL: nil)
                Issue.record("a wrong key was accepted")
            } catch let error as FALError {
                #expect(error.status == 401 && !"\(error)".contains("nope:nope"))
            }
        }
    }
}
