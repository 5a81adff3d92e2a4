public import Foundation

/// Starting other programs (pgbench, pg_ctl, worker processes) from a Swift process.
///
/// The child gets an empty signal mask and default signal dispositions: Swift's runtime threads
/// block most signals, and a child that inherits that mask never sees SIGALRM or SIGTERM (pgbench
/// `-T` ran forever). Output goes to files, not pipes, because a daemon the child starts may keep
/// inherited descriptors open; children are reaped with `waitpid` (Foundation's
/// `Process.waitUntilExit` was seen to miss an exit).
public enum ChildProcess {
    /// Starts `executable` with standard output and error appended to `logPath` (or standard
    /// error to `errorPath` when given); returns its pid.
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, logPath: String, errorPath: String? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        if let errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let result = executable.contains("/")
            ? posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            : posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw ChildProcessError(description: "cannot start \(executable): errno \(result)") }
        return pid
    }

    /// Waits for a child; returns its exit code, or 128 + the signal that ended it.
    public static func waitForExit(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Runs a program to completion; returns its standard output.
    /// - Throws: `ChildProcessError` with its standard error when it exits non-zero.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString)").path
        defer { unlink(base + ".out"); unlink(base + ".err") }
        let status = waitForExit(try spawn(executable, arguments, environment: environment, logPath: base + ".out", errorPath: base + ".err"))
        let output = String(decoding: FileManager.default.contents(atPath: base + ".out") ?? Data(), as: UTF8.self)
        guard status == 0 else {
            let errors = String(decoding: FileManager.default.contents(atPath: base + ".err") ?? Data(), as: UTF8.self)
            throw ChildProcessError(description: "\(executable) \(arguments.prefix(3).joined(separator: " ")) exited \(status): \(errors)\(output)")
        }
        return output
    }
}

extension ChildProcess {
    /// `run` for async callers: waits on a thread of its own, never on the cooperative pool.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> String {
        try await onOwnThread { try run(executable, arguments, environment: environment) }
    }

    /// `waitForExit` for async callers, on a thread of its own.
    public static func exitStatus(of pid: pid_t) async -> Int32 {
        (try? await onOwnThread { waitForExit(pid) }) ?? -1
    }

    private static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try work() }) }
            thread.name = "child-process-wait"
            thread.start()
        }
    }
}

/// A child program that could not start or failed.
public struct ChildProcessError: Error, CustomStringConvertible {
    public let description: String
}
