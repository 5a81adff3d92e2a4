import Foundation
@testable import JobQueue
import Testing

/// Pure rules: backoff, failure classification, periodic slots.
@Suite struct JobQueueRulesTests {
    @Test func backoffDoublesWithBoundedJitterAndACap() {
        let backoff = Backoff(base: .seconds(1), cap: .seconds(60))
        #expect(backoff.delay(afterAttempt: 1, unit: 0.5) == .seconds(1))
        #expect(backoff.delay(afterAttempt: 2, unit: 0.5) == .seconds(2))
        #expect(backoff.delay(afterAttempt: 5, unit: 0.5) == .seconds(16))
        #expect(backoff.delay(afterAttempt: 3, unit: 0) == .milliseconds(3200))   // −20 %
        #expect(backoff.delay(afterAttempt: 3, unit: 1) == .milliseconds(4800))   // +20 %
        #expect(backoff.delay(afterAttempt: 30, unit: 1) == .seconds(60))         // capped, jitter included
        #expect(backoff.delay(afterAttempt: 1000, unit: 0.5) == .seconds(60))
    }

    @Test func failuresBecomeOutcomes() {
        struct Flaky: Error {}
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let backoff = Backoff(base: .seconds(10), cap: .seconds(100))
        #expect(JobOutcome.forFailure(Flaky(), attempt: 1, maxAttempts: 3, now: now, backoff: backoff, unit: 0.5)
            == .retry(runAt: now.addingTimeInterval(10), error: "Flaky()"))
        #expect(JobOutcome.forFailure(Flaky(), attempt: 3, maxAttempts: 3, now: now, backoff: backoff, unit: 0.5) == .dead(error: "Flaky()"))
        #expect(JobOutcome.forFailure(JobFailure.permanent("bad photo"), attempt: 1, maxAttempts: 3, now: now, backoff: backoff, unit: 0.5) == .dead(error: "bad photo"))
        let later = now.addingTimeInterval(7)
        #expect(JobOutcome.forFailure(JobFailure.retryAt(later, reason: "429"), attempt: 3, maxAttempts: 3, now: now, backoff: backoff, unit: 0.5)
            == .retryWithoutAttempt(runAt: later, reason: "429"), "retry-at never burns the last attempt")
    }

    @Test func periodicSlotsAreStableWithinAPeriod() {
        let job = PeriodicJob(kind: "fal.reconcile", every: .seconds(60))
        let a = job.slot(containing: Date(timeIntervalSince1970: 1_800_000_000))
        let b = job.slot(containing: Date(timeIntervalSince1970: 1_800_000_059.9))
        let c = job.slot(containing: Date(timeIntervalSince1970: 1_800_000_060))
        #expect(a.key == "periodic:fal.reconcile:1800000000" && a.key == b.key && c.key != a.key)
        #expect(a.start == Date(timeIntervalSince1970: 1_800_000_000))
    }

    @Test func missedPeriodsAreCaughtUp() {
        let job = PeriodicJob(kind: "tick", every: .seconds(60))
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(PeriodicJob.slotsDue(job, since: nil, now: base.addingTimeInterval(5)).map(\.start) == [base])
        #expect(PeriodicJob.slotsDue(job, since: base, now: base.addingTimeInterval(59)).isEmpty)
        #expect(PeriodicJob.slotsDue(job, since: base, now: base.addingTimeInterval(61)).map(\.start) == [base.addingTimeInterval(60)])
        #expect(PeriodicJob.slotsDue(job, since: base, now: base.addingTimeInterval(190)).map(\.start)
            == [60, 120, 180].map { base.addingTimeInterval($0) })
        let longPause = PeriodicJob.slotsDue(job, since: base, now: base.addingTimeInterval(60 * 100 + 1))
        #expect(longPause.count == 11 && longPause.last?.start == base.addingTimeInterval(6000), "at most 10 missed slots, then the current one")
    }
}
