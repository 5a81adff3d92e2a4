import Foundation

/// An async HTTP client over libcurl.
///
/// All clients share one engine: a dedicated thread driving a curl multi handle. Requests run
/// concurrently on it, reuse its pooled connections, and never block a Swift or NIO thread.
public struct CurlClient: Sendable {
    /// A client; cheap to create, all share the process's engine.
    public init() {}

    /// Sends `request` and returns the response, whatever its status.
    ///
    /// Cancelling the calling task aborts the transfer and throws `CancellationError`.
    /// - Throws: `CurlError` when no response arrives (refused, timed out, broken, too large).
    public func execute(_ request: CurlRequest) async throws -> CurlResponse {
        let transfer = Transfer(request: request)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                transfer.continuation = continuation
                CurlEngine.shared.submit(transfer)
            }
        } onCancel: {
            transfer.markCancelled()
            CurlEngine.shared.cancel(transfer)
        }
    }

    /// GET `url`.
    public func get(_ url: String, headers: [(name: String, value: String)] = [], timeout: Duration = .seconds(30)) async throws -> CurlResponse {
        try await execute(CurlRequest(.get, url: url, headers: headers, timeout: timeout))
    }
}
