import Foundation
import Synchronization

/// The server's counters and histograms, rendered as Prometheus text (`GET /metrics`).
/// Labels are fixed route templates and status codes, never anything from the request.
public final class ServerMetrics: Sendable {
    /// Upper bounds (seconds) of the latency buckets: 1 ms … 2.5 s.
    static let buckets: [Double] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    struct Histogram: Sendable {
        var counts = Array(repeating: 0, count: ServerMetrics.buckets.count)
        var sum = 0.0
        var count = 0

        mutating func observe(_ seconds: Double) {
            if let index = ServerMetrics.buckets.firstIndex(where: { seconds <= $0 }) { counts[index] += 1 }
            sum += seconds
            count += 1
        }
    }

    // Keys of two labels are structs, not one "a|b" string: building that string cost every
    // request an allocation.
    struct IngestKey: Hashable, Comparable, Sendable {
        var kind: String
        var result: String
        static func < (a: IngestKey, b: IngestKey) -> Bool { (a.kind, a.result) < (b.kind, b.result) }
    }

    struct RequestKey: Hashable, Comparable, Sendable {
        var route: String
        var status: Int
        static func < (a: RequestKey, b: RequestKey) -> Bool { (a.route, a.status) < (b.route, b.status) }
    }

    struct State: Sendable {
        var requests: [RequestKey: Int] = [:]
        var latency: [String: Histogram] = [:]  // route →
        var ingested: [IngestKey: Int] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Counts a finished request and its duration.
    public func record(route: String, status: Int, seconds: Double) {
        state.withLock { state in
            state.requests[RequestKey(route: route, status: status), default: 0] += 1
            state.latency[route, default: Histogram()].observe(seconds)
        }
    }

    /// Counts an ingested webhook by kind and result (`enqueued`, `duplicate`, `refused`, `unavailable`).
    public func ingested(kind: String, result: String) {
        state.withLock { $0.ingested[IngestKey(kind: kind, result: result), default: 0] += 1 }
    }

    /// Requests seen for `route` with `status` (for tests).
    public func requests(route: String, status: Int) -> Int { state.withLock { $0.requests[RequestKey(route: route, status: status)] ?? 0 } }

    /// The Prometheus exposition of everything recorded, plus the gauges passed in.
    public func render(gauges: [(name: String, help: String, samples: [(labels: String, value: Double)])]) -> String {
        let snapshot = state.withLock { $0 }
        var out = "# HELP aisha_http_requests_total HTTP requests by route and status.\n# TYPE aisha_http_requests_total counter\n"
        for (key, count) in snapshot.requests.sorted(by: { $0.key < $1.key }) {
            out += "aisha_http_requests_total{route=\"\(key.route)\",status=\"\(key.status)\"} \(count)\n"
        }
        out += "# HELP aisha_http_request_duration_seconds Time from request to response (for webhooks: until the job is committed).\n# TYPE aisha_http_request_duration_seconds histogram\n"
        for (route, histogram) in snapshot.latency.sorted(by: { $0.key < $1.key }) {
            var cumulative = 0
            for (bound, count) in zip(Self.buckets, histogram.counts) {
                cumulative += count
                out += "aisha_http_request_duration_seconds_bucket{route=\"\(route)\",le=\"\(bound)\"} \(cumulative)\n"
            }
            out += "aisha_http_request_duration_seconds_bucket{route=\"\(route)\",le=\"+Inf\"} \(histogram.count)\n"
            out += "aisha_http_request_duration_seconds_sum{route=\"\(route)\"} \(histogram.sum)\n"
            out += "aisha_http_request_duration_seconds_count{route=\"\(route)\"} \(histogram.count)\n"
        }
        out += "# HELP aisha_webhooks_ingested_total Webhooks by job kind and result.\n# TYPE aisha_webhooks_ingested_total counter\n"
        for (key, count) in snapshot.ingested.sorted(by: { $0.key < $1.key }) {
            out += "aisha_webhooks_ingested_total{kind=\"\(key.kind)\",result=\"\(key.result)\"} \(count)\n"
        }
        for gauge in gauges {
            out += "# HELP \(gauge.name) \(gauge.help)\n# TYPE \(gauge.name) gauge\n"
            for sample in gauge.samples {
                let value = sample.value == sample.value.rounded() && abs(sample.value) < 1e15 ? String(Int64(sample.value)) : String(sample.value)
                out += "\(gauge.name)\(sample.labels.isEmpty ? "" : "{\(sample.labels)}") \(value)\n"
            }
        }
        return out
    }
}
