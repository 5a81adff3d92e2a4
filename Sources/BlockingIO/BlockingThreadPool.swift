import Foundation
import Synchronization

/// A fixed set of dedicated threads for blocking C calls (libpq, libzip).
///
/// Blocking calls must never run on the Swift cooperative pool or a NIO event loop: on a
/// 2-core machine two blocking libpq calls there stalled every other request for 0.7 s
/// (see docs/architecture.md). These threads belong to this pool alone.
public final class BlockingThreadPool: Sendable {
    private struct State {
        var queue: [@Sendable () -> Void] = []
        var head = 0
        var stopped = false
    }

    private let state = Mutex(State())
    private let available: DispatchSemaphore
    /// The number of threads.
    public let threadCount: Int

    /// Starts `threadCount` threads named `name-N`.
    public init(name: String, threadCount: Int) {
        precondition(threadCount > 0, "a pool needs at least one thread")
        self.threadCount = threadCount
        self.available = DispatchSemaphore(value: 0)
        for index in 0..<threadCount {
            let thread = Thread { [self] in self.runLoop() }
            thread.name = "\(name)-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Stops the threads after the work already queued; later `run` calls fail.
    public func shutdown() {
        let wasStopped = state.withLock { state in
            defer { state.stopped = true }
            return state.stopped
        }
        guard !wasStopped else { return }
        for _ in 0..<threadCount { available.signal() }
    }

    /// Runs `work` on one of the pool's threads and returns its result.
    /// - Throws: whatever `work` throws, or `CancellationError` if the pool is shut down.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            guard submit({ continuation.resume(with: Result { try work() }) }) else {
                return continuation.resume(throwing: CancellationError())
            }
        }
    }

    /// Queues `work` to run on one of the pool's threads and returns at once, without a task to
    /// resume: for callers on threads of their own (an event loop). False, and `work` is not
    /// run, when the pool is shut down.
    @discardableResult
    public func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        let accepted = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.queue.append(work)
            return true
        }
        if accepted { available.signal() }
        return accepted
    }

    private func runLoop() {
        while true {
            available.wait()
            let job: (@Sendable () -> Void)? = state.withLock { state in
                guard state.head < state.queue.count else { return nil }
                let job = state.queue[state.head]
                state.head += 1
                // Compact once the consumed prefix dominates, so the array does not grow forever.
                if state.head > 64, state.head * 2 > state.queue.count {
                    state.queue.removeFirst(state.head)
                    state.head = 0
                }
                return job
            }
            guard let job else { return }  // woken by shutdown with nothing left to do
            job()
        }
    }
}
