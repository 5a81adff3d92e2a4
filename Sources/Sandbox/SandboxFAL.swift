import Curl
public import FAL
public import Foundation
import Hummingbird
import Imaging
public import JSON
public import Signing
import Synchronization
import Zip

/// A stand-in for FAL (external-apis §1–§4): storage upload, the queue for the three models,
/// signed webhooks (§2.2) and the JWKS that verifies them.
///
/// The trainers open the uploaded ZIP with libzip and fail like the real service would on an
/// archive with too few images or with non-image entries; after a configurable delay they
/// produce a LoRA file. `fal-ai/flux-lora` returns real JPEGs of the requested size, and only
/// accepts LoRA files this sandbox produced. Faults can be injected for the next requests.
public final class SandboxFAL: Sendable {
    public struct Configuration: Sendable {
        /// The accepted `Authorization: Key …` value.
        public var key: String
        /// Sent as `X-Fal-Webhook-User-Id`.
        public var userID: String
        public var trainingDuration: Duration
        public var generationDuration: Duration
        /// Images a training archive must hold, per model. The real portrait trainer only
        /// recommends 10 (§4.1) and the fast trainer needs 4 (§4.2); the sandbox holds the
        /// portrait trainer to our own product minimum so a short ZIP is caught.
        public var minimumImages: [String: Int]
        /// First retry delay of a failed webhook delivery; doubles, 10 attempts in all (§2.1).
        public var webhookRetryDelay: Duration

        public init(
            key: String = "sandbox-key-id:sandbox-key-secret", userID: String = "sandbox-user",
            trainingDuration: Duration = .seconds(2), generationDuration: Duration = .milliseconds(300),
            minimumImages: [String: Int] = [FALModel.portraitTrainer: 10, FALModel.fastTraining: 4],
            webhookRetryDelay: Duration = .milliseconds(200)
        ) {
            self.key = key
            self.userID = userID
            self.trainingDuration = trainingDuration
            self.generationDuration = generationDuration
            self.minimumImages = minimumImages
            self.webhookRetryDelay = webhookRetryDelay
        }
    }

    /// A fault for the next request(s).
    public enum Fault: Sendable, Equatable {
        /// The next submitted request ends in `status: ERROR` with this message.
        case errorResult(String)
        /// The next request completes but its webhook is never delivered.
        case lostWebhook
        /// The next request's webhook is delivered twice.
        case duplicateWebhook
        /// The next request never completes (until cancelled).
        case stuck
        /// The next HTTP call to the queue or storage answers this 5xx.
        case serverError(Int)
        /// The next HTTP call to the queue or storage answers only after this delay.
        case slowResponse(Duration)

        var isHTTPLevel: Bool {
            switch self {
            case .serverError, .slowResponse: true
            default: false
            }
        }
    }

    /// One queued request as the sandbox tracks it.
    public struct QueuedRequest: Sendable {
        public enum Status: String, Sendable { case inQueue = "IN_QUEUE", inProgress = "IN_PROGRESS", completed = "COMPLETED" }
        public var id: String
        public var model: String
        public var input: JSONValue
        public var webhookURL: String?
        public var status: Status
        /// The result: HTTP status and body of `GET response_url`.
        public var resultStatus: Int?
        public var resultBody: String?
        public var error: String?
        public var cancelled = false
        public var webhookDeliveries = 0
        public var faults: [Fault] = []
    }

    struct State: Sendable {
        var requests: [String: QueuedRequest] = [:]
        var order: [String] = []
        var pendingFaults: [Fault] = []
        var keys: [Ed25519PrivateKey]
        var httpCalls = 0
        var uploads = 0
    }

    public let configuration: Configuration
    let transcript: Transcript
    let state: Mutex<State>
    let storage: SandboxFileStore
    let http = CurlClient()
    let baseURL = Mutex<String>("")

    /// Files go to `storageDirectory`, or to a fresh temporary folder removed with the Sandbox.
    public init(configuration: Configuration = .init(), transcript: Transcript, storageDirectory: String? = nil) {
        self.configuration = configuration
        self.transcript = transcript
        self.state = Mutex(State(keys: [Ed25519PrivateKey()]))
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("aisha-sandbox-\(UUID().uuidString)").path
        self.storage = SandboxFileStore(directory: storageDirectory ?? temporary, isTemporary: storageDirectory == nil)
    }

    // MARK: - Controls for tests and the demo

    /// Queues faults for the next requests (result faults) or HTTP calls (`serverError`, `slowResponse`).
    public func inject(_ faults: Fault...) { state.withLock { $0.pendingFaults += faults } }
    public func inject(contentsOf faults: [Fault]) { state.withLock { $0.pendingFaults += faults } }

    /// Adds a new signing key and signs with it from now on; the JWKS serves both (rotation).
    public func rotateKey() { state.withLock { $0.keys.append(Ed25519PrivateKey()) } }

    /// The public keys the JWKS serves.
    public var publicKeys: [Ed25519PublicKey] { state.withLock { $0.keys.map(\.publicKey) } }

    /// Files uploaded to storage so far.
    public var uploadCount: Int { state.withLock { $0.uploads } }

    /// Every request submitted so far, oldest first.
    public var requests: [QueuedRequest] { state.withLock { state in state.order.compactMap { state.requests[$0] } } }

    public func request(_ id: String) -> QueuedRequest? { state.withLock { $0.requests[id] } }

    /// Where uploaded files are kept.
    public var storageDirectory: String { storage.directory }

    /// The bytes of a file in sandbox storage, by its URL.
    public func file(at url: String) -> Data? { storage.id(fromURL: url).flatMap { storage.read($0) } }

    /// Headers signed with the current key, as a delivery would carry them — for tests that
    /// craft their own (stale, replayed or mismatched) webhooks.
    public func signedHeaders(requestID: String, body: [UInt8], timestamp: Date = Date()) -> FALWebhookSignature.Headers {
        FALWebhookSignature.sign(requestID: requestID, userID: configuration.userID, timestamp: Int64(timestamp.timeIntervalSince1970), body: body, key: state.withLock { $0.keys.last! })
    }

    /// Completes a stuck request now (as if the model finally finished), webhook and all.
    public func release(_ id: String) async { await process(id) }

    // MARK: - Routes

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get(".well-known/jwks.json") { _, _ in SandboxHTTP.json(200, JWKS.document(for: self.publicKeys)) }

        router.post("storage/upload/initiate") { request, _ -> Response in
            if let failure = await self.httpFault() { return failure }
            guard self.authorized(request) else { return Self.unauthorized }
            var request = request
            let body = try await request.collectBody(upTo: 64 << 10)
            let json = try? JSONValue(parsing: body.readableBytesView)
            let name = Self.safeFileName(json?["file_name"]?.stringValue ?? "upload.bin")
            let id = UUID().uuidString.lowercased()
            let base = self.base(request)
            return SandboxHTTP.json(200, JSONValue.object([
                "upload_url": .string("\(base)/storage/upload/put/\(id)?signature=\(Hex.encode(SecureRandom.bytes(count: 8)))"),
                "file_url": .string("\(base)/files/\(id)/\(name)"),
            ]))
        }
        router.put("storage/upload/put/{id}") { request, context -> Response in
            if let failure = await self.httpFault() { return failure }
            guard let id = context.parameters.get("id"), SandboxFileStore.isValidID(id), request.uri.queryParameters.get("signature") != nil else {
                return SandboxHTTP.json(403, #"{"detail":"Invalid upload signature"}"#)
            }
            try await self.storage.write(id, from: request.body)
            self.state.withLock { $0.uploads += 1 }
            return Response(status: .ok)
        }
        router.get("files/{id}/{name}") { _, context -> Response in
            guard let id = context.parameters.get("id"), let data = self.storage.read(id) else { return SandboxHTTP.json(404, #"{"detail":"Not found"}"#) }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }

        router.post("{owner}/{model}") { request, context -> Response in
            if let failure = await self.httpFault() { return failure }
            guard self.authorized(request) else { return Self.unauthorized }
            let model = "\(context.parameters.get("owner") ?? "")/\(context.parameters.get("model") ?? "")"
            guard [FALModel.portraitTrainer, FALModel.fastTraining, FALModel.fluxLora].contains(model) else {
                return SandboxHTTP.json(404, #"{"detail":"Application not found"}"#)
            }
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            guard let input = try? JSONValue(parsing: body.readableBytesView), case .object = input else {
                return SandboxHTTP.json(422, #"{"detail":[{"loc":["body"],"msg":"Input should be a valid dictionary","type":"dict_type"}]}"#)
            }
            let webhook = request.uri.queryParameters.get("fal_webhook").map { String($0) }
            let id = UUID().uuidString.lowercased()
            let faults = self.state.withLock { state -> [Fault] in
                let taken = state.pendingFaults.filter { !$0.isHTTPLevel }
                state.pendingFaults.removeAll { !$0.isHTTPLevel }
                state.requests[id] = QueuedRequest(id: id, model: model, input: input, webhookURL: webhook, status: .inQueue, faults: taken)
                state.order.append(id)
                return taken
            }
            self.transcript.record(chatID: 0, .fal, "submit", text: "\(model) \(id)" + (faults.isEmpty ? "" : " faults: \(faults)"))
            if !faults.contains(.stuck) {
                let delay = model == FALModel.fluxLora ? self.configuration.generationDuration : self.configuration.trainingDuration
                Task {
                    self.state.withLock { $0.requests[id]?.status = .inProgress }
                    try? await Task.sleep(for: delay)
                    await self.process(id)
                }
            }
            return SandboxHTTP.json(200, self.urls(id: id, model: model, request: request, extra: ["status": .string("IN_QUEUE"), "queue_position": .number(0)]))
        }
        router.get("{owner}/{model}/requests/{id}/status") { request, context -> Response in
            if let failure = await self.httpFault() { return failure }
            guard self.authorized(request) else { return Self.unauthorized }
            guard let queued = self.request(context.parameters.get("id") ?? "") else { return SandboxHTTP.json(404, #"{"detail":"Request not found"}"#) }
            var extra: [String: JSONValue] = ["status": .string(queued.status.rawValue)]
            if queued.status == .inQueue { extra["queue_position"] = .number(0) }
            if queued.status == .completed { extra["metrics"] = .object(["inference_time": .number(1.5)]) }
            if let error = queued.error { extra["error"] = .string(error); extra["error_type"] = .string(queued.cancelled ? "client_cancelled" : "validation_error") }
            return SandboxHTTP.json(200, self.urls(id: queued.id, model: queued.model, request: request, extra: extra))
        }
        router.get("{owner}/{model}/requests/{id}") { request, context -> Response in
            if let failure = await self.httpFault() { return failure }
            guard self.authorized(request) else { return Self.unauthorized }
            guard let queued = self.request(context.parameters.get("id") ?? "") else { return SandboxHTTP.json(404, #"{"detail":"Request not found"}"#) }
            guard queued.status == .completed, let status = queued.resultStatus, let body = queued.resultBody else {
                return SandboxHTTP.json(400, #"{"detail":"Request is still in progress"}"#)
            }
            return SandboxHTTP.json(status, body)
        }
        router.put("{owner}/{model}/requests/{id}/cancel") { request, context -> Response in
            if let failure = await self.httpFault() { return failure }
            guard self.authorized(request) else { return Self.unauthorized }
            let id = context.parameters.get("id") ?? ""
            let outcome = self.state.withLock { state -> Int in
                guard var queued = state.requests[id] else { return 404 }
                guard queued.status != .completed else { return 400 }
                queued.status = .completed
                queued.cancelled = true
                queued.error = "Request cancelled"
                queued.resultStatus = 499
                queued.resultBody = #"{"detail":"Request cancelled","error_type":"client_cancelled"}"#
                state.requests[id] = queued
                return 202
            }
            switch outcome {
            case 202:
                self.transcript.record(chatID: 0, .fal, "cancel", text: id)
                return SandboxHTTP.json(202, #"{"status":"CANCELLATION_REQUESTED"}"#)
            case 400: return SandboxHTTP.json(400, #"{"status":"ALREADY_COMPLETED"}"#)
            default: return SandboxHTTP.json(404, #"{"status":"NOT_FOUND"}"#)
            }
        }
    }

    static let unauthorized = SandboxHTTP.json(401, #"{"detail":"No user found for Key ID and Secret"}"#)

    private func authorized(_ request: Request) -> Bool {
        let given = Array((request.headers[.authorization] ?? "").utf8), expected = Array("Key \(configuration.key)".utf8)
        return ConstantTime.equals(given, expected)
    }

    private func base(_ request: Request) -> String {
        let base = "http://" + (request.head.authority ?? "127.0.0.1")
        baseURL.withLock { $0 = base }
        return base
    }

    private func urls(id: String, model: String, request: Request, extra: [String: JSONValue]) -> JSONValue {
        let prefix = "\(base(request))/\(model)/requests/\(id)"
        var object: [String: JSONValue] = [
            "request_id": .string(id), "response_url": .string(prefix), "status_url": .string(prefix + "/status"), "cancel_url": .string(prefix + "/cancel"),
        ]
        object.merge(extra) { $1 }
        return .object(object)
    }

    /// Applies the next HTTP-level fault, if any: a 5xx answer, or a delay.
    private func httpFault() async -> Response? {
        let fault = state.withLock { state -> Fault? in
            state.httpCalls += 1
            guard let index = state.pendingFaults.firstIndex(where: \.isHTTPLevel) else { return nil }
            return state.pendingFaults.remove(at: index)
        }
        switch fault {
        case .serverError(let status)?:
            transcript.record(chatID: 0, .fal, "fault", text: "HTTP \(status)")
            return SandboxHTTP.json(status, #"{"detail":"Runner server error","error_type":"runner_server_error"}"#)
        case .slowResponse(let delay)?:
            transcript.record(chatID: 0, .fal, "fault", text: "slow \(delay)")
            try? await Task.sleep(for: delay)
            return nil
        default:
            return nil
        }
    }

    static func safeFileName(_ name: String) -> String {
        let cleaned = String(name.unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0) }.map(Character.init))
        return cleaned.isEmpty || cleaned.hasPrefix(".") ? "upload.bin" : cleaned
    }

    // MARK: - Running a request

    /// Runs the model for request `id`, stores its result and delivers the webhook.
    func process(_ id: String) async {
        guard let queued = request(id), !queued.cancelled, queued.resultStatus == nil else { return }
        var (status, body) = await run(queued)
        if case .errorResult(let message)? = queued.faults.first(where: { if case .errorResult = $0 { true } else { false } }) {
            (status, body) = (422, #"{"detail":[{"loc":["body"],"msg":\#(Self.quoted(message)),"type":"value_error"}]}"#)
        }
        let failed = !(200..<300).contains(status)
        let stored = state.withLock { state -> Bool in
            guard var current = state.requests[id], !current.cancelled, current.resultStatus == nil else { return false }
            current.status = .completed
            current.resultStatus = status
            current.resultBody = body
            current.error = failed ? "Invalid status code: \(status)" : nil
            state.requests[id] = current
            return true
        }
        guard stored else { return }
        transcript.record(chatID: 0, .fal, failed ? "failed" : "done", text: "\(queued.model) \(id)")
        guard let webhook = queued.webhookURL, !queued.faults.contains(.lostWebhook) else {
            if queued.webhookURL != nil { transcript.record(chatID: 0, .fal, "lost", text: "webhook for \(id) dropped") }
            return
        }
        let payload = failed
            ? #"{"request_id":"\#(id)","gateway_request_id":"\#(id)","status":"ERROR","error":"Invalid status code: \#(status)","payload":\#(body)}"#
            : #"{"request_id":"\#(id)","gateway_request_id":"\#(id)","status":"OK","payload":\#(body),"error":null}"#
        let copies = queued.faults.contains(.duplicateWebhook) ? 2 : 1
        for _ in 0..<copies { await deliverWebhook(id: id, url: webhook, body: Array(payload.utf8)) }
    }

    /// POSTs a signed webhook (§2.2), retrying up to 10 times with doubling delays (§2.1).
    func deliverWebhook(id: String, url: String, body: [UInt8]) async {
        var delay = configuration.webhookRetryDelay
        for attempt in 1...10 {
            let key = state.withLock { $0.keys.last! }
            let headers = FALWebhookSignature.sign(requestID: id, userID: configuration.userID, timestamp: Int64(Date().timeIntervalSince1970), body: body, key: key)
            let request = CurlRequest(.post, url: url, headers: [
                ("Content-Type", "application/json"), ("X-Fal-Webhook-Request-Id", headers.requestID), ("X-Fal-Webhook-User-Id", headers.userID),
                ("X-Fal-Webhook-Timestamp", headers.timestamp), ("X-Fal-Webhook-Signature", headers.signature),
            ], body: .bytes(Data(body)), timeout: .seconds(15))
            let status = (try? await http.execute(request))?.status ?? 0
            state.withLock { $0.requests[id]?.webhookDeliveries += 1 }
            transcript.record(chatID: 0, .fal, "webhook", text: "\(id) attempt \(attempt) → \(status == 0 ? "unreachable" : String(status))")
            if (200..<300).contains(status) { return }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(30))
        }
    }

    private func run(_ queued: QueuedRequest) async -> (Int, String) {
        do {
            switch queued.model {
            case FALModel.fluxLora: return try await generate(queued)
            default: return try await train(queued)
            }
        } catch let failure as ModelFailure {
            return (422, #"{"detail":[{"loc":["body",\#(Self.quoted(failure.field))],"msg":\#(Self.quoted(failure.message)),"type":"value_error"}]}"#)
        } catch {
            return (500, #"{"detail":"Internal error","error_type":"internal_error"}"#)
        }
    }

    struct ModelFailure: Error {
        var field: String
        var message: String
    }

    private func train(_ queued: QueuedRequest) async throws -> (Int, String) {
        guard let url = queued.input["images_data_url"]?.stringValue else { throw ModelFailure(field: "images_data_url", message: "field required") }
        let archive = FileManager.default.temporaryDirectory.appendingPathComponent("sandbox-train-\(queued.id).zip").path
        defer { try? FileManager.default.removeItem(atPath: archive) }
        if let id = storage.id(fromURL: url), storage.exists(id) {
            try FileManager.default.copyItem(atPath: storage.path(id), toPath: archive)
        } else {
            let response = try? await http.execute(CurlRequest(.get, url: url, destination: .file(path: archive), timeout: .seconds(120)))
            guard response?.isSuccess == true else { throw ModelFailure(field: "images_data_url", message: "Could not download the archive") }
        }
        let images = try Self.countImages(inArchiveAt: archive)
        let minimum = configuration.minimumImages[queued.model] ?? 1
        guard images >= minimum else {
            throw ModelFailure(field: "images_data_url", message: "The archive holds \(images) images; at least \(minimum) are required")
        }
        // A LoRA file whose bytes depend on the request, so every training is distinguishable.
        let lora = Array("SANDBOX-LORA \(queued.model) \(queued.id) images=\(images)\n".utf8) + SecureRandom.bytes(count: 4096)
        let loraID = UUID().uuidString.lowercased(), configID = UUID().uuidString.lowercased()
        try storage.write(loraID, bytes: lora)
        let trigger = queued.input["trigger_phrase"]?.stringValue ?? queued.input["trigger_word"]?.stringValue ?? ""
        let config = Array(#"{"trigger_phrase":\#(Self.quoted(trigger)),"images":\#(images)}"#.utf8)
        try storage.write(configID, bytes: config)
        let base = baseURL.withLock { $0 }
        return (200, #"{"diffusers_lora_file":{"url":"\#(base)/files/\#(loraID)/pytorch_lora_weights.safetensors","content_type":"application/octet-stream","file_name":"pytorch_lora_weights.safetensors","file_size":\#(lora.count)},"config_file":{"url":"\#(base)/files/\#(configID)/config.json","content_type":"application/octet-stream","file_name":"config.json","file_size":\#(config.count)}}"#)
    }

    /// Counts the images in a training archive; captions (`.txt`) and folders are allowed, any
    /// other entry that is not a JPEG, PNG or WebP fails the training, as the real trainer's
    /// preprocessing does.
    static func countImages(inArchiveAt path: String) throws -> Int {
        let reader: ZipReader
        do { reader = try ZipReader(path: path) } catch { throw ModelFailure(field: "images_data_url", message: "The archive could not be opened: \(error)") }
        var images = 0
        for (index, entry) in reader.entries.enumerated() {
            if entry.name.hasSuffix("/") || entry.name.lowercased().hasSuffix(".txt") { continue }
            let data: Data
            do { data = try reader.contents(at: index) } catch { throw ModelFailure(field: "images_data_url", message: "The archive is damaged: \(error)") }
            guard ImageHeader.parse(data.prefix(1 << 20)) != nil else {
                throw ModelFailure(field: "images_data_url", message: "Unsupported file in the archive: \(entry.name)")
            }
            images += 1
        }
        return images
    }

    private func generate(_ queued: QueuedRequest) async throws -> (Int, String) {
        let input = queued.input
        guard let prompt = input["prompt"]?.stringValue, !prompt.trimmingCharacters(in: .whitespaces).isEmpty else { throw ModelFailure(field: "prompt", message: "field required") }
        if case .array(let loras)? = input["loras"] {
            for lora in loras {
                guard let path = lora["path"]?.stringValue, let id = storage.id(fromURL: path), storage.exists(id) else {
                    throw ModelFailure(field: "loras", message: "Could not load LoRA weights from the given path")
                }
            }
        }
        let (width, height) = try Self.imageSize(input["image_size"])
        let count: Int
        switch input["num_images"] {
        case nil: count = 1
        case .number(let n)?: count = Int(n)
        default: count = 0
        }
        guard (1...4).contains(count) else { throw ModelFailure(field: "num_images", message: "Input should be less than or equal to 4") }
        let seed: UInt64 = if case .number(let n)? = input["seed"], n >= 0, n < 1.8e19 { UInt64(n) } else { UInt64.random(in: (1 << 53)...UInt64.max) }
        let base = baseURL.withLock { $0 }
        var images: [String] = []
        for index in 0..<count {
            let shadeSeed = seed &+ UInt64(index)
            let jpeg = JPEGEncoder.encode(width: width, height: height, seed: shadeSeed) { x, y in UInt8(truncatingIfNeeded: (x / 64 + y / 64) * 37 &+ Int(shadeSeed % 200)) }
            let id = UUID().uuidString.lowercased()
            try storage.write(id, bytes: jpeg)
            images.append(#"{"url":"\#(base)/files/\#(id)/image-\#(index).jpg","width":\#(width),"height":\#(height),"content_type":"image/jpeg"}"#)
        }
        let nsfw = Array(repeating: "false", count: count).joined(separator: ",")
        return (200, #"{"images":[\#(images.joined(separator: ","))],"seed":\#(seed),"has_nsfw_concepts":[\#(nsfw)],"prompt":\#(Self.quoted(prompt)),"timings":{"inference":0.3}}"#)
    }

    /// The pixel size of an `image_size` preset or `{width, height}` (§4.3).
    static func imageSize(_ value: JSONValue?) throws -> (Int, Int) {
        switch value {
        case nil: return (1024, 768)
        case .string(let preset)?:
            let presets = ["square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024), "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576)]
            guard let size = presets[preset] else { throw ModelFailure(field: "image_size", message: "Input should be 'square_hd', 'square', 'portrait_4_3', 'portrait_16_9', 'landscape_4_3' or 'landscape_16_9'") }
            return size
        case .object?:
            guard case .number(let w)? = value?["width"], case .number(let h)? = value?["height"], (1...14142).contains(w), (1...14142).contains(h) else {
                throw ModelFailure(field: "image_size", message: "width and height must be positive integers")
            }
            return (Int(w), Int(h))
        default:
            throw ModelFailure(field: "image_size", message: "Input should be a valid preset or object")
        }
    }

    static func quoted(_ text: String) -> String {
        String(decoding: (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
    }
}

/// Files uploaded to or produced by the sandbox FAL, one file per id on disk.
final class SandboxFileStore: Sendable {
    let directory: String
    /// A folder the store made for itself is removed with it; one the caller named is kept.
    let isTemporary: Bool

    init(directory: String, isTemporary: Bool) {
        self.directory = directory
        self.isTemporary = isTemporary
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        if isTemporary { try? FileManager.default.removeItem(atPath: directory) }
    }

    static func isValidID(_ id: String) -> Bool { UUID(uuidString: id) != nil }

    func path(_ id: String) -> String { directory + "/" + id.lowercased() }

    func exists(_ id: String) -> Bool { Self.isValidID(id) && FileManager.default.fileExists(atPath: path(id)) }

    func read(_ id: String) -> Data? { Self.isValidID(id) ? FileManager.default.contents(atPath: path(id)) : nil }

    func write(_ id: String, bytes: [UInt8]) throws { try Data(bytes).write(to: URL(fileURLWithPath: path(id))) }

    /// Streams a request body to disk, so a large ZIP never sits in memory.
    func write(_ id: String, from body: RequestBody) async throws {
        let temporary = path(id) + ".part"
        _ = FileManager.default.createFile(atPath: temporary, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        do {
            for try await buffer in body { try handle.write(contentsOf: buffer.readableBytesView) }
            try handle.close()
            try FileManager.default.moveItem(atPath: temporary, toPath: path(id))
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// The id in a sandbox file URL `…/files/<id>/<name>`.
    func id(fromURL url: String) -> String? {
        let parts = url.split(separator: "/")
        guard let index = parts.lastIndex(of: "files"), index + 1 < parts.count else { return nil }
        let id = String(parts[index + 1])
        return Self.isValidID(id) ? id.lowercased() : nil
    }
}
