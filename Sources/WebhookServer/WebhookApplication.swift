public import FAL
import Foundation
public import HTTPServer
import JobQueue
public import Logging
public import Postgres

/// `aisha-server`'s HTTP application: the Telegram and FAL webhooks, health, readiness and
/// metrics. A webhook is answered 200 only after its job is committed (group commit shares
/// the commits of concurrent requests); a database outage turns into a quick 503, which
/// Telegram and FAL both retry.
public struct WebhookApplication: HTTPResponder {
    public let configuration: ServerConfiguration
    public let database: PostgresClient
    public let verifier: FALWebhookVerifier
    public let metrics = ServerMetrics()
    let enqueuer: GroupCommitEnqueuer
    let migrations: [Migration]
    let logger: Logger

    public init(configuration: ServerConfiguration, database: PostgresClient, logger: Logger) throws {
        self.configuration = configuration
        self.database = database
        self.verifier = FALWebhookVerifier(jwksURL: configuration.falJWKSURL, refetchInterval: configuration.falJWKSRefetchSeconds)
        self.enqueuer = GroupCommitEnqueuer(queue: JobQueue(database: database), maxInFlight: configuration.ingestWriters)
        self.migrations = try Migration.load(directory: configuration.migrationsDirectory)
        self.logger = logger
    }

    /// The database pool the server uses: short connect and acquire deadlines so an outage is a
    /// 503 within about two seconds, never a hang.
    public static func databaseConfiguration(_ configuration: ServerConfiguration) throws -> PostgresClient.Configuration {
        try PostgresClient.Configuration(
            connectionString: configuration.databaseURL, maxConnections: configuration.databasePoolSize,
            connectTimeout: .seconds(2), acquireTimeout: .seconds(2), statementTimeout: .seconds(5), applicationName: "aisha-server"
        )
    }

    /// The HTTP server for this application, listening where the configuration says.
    public func server() -> HTTPServer {
        HTTPServer(configuration: .init(host: configuration.host, port: configuration.port, threads: configuration.httpThreads), responder: self, logger: logger)
    }

    /// Each route and its one method.
    static let routes: [String: String] = ["/telegram/webhook": "POST", "/fal/webhook": "POST", "/healthz": "GET", "/readyz": "GET", "/metrics": "GET"]

    public func bodyLimit(method: String, path: String) -> Int {
        switch path {
        case "/telegram/webhook": configuration.telegramBodyLimit
        case "/fal/webhook": configuration.falBodyLimit
        default: 0
        }
    }

    /// Routes a request and records its route, status and duration. The Telegram webhook, the
    /// hot path, runs on the event loop up to its group commit; the rare routes run as tasks.
    public func respond(to request: HTTPRequest, _ respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let started = ContinuousClock.now
        let route = Self.routes[request.path] == nil ? "other" : request.path
        let answer: @Sendable (HTTPResponse) -> Void = { [metrics] response in
            let elapsed = ContinuousClock.now - started
            metrics.record(route: route, status: response.status, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            respond(response)
        }
        guard let method = Self.routes[request.path] else { return answer(.text(404, "not found\n")) }
        guard request.method == method else { return answer(.text(405, "method not allowed\n", headers: [("Allow", method)])) }
        switch request.path {
        case "/telegram/webhook": telegramWebhook(request, answer)
        case "/fal/webhook": Task { answer(await falWebhook(request)) }
        case "/healthz": answer(.text(200, "ok\n"))
        case "/readyz": Task { answer(await readiness()) }
        default: Task { answer(await metricsPage()) }
        }
    }

    public func refused(status: Int, path: String?) {
        metrics.record(route: path.flatMap { Self.routes[$0] == nil ? nil : $0 } ?? "other", status: status, seconds: 0)
    }

    // MARK: - Webhooks

    func telegramWebhook(_ request: HTTPRequest, _ respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let kind = WebhookIngest.telegramKind
        guard WebhookIngest.telegramSecretMatches(request.header("x-telegram-bot-api-secret-token"), secret: configuration.telegramWebhookSecret) else {
            metrics.ingested(kind: kind, result: "refused")
            logger.notice("telegram webhook refused: missing or wrong secret token")
            return respond(.text(401, "unauthorized\n"))
        }
        let job: JobRequest
        do {
            job = try WebhookIngest.telegramJob(body: request.body)
        } catch {
            metrics.ingested(kind: kind, result: "refused")
            return respond(.text(400, error.reason + "\n"))
        }
        store(job, respond)
    }

    func falWebhook(_ request: HTTPRequest) async -> HTTPResponse {
        let kind = WebhookIngest.falKind
        let headers: FALWebhookSignature.Headers
        do {
            headers = try FALWebhookSignature.Headers { request.header($0) }
        } catch {
            metrics.ingested(kind: kind, result: "refused")
            return .text(401, "\(error)\n")
        }
        if let pinned = configuration.falUserID, headers.userID != pinned {
            metrics.ingested(kind: kind, result: "refused")
            return .text(401, "webhook for another fal user\n")
        }
        do {
            try await verifier.verify(headers, body: request.body)
        } catch .keysUnavailable(let reason) {
            // Fail closed, but say it is our side: FAL retries non-2xx deliveries.
            metrics.ingested(kind: kind, result: "unavailable")
            logger.error("FAL signing keys unavailable", metadata: ["reason": "\(reason)"])
            return .text(503, "signing keys unavailable\n", headers: [("Retry-After", "5")])
        } catch {
            metrics.ingested(kind: kind, result: "refused")
            logger.notice("FAL webhook refused", metadata: ["reason": "\(error)", "fal.request_id": "\(headers.requestID)"])
            return .text(401, "\(error)\n")
        }
        let job: JobRequest
        do {
            job = try WebhookIngest.falJob(body: request.body, headerRequestID: headers.requestID, ref: request.queryParameter("ref"))
        } catch {
            metrics.ingested(kind: kind, result: "refused")
            return .text(error.status, error.reason + "\n")
        }
        return await withCheckedContinuation { continuation in store(job) { continuation.resume(returning: $0) } }
    }

    /// Commits the job (sharing the commit with concurrent requests), then answers 200.
    func store(_ job: JobRequest, _ respond: @escaping @Sendable (HTTPResponse) -> Void) {
        enqueuer.enqueue(job) { [metrics, logger] outcome in
            switch outcome {
            case .success(let result):
                metrics.ingested(kind: job.kind, result: result == .enqueued ? "enqueued" : "duplicate")
                logger.debug("webhook stored", metadata: ["job.kind": "\(job.kind)", "job.unique_key": "\(job.uniqueKey ?? "")", "result": "\(result)"])
                respond(.text(200))
            case .failure(let error as PostgresError) where error.sqlState?.hasPrefix("22") == true:
                // A payload PostgreSQL refuses to store. None is known since payloads became `json`
                // (migration 0010), which keeps what the scanner accepted; kept as the safe answer.
                metrics.ingested(kind: job.kind, result: "refused")
                respond(.text(400, "payload cannot be stored\n"))
            case .failure(let error):
                metrics.ingested(kind: job.kind, result: "unavailable")
                logger.error("webhook not stored: database unavailable", metadata: ["job.kind": "\(job.kind)", "db.error": "\(error)"])
                respond(.text(503, "temporarily unavailable\n", headers: [("Retry-After", "1")]))
            }
        }
    }

    // MARK: - Health and metrics

    func readiness() async -> HTTPResponse {
        do {
            let pending = try await Migrator(client: database, logger: logger).pending(migrations)
            guard pending.isEmpty else { return .text(503, "pending migrations: \(pending.count)\n") }
            return .text(200, "ready\n")
        } catch {
            logger.warning("readiness check failed", metadata: ["db.error": "\(error)"])
            return .text(503, "database unavailable\n")
        }
    }

    func metricsPage() async -> HTTPResponse {
        let pool = database.statistics
        let commits = enqueuer.counters
        var gauges: [(name: String, help: String, samples: [(labels: String, value: Double)])] = [
            ("aisha_db_pool_connections", "Database pool connections by state.", [
                ("state=\"open\"", Double(pool.open)), ("state=\"idle\"", Double(pool.idle)),
                ("state=\"leased\"", Double(pool.leased)), ("state=\"waiting\"", Double(pool.waiting)),
            ]),
            ("aisha_ingest_commits", "Group-commit statements and the jobs they stored (jobs/commits = jobs per commit).", [
                ("counter=\"commits\"", Double(commits.batches)), ("counter=\"jobs\"", Double(commits.jobs)),
            ]),
        ]
        do {
            let depth = try await JobQueue(database: database).depth()
            gauges.append(("aisha_jobs_pending", "Available and running jobs by kind.", depth.map { ("kind=\"\($0.kind)\",state=\"\($0.state.rawValue)\"", Double($0.count)) }))
            gauges.append(("aisha_database_up", "1 when the database answered this scrape.", [("", 1)]))
        } catch {
            gauges.append(("aisha_database_up", "1 when the database answered this scrape.", [("", 0)]))
        }
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4")], body: Array(metrics.render(gauges: gauges).utf8))
    }
}
