import Curl
import Foundation
import JSON

/// FAL's queue and storage API (external-apis §1, §3A). Every call carries
/// `Authorization: Key …` (except the pre-signed storage PUT) and a deadline.
public struct FALClient: Sendable {
    /// Where FAL is and how to authenticate.
    public struct Configuration: Sendable {
        /// `FAL_KEY` (`key_id:key_secret`). A secret: never logged.
        public var key: String
        /// The queue host (`https://queue.fal.run`; the Sandbox's in tests).
        public var queueBaseURL: String
        /// The REST host (`https://rest.fal.ai`), for storage.
        public var restBaseURL: String
        /// Deadline for queue calls.
        public var timeout: Duration = .seconds(30)
        /// Deadline for uploading a file (training ZIPs are 5–60 MB).
        public var uploadTimeout: Duration = .seconds(600)

        /// A configuration.
        public init(key: String, queueBaseURL: String = "https://queue.fal.run", restBaseURL: String = "https://rest.fal.ai") {
            self.key = key
            self.queueBaseURL = queueBaseURL
            self.restBaseURL = restBaseURL
        }
    }

    /// A submitted request: key records on `requestID`; use FAL's own URLs, never rebuilt ones.
    public struct QueueHandle: Codable, Sendable, Equatable {
        public var requestID: String
        public var responseURL: String
        public var statusURL: String
        public var cancelURL: String
        enum CodingKeys: String, CodingKey { case requestID = "request_id", responseURL = "response_url", statusURL = "status_url", cancelURL = "cancel_url" }

        /// A handle.
        public init(requestID: String, responseURL: String, statusURL: String, cancelURL: String) {
            self.requestID = requestID
            self.responseURL = responseURL
            self.statusURL = statusURL
            self.cancelURL = cancelURL
        }
    }

    /// A request's state in the queue.
    public struct QueueStatus: Decodable, Sendable, Equatable {
        /// `IN_QUEUE`, `IN_PROGRESS` or `COMPLETED` (which does not mean success: fetch the result).
        public var status: String
        public var queuePosition: Int?
        /// Present when a COMPLETED run failed.
        public var error: String?
        public var errorType: String?
        enum CodingKeys: String, CodingKey { case status, queuePosition = "queue_position", error, errorType = "error_type" }

        /// Whether the request has finished (successfully or not).
        public var isCompleted: Bool { status == "COMPLETED" }
    }

    /// What a cancel achieved.
    public enum CancelOutcome: String, Sendable, Equatable {
        case requested = "CANCELLATION_REQUESTED", alreadyCompleted = "ALREADY_COMPLETED", notFound = "NOT_FOUND", ok = "OK"
    }

    public let configuration: Configuration
    private let http = CurlClient()

    /// A client.
    public init(configuration: Configuration) { self.configuration = configuration }

    private var authorization: (name: String, value: String) { ("Authorization", "Key \(configuration.key)") }

    // MARK: Storage

    private struct Initiate: Encodable { var content_type: String, file_name: String }
    private struct Initiated: Decodable { var upload_url: String, file_url: String }

    /// Uploads a file to FAL storage (initiate, then a pre-signed PUT) and returns its public URL.
    public func upload(fileAt path: String, contentType: String, fileName: String) async throws -> String {
        let initiate = try CurlRequest.json(
            .post, url: "\(configuration.restBaseURL)/storage/upload/initiate?storage_type=fal-cdn-v3",
            value: Initiate(content_type: contentType, file_name: fileName), headers: [authorization, ("Accept", "application/json")],
            timeout: configuration.timeout
        )
        let slot: Initiated = try decode(try await http.execute(initiate))
        // The URL is pre-signed: no FAL Authorization header on this PUT (§3A).
        let put = CurlRequest(.put, url: slot.upload_url, headers: [("Content-Type", contentType)], body: .file(path: path), timeout: configuration.uploadTimeout)
        let response = try await http.execute(put)
        guard response.isSuccess else { throw FALError(response: response) }
        return slot.file_url
    }

    // MARK: Queue

    /// Submits `input` to `model` (e.g. `fal-ai/flux-lora-portrait-trainer`); FAL will POST the
    /// result to `webhookURL`.
    public func submit(model: String, input: some Encodable, webhookURL: String?) async throws -> QueueHandle {
        var url = "\(configuration.queueBaseURL)/\(model)"
        if let webhookURL {
            // A webhook URL with its own query must be percent-encoded as a whole (§1.2).
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            url += "?fal_webhook=" + (webhookURL.addingPercentEncoding(withAllowedCharacters: allowed) ?? webhookURL)
        }
        return try decode(try await http.execute(try CurlRequest.json(.post, url: url, value: input, headers: [authorization], timeout: configuration.timeout)))
    }

    /// The request's queue status.
    public func status(_ handle: QueueHandle) async throws -> QueueStatus {
        try decode(try await http.execute(CurlRequest(.get, url: handle.statusURL + "?logs=0", headers: [authorization], timeout: configuration.timeout)))
    }

    /// The model's output.
    /// - Throws: `FALError` when the run failed (422 validation, 5xx infrastructure …).
    public func result<Output: Decodable>(_ handle: QueueHandle, as: Output.Type = Output.self) async throws -> Output {
        try decode(try await http.execute(CurlRequest(.get, url: handle.responseURL, headers: [authorization], timeout: configuration.timeout)))
    }

    private struct CancelReply: Decodable { var status: String? }

    /// Asks FAL to cancel: queued requests are removed, running ones signalled.
    public func cancel(_ handle: QueueHandle) async throws -> CancelOutcome {
        let response = try await http.execute(CurlRequest(.put, url: handle.cancelURL, headers: [authorization], body: .bytes(Data()), timeout: configuration.timeout))
        let reply = try? JSONDecoder().decode(CancelReply.self, from: response.body)
        if let status = reply?.status, let outcome = CancelOutcome(rawValue: status) { return outcome }
        if response.status == 404 { return .notFound }
        guard response.isSuccess else { throw FALError(response: response) }
        return .requested
    }

    private func decode<T: Decodable>(_ response: CurlResponse) throws -> T {
        guard response.isSuccess else { throw FALError(response: response) }
        do { return try JSONDecoder().decode(T.self, from: response.body) } catch {
            throw FALError(status: response.status, detail: "unreadable FAL response", errorType: nil, retryable: false)
        }
    }
}

/// A FAL error response (external-apis §1.5), with whether retrying may help.
public struct FALError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    /// `detail` as text (a validation error's field messages joined).
    public var detail: String
    /// `error_type` (body or `X-Fal-Error-Type`), e.g. `request_timeout`.
    public var errorType: String?
    /// Whether a retry may succeed (5xx, 408, 409, 429, or `X-Fal-Retryable: true`).
    public var retryable: Bool

    public var description: String { "FALError(\(status)\(errorType.map { ", \($0)" } ?? ""), \(detail))" }

    init(status: Int, detail: String, errorType: String?, retryable: Bool) {
        self.status = status
        self.detail = detail
        self.errorType = errorType
        self.retryable = retryable
    }

    init(response: CurlResponse) {
        struct Body: Decodable {
            struct Item: Decodable { var msg: String?; var loc: [JSONValue]? }
            var detail: JSONValue?
            var error_type: String?
        }
        let body = try? JSONDecoder().decode(Body.self, from: response.body)
        let detail: String
        switch body?.detail {
        case .string(let text): detail = text
        case .array(let items):
            detail = items.compactMap { item -> String? in
                guard let message = item["msg"]?.stringValue else { return nil }
                let location: String
                if case .array(let parts) = item["loc"] ?? .null {
                    location = parts.compactMap { part -> String? in
                        if case .string(let s) = part { return s }
                        if case .number(let n) = part { return String(Int(n)) }
                        return nil
                    }.joined(separator: ".")
                } else { location = "" }
                return location.isEmpty ? message : "\(location): \(message)"
            }.joined(separator: "; ")
        default: detail = "HTTP \(response.status)"
        }
        let flag = response.header("X-Fal-Retryable")
        self.init(
            status: response.status, detail: detail, errorType: body?.error_type ?? response.header("X-Fal-Error-Type"),
            retryable: flag.map { $0 == "true" } ?? (response.status >= 500 || [408, 409, 429].contains(response.status))
        )
    }
}

extension FALClient {
    /// The handle of a request our records know only by id: `{queue}/{model}/requests/{id}` —
    /// the documented form for models without a subpath (§1.2), which all of ours are.
    public func handle(model: String, requestID: String) -> QueueHandle {
        let prefix = "\(configuration.queueBaseURL)/\(model)/requests/\(requestID)"
        return QueueHandle(requestID: requestID, responseURL: prefix, statusURL: prefix + "/status", cancelURL: prefix + "/cancel")
    }

    /// Asks about a request whose webhook never came: nil while it is still queued or running;
    /// once completed, its outcome shaped as the webhook would have delivered it (a 4xx result
    /// is an ERROR; a 5xx is thrown, to ask again later).
    public func poll(_ handle: QueueHandle) async throws -> FALWebhookPayload? {
        guard try await status(handle).isCompleted else { return nil }
        do {
            return FALWebhookPayload(requestID: handle.requestID, status: .ok, payload: try await result(handle, as: JSONValue.self))
        } catch let error as FALError where !error.retryable {
            return FALWebhookPayload(requestID: handle.requestID, status: .error, error: "Invalid status code: \(error.status)")
        }
    }
}
