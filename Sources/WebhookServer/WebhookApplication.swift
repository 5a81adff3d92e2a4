public import FAL
import Foundation
public import Hummingbird
import JobQueue
public import Logging
public import Postgres

/// `aisha-server`'s HTTP application: the Telegram and FAL webhooks, health, readiness and
/// metrics. A webhook is answered 200 only after its job is committed (group commit shares
/// the commits of concurrent requests); a database outage turns into a quick 503, which
/// Telegram and FAL both retry.
public struct WebhookApplication: Sendable {
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
        self.enqueuer = GroupCommitEnqueuer(queue: JobQueue(database: database))
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

    /// The application, listening where the configuration says.
    public func application(onServerRunning: (@Sendable (Int) async -> Void)? = nil) -> some ApplicationProtocol {
        Application(
            router: router(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "aisha-server"),
            onServerRunning: { channel in await onServerRunning?(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    static let routes: Set<String> = ["/telegram/webhook", "/fal/webhook", "/healthz", "/readyz", "/metrics"]

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.post("telegram/webhook") { request, _ in try await self.telegramWebhook(request) }
        router.post("fal/webhook") { request, _ in try await self.falWebhook(request) }
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { _, _ in await self.readiness() }
        router.get("metrics") { _, _ in await self.metricsPage() }
        return router
    }

    // MARK: - Webhooks

    static func text(_ status: HTTPResponse.Status, _ body: String = "", headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func header(_ request: Request, _ name: String) -> String? {
        let lowered = name.lowercased()
        return request.headers.first { $0.name.canonicalName == lowered }?.value
    }

    /// Reads the body, refusing one over `limit` (413) before or while it arrives.
    static func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw HTTPError(.contentTooLarge) }
        var request = request
        return Array(try await request.collectBody(upTo: limit).readableBytesView)
    }

    func telegramWebhook(_ request: Request) async throws -> Response {
        let kind = WebhookIngest.telegramKind
        guard WebhookIngest.telegramSecretMatches(Self.header(request, "X-Telegram-Bot-Api-Secret-Token"), secret: configuration.telegramWebhookSecret) else {
            metrics.ingested(kind: kind, result: "refused")
            logger.notice("telegram webhook refused: missing or wrong secret token")
            return Self.text(.unauthorized, "unauthorized\n")
        }
        let body = try await Self.body(request, limit: configuration.telegramBodyLimit)
        let job: JobRequest
        do {
            job = try WebhookIngest.telegramJob(body: body)
        } catch {
            metrics.ingested(kind: kind, result: "refused")
            return Self.text(.badRequest, error.reason + "\n")
        }
        return await store(job)
    }

    func falWebhook(_ request: Request) async throws -> Response {
        let kind = WebhookIngest.falKind
        let headers: FALWebhookSignature.Headers
        do {
            headers = try FALWebhookSignature.Headers { Self.header(request, $0) }
        } catch {
            metrics.ingested(kind: kind, result: "refused")
            return Self.text(.unauthorized, "\(error)\n")
        }
        if let pinned = configuration.falUserID, headers.userID != pinned {
            metrics.ingested(kind: kind, result: "refused")
            return Self.text(.unauthorized, "webhook for another fal user\n")
        }
        let body = try await Self.body(request, limit: configuration.falBodyLimit)
        do {
            try await verifier.verify(headers, body: body)
        } catch .keysUnavailable(let reason) {
            // Fail closed, but say it is our side: FAL retries non-2xx deliveries.
            metrics.ingested(kind: kind, result: "unavailable")
            logger.error("FAL signing keys unavailable", metadata: ["reason": "\(reason)"])
            return Self.text(.serviceUnavailable, "signing keys unavailable\n", headers: [.retryAfter: "5"])
        } catch {
            metrics.ingested(kind: kind, result: "refused")
            logger.notice("FAL webhook refused", metadata: ["reason": "\(error)", "fal.request_id": "\(headers.requestID)"])
            return Self.text(.unauthorized, "\(error)\n")
        }
        let job: JobRequest
        do {
            job = try WebhookIngest.falJob(body: body, headerRequestID: headers.requestID, ref: request.uri.queryParameters.get("ref").map { String($0) })
        } catch {
            metrics.ingested(kind: kind, result: "refused")
            return Self.text(error.status == 401 ? .unauthorized : .badRequest, error.reason + "\n")
        }
        return await store(job)
    }

    /// Commits the job (sharing the commit with concurrent requests), then answers 200.
    func store(_ job: JobRequest) async -> Response {
        do {
            let result = try await enqueuer.enqueue(job)
            metrics.ingested(kind: job.kind, result: result == .enqueued ? "enqueued" : "duplicate")
            logger.debug("webhook stored", metadata: ["job.kind": "\(job.kind)", "job.unique_key": "\(job.uniqueKey ?? "")", "result": "\(result)"])
            return Self.text(.ok)
        } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
            // The one payload PostgreSQL cannot store (for instance a \u0000 in jsonb).
            metrics.ingested(kind: job.kind, result: "refused")
            return Self.text(.badRequest, "payload cannot be stored\n")
        } catch {
            metrics.ingested(kind: job.kind, result: "unavailable")
            logger.error("webhook not stored: database unavailable", metadata: ["job.kind": "\(job.kind)", "db.error": "\(error)"])
            return Self.text(.serviceUnavailable, "temporarily unavailable\n", headers: [.retryAfter: "1"])
        }
    }

    // MARK: - Health and metrics

    func readiness() async -> Response {
        do {
            let pending = try await Migrator(client: database, logger: logger).pending(migrations)
            guard pending.isEmpty else { return Self.text(.serviceUnavailable, "pending migrations: \(pending.count)\n") }
            return Self.text(.ok, "ready\n")
        } catch {
            logger.warning("readiness check failed", metadata: ["db.error": "\(error)"])
            return Self.text(.serviceUnavailable, "database unavailable\n")
        }
    }

    func metricsPage() async -> Response {
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
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: metrics.render(gauges: gauges))))
    }
}

/// Records every request's route (a fixed template, never the raw path), status and duration.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let route = WebhookApplication.routes.contains(request.uri.path) ? request.uri.path : "other"
        func seconds() -> Double {
            let elapsed = ContinuousClock.now - started
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }
        do {
            let response = try await next(request, context)
            metrics.record(route: route, status: response.status.code, seconds: seconds())
            return response
        } catch let error as any HTTPResponseError {
            metrics.record(route: route, status: error.status.code, seconds: seconds())
            throw error
        } catch {
            metrics.record(route: route, status: 500, seconds: seconds())
            throw error
        }
    }
}
