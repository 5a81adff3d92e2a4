public import Foundation
import Synchronization

/// What happened in the Sandbox, in order: every user action, every bot message, edit,
/// deletion, toast and chat action, and FAL's requests and webhooks. Tests assert on it; the
/// demo prints it as the user would have seen the chat.
public final class Transcript: Sendable {
    public enum Actor: String, Sendable { case user, bot, fal }

    public struct Event: Sendable, Equatable {
        public var time: Date
        public var chatID: Int64
        public var actor: Actor
        /// text, photo, document, press, forged, edit, delete, toast, action, block, or a FAL step.
        public var kind: String
        public var messageID: Int64?
        public var text: String
        /// Button labels, row by row.
        public var buttons: [[String]]
    }

    private let events = Mutex<[Event]>([])
    private let observers = Mutex<[@Sendable (Event) -> Void]>([])
    public let start = Date()

    public init() {}

    func record(chatID: Int64, _ actor: Actor, _ kind: String, messageID: Int64? = nil, text: String, buttons: [[SandboxTelegram.ChatMessage.Button]] = []) {
        let event = Event(time: Date(), chatID: chatID, actor: actor, kind: kind, messageID: messageID, text: text, buttons: buttons.map { $0.map(\.text) })
        events.withLock { $0.append(event) }
        for observer in observers.withLock({ $0 }) { observer(event) }
    }

    /// Calls `observer` with every event from now on, as it is recorded (benchmarks time replies this way).
    public func observe(_ observer: @escaping @Sendable (Event) -> Void) { observers.withLock { $0.append(observer) } }

    /// All events so far, or those of one chat.
    public func events(chatID: Int64? = nil) -> [Event] {
        events.withLock { all in chatID.map { id in all.filter { $0.chatID == id } } ?? all }
    }

    /// Waits (polling every 20 ms) until an event of `chatID` after the first `after` ones matches,
    /// and returns it; nil on timeout.
    public func waitFor(chatID: Int64, after: Int = 0, timeout: Duration = .seconds(30), _ matches: @Sendable (Event) -> Bool) async -> Event? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let event = events(chatID: chatID).dropFirst(after).first(where: matches) { return event }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// One line per event: `+12.345s  bot   text   #7  "Welcome!" [Create avatar] [Help]`.
    public static func line(_ event: Event, since start: Date) -> String {
        let seconds = String(format: "%+8.3fs", event.time.timeIntervalSince(start))
        let who = event.actor.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)
        let kind = event.kind.padding(toLength: 8, withPad: " ", startingAt: 0)
        let id = event.messageID.map { "#\($0)" } ?? ""
        let text = event.text.replacingOccurrences(of: "\n", with: " ⏎ ")
        let shown = text.count > 160 ? String(text.prefix(157)) + "…" : text
        let buttons = event.buttons.map { row in row.map { "[\($0)]" }.joined(separator: " ") }.joined(separator: " / ")
        return "\(seconds)  \(who) \(kind) \(id.padding(toLength: 5, withPad: " ", startingAt: 0)) \(shown.isEmpty ? "" : "“\(shown)”")\(buttons.isEmpty ? "" : "  " + buttons)"
    }
}
