import Foundation
import HTTPServer
import Hummingbird
import Logging

/// The local stand-ins for the two services we cannot reach from here — the Telegram Bot API and
/// FAL — on one loopback HTTP server. Paths do not overlap (`/bot…`, `/file/bot…` for Telegram;
/// `/fal-ai/…`, `/storage/…`, `/files/…`, `/.well-known/jwks.json` for FAL), so one port serves
/// both; `/sandbox/…` is a small control API for driving simulated users from another process.
public final class Sandbox: Sendable {
    public let transcript: Transcript
    public let telegram: SandboxTelegram
    public let fal: SandboxFAL

    public init(telegram: SandboxTelegram.Configuration = .init(), fal: SandboxFAL.Configuration = .init(), storageDirectory: String? = nil) {
        let transcript = Transcript()
        self.transcript = transcript
        self.telegram = SandboxTelegram(configuration: telegram, transcript: transcript)
        self.fal = SandboxFAL(configuration: fal, transcript: transcript, storageDirectory: storageDirectory)
    }

    /// The URLs our clients use to reach the stand-ins: FAL and the control API on `baseURL`, the
    /// Bot API on a port of its own (`SandboxTelegramFront`; `baseURL` answers it too).
    public struct Endpoints: Sendable {
        public var baseURL: String
        public var telegramAPI: String
        public var falQueue: String { baseURL }
        public var falREST: String { baseURL }
        public var falJWKS: String { baseURL + "/.well-known/jwks.json" }
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        telegram.addRoutes(to: router)
        fal.addRoutes(to: router)
        addControlRoutes(to: router)
        return router
    }

    /// Serves on `host:port` (0: any free port) while `body` runs, then stops.
    public func run<T: Sendable>(host: String = "127.0.0.1", port: Int = 0, _ body: @Sendable (Endpoints) async throws -> T) async throws -> T {
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "aisha.sandbox")
        logger.logLevel = .critical
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(host, port: port)),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        var frontLogger = Logger(label: "aisha.sandbox.telegram")
        frontLogger.logLevel = .critical
        let front = HTTPServer(configuration: .init(host: host, port: 0), responder: SandboxTelegramFront(telegram: telegram), logger: frontLogger)
        let frontPort = try front.start()
        do {
            let result = try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await app.runService(gracefulShutdownSignals: []); return nil }
                var iterator = ports.makeAsyncIterator()
                guard let bound = await iterator.next() else { throw CancellationError() }
                let result = try await body(Endpoints(baseURL: "http://\(host):\(bound)", telegramAPI: "http://\(host):\(frontPort)"))
                group.cancelAll()
                return result
            }
            await front.shutdown(grace: .seconds(1))
            return result
        } catch {
            await front.shutdown(grace: .seconds(1))
            throw error
        }
    }

    /// `/sandbox/…`: act as a simulated user, inject FAL faults, read the transcript.
    private func addControlRoutes(to router: Router<BasicRequestContext>) {
        let text = { @Sendable (status: HTTPResponse.Status, body: String) in
            Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.get("sandbox/transcript") { _, _ in
            text(.ok, self.transcript.events().map { Transcript.line($0, since: self.transcript.start) }.joined(separator: "\n") + "\n")
        }
        router.post("sandbox/users/{id}/{action}") { request, context -> Response in
            guard let id = context.parameters.get("id").flatMap({ Int64($0) }), id > 0 else { return text(.badRequest, "user id must be a positive integer\n") }
            var request = request
            let body = Array(try await request.collectBody(upTo: 20 << 20).readableBytesView)
            let user = self.telegram.user(id: id, languageCode: request.uri.queryParameters.get("lang").map { String($0) } ?? "en")
            switch context.parameters.get("action") {
            case "text": return text(.ok, "\(await user.send(String(decoding: body, as: UTF8.self)))\n")
            case "photo": return text(.ok, "\(await user.sendPhoto(body))\n")
            case "press":
                guard let status = await user.press(String(decoding: body, as: UTF8.self)) else { return text(.notFound, "no such button\n") }
                return text(.ok, "\(status)\n")
            default: return text(.notFound, "actions: text, photo, press\n")
            }
        }
        router.post("sandbox/fal/faults/{fault}") { _, context -> Response in
            let fault: SandboxFAL.Fault? = switch context.parameters.get("fault") {
            case "error": .errorResult("Injected failure")
            case "lost-webhook": .lostWebhook
            case "duplicate-webhook": .duplicateWebhook
            case "stuck": .stuck
            case "5xx": .serverError(503)
            case "slow": .slowResponse(.seconds(5))
            default: nil
            }
            guard let fault else { return text(.notFound, "faults: error, lost-webhook, duplicate-webhook, stuck, 5xx, slow\n") }
            self.fal.inject(fault)
            return text(.ok, "injected\n")
        }
    }
}
