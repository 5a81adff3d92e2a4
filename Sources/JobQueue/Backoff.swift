public import Foundation

/// Retry delays: exponential with ±20 % jitter and a cap (pure, so it is tested without a clock).
public struct Backoff: Sendable, Equatable {
    /// The delay after the first failure.
    public var base: Duration
    /// The longest delay.
    public var cap: Duration

    /// A backoff; the default gives about 1 s, 2 s, 4 s … up to an hour.
    public init(base: Duration = .seconds(1), cap: Duration = .seconds(3600)) {
        self.base = base
        self.cap = cap
    }

    /// The delay after failed attempt number `attempt` (from 1); `unit` is a uniform random
    /// number in 0..<1 that picks the jitter.
    public func delay(afterAttempt attempt: Int, unit: Double) -> Duration {
        let exponent = Double(min(max(attempt - 1, 0), 40))
        let raw = min(Self.seconds(base) * pow(2, exponent), Self.seconds(cap))
        let jittered = raw * (0.8 + 0.4 * min(max(unit, 0), 1))
        return .milliseconds(Int64((min(jittered, Self.seconds(cap)) * 1000).rounded()))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// How a handler asks for something other than "retry with backoff".
public enum JobFailure: Error, Sendable, CustomStringConvertible {
    /// Retry at a given time without counting this attempt (Telegram `retry_after`, rate limits).
    case retryAt(Date, reason: String)
    /// Do not retry: the input can never succeed. The job becomes dead with this reason.
    case permanent(String)

    public var description: String {
        switch self {
        case .retryAt(let date, let reason): "retry at \(date): \(reason)"
        case .permanent(let reason): "permanent failure: \(reason)"
        }
    }
}

extension JobOutcome {
    /// The outcome of an attempt that threw `error` (pure).
    public static func forFailure(_ error: any Error, attempt: Int, maxAttempts: Int, now: Date, backoff: Backoff, unit: Double) -> JobOutcome {
        switch error {
        case JobFailure.retryAt(let date, let reason):
            return .retryWithoutAttempt(runAt: max(date, now), reason: reason)
        case JobFailure.permanent(let reason):
            return .dead(error: reason)
        default:
            let message = String(describing: error)
            guard attempt < maxAttempts else { return .dead(error: message) }
            let delay = backoff.delay(afterAttempt: attempt, unit: unit)
            return .retry(runAt: now.addingTimeInterval(Backoff.seconds(delay)), error: message)
        }
    }
}
