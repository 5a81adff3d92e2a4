import Foundation

/// Named places where a test can make the worker die as if SIGKILLed (`AISHA_CRASH_POINT`),
/// to prove a retried job neither repeats a paid step nor loses one. Unset in production: then
/// `hit` is a string comparison with nil.
public enum CrashPoints {
    public static let armed = ProcessInfo.processInfo.environment["AISHA_CRASH_POINT"]

    public static func hit(_ name: String) {
        guard armed == name else { return }
        FileHandle.standardError.write(Data("crash point \(name): SIGKILL\n".utf8))
        kill(getpid(), SIGKILL)
    }
}
