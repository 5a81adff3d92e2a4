public import Foundation

/// A rate as GCRA (the generic cell rate algorithm) sees it: one event per `interval`, with
/// bursts of up to `burst` events. Pure; the state is one timestamp per key.
public struct RateLimit: Sendable, Equatable {
    /// Time between events at the sustained rate.
    public var interval: TimeInterval
    /// How many events may pass at once after a quiet spell.
    public var burst: Int

    /// A limit of `count` events per `period` seconds with bursts of `burst`.
    public init(count: Int, per period: TimeInterval, burst: Int = 1) {
        precondition(count > 0 && period > 0 && burst > 0)
        interval = period / Double(count)
        self.burst = burst
    }

    /// The decision for an event at `now`, given the key's theoretical arrival time (nil: never seen).
    /// Returns the new TAT when allowed, or the earliest time the event would be allowed.
    public func decide(tat: Date?, now: Date) -> Decision {
        let start = max(tat ?? now, now)
        let tolerance = interval * Double(burst - 1)
        let earliest = start.addingTimeInterval(-tolerance)
        if earliest > now { return .deny(retryAt: earliest) }
        return .allow(newTAT: start.addingTimeInterval(interval))
    }

    /// What `decide` says.
    public enum Decision: Sendable, Equatable {
        case allow(newTAT: Date)
        case deny(retryAt: Date)
    }
}

extension RateLimit {
    /// This limit split into `parts` limits whose sum never exceeds it: each allows a `parts`-th
    /// of the rate and of the burst (at least one event).
    public func split(into parts: Int) -> RateLimit {
        precondition(parts > 0)
        var part = self
        part.interval = interval * Double(parts)
        part.burst = max(1, burst / parts)
        return part
    }

    /// Telegram: about one message a second in a private chat (short bursts tolerated).
    public static let telegramPrivateChat = RateLimit(count: 1, per: 1, burst: 3)
    /// Telegram: at most 20 messages a minute in a group.
    public static let telegramGroupChat = RateLimit(count: 20, per: 60, burst: 3)
    /// Telegram: about 30 messages a second for the whole bot.
    public static let telegramGlobal = RateLimit(count: 30, per: 1, burst: 30)
}
