import Foundation
import Postgres
import Imaging
import Sandbox

/// One simulated person going through the product in the Sandbox, step by step, waiting for
/// what the bot says after each action: start → create a portrait avatar → an album of photos →
/// train → ready → generate images. Each step fails with a description of what never came.
struct Journey: Sendable {
    let user: SandboxUser
    let sandbox: Sandbox
    /// How long one step may take (a killed worker's job is rescued after its lease).
    var stepTimeout: Duration = .seconds(90)

    struct Stalled: Error, CustomStringConvertible {
        let description: String
    }

    init(sandbox: Sandbox, userID: Int64) {
        self.sandbox = sandbox
        self.user = sandbox.telegram.user(id: userID, firstName: "U\(userID)", languageCode: "en")
    }

    /// Distinct photos of an acceptable size for this user.
    func photos(_ count: Int) -> [[UInt8]] {
        (0..<count).map { index in
            let seed = UInt64(user.id) &* 100 &+ UInt64(index)
            return JPEGEncoder.encode(width: 640, height: 640, padding: 2000, seed: seed) { x, y in UInt8(truncatingIfNeeded: x &* 3 &+ y &* 7 &+ Int(seed % 251)) }
        }
    }

    /// Does `action`, then waits for the bot to say something containing `expect` (or any of `alternatives`).
    @discardableResult
    func step(_ what: String, expect: String, or alternatives: [String] = [], timeout: Duration? = nil, _ action: @Sendable () async -> Void) async throws -> Transcript.Event {
        let seen = sandbox.transcript.events(chatID: user.id).count
        await action()
        let fragments = [expect] + alternatives
        guard let event = await sandbox.transcript.waitFor(chatID: user.id, after: seen, timeout: timeout ?? stepTimeout, { event in
            event.actor == .bot && fragments.contains { event.text.contains($0) }
        }) else {
            let recent = sandbox.transcript.events(chatID: user.id).suffix(5).map { "\($0.actor.rawValue) \($0.kind): \($0.text.prefix(60))" }
            throw Stalled(description: "user \(user.id): after \(what), the bot never said “\(expect)” (last: \(recent.joined(separator: " | ")))")
        }
        return event
    }

    func say(_ text: String, expect: String) async throws { try await step("“\(text)”", expect: expect) { await user.send(text) } }

    func tap(_ label: String, expect: String, timeout: Duration? = nil) async throws {
        try await step("[\(label)]", expect: expect, timeout: timeout) {
            if await user.press(label) == nil { FileHandle.standardError.write(Data("user \(user.id): no button [\(label)] to press\n".utf8)) }
        }
    }

    /// Start → a portrait avatar named after the user → consent → the photo screen.
    func createAvatar(name: String, returning: Bool = false) async throws {
        try await say("/start", expect: returning ? "Welcome back" : "I am Aisha")
        try await tap("Create an avatar", expect: "What should the avatar learn?")
        try await tap("A person (portrait)", expect: "Who is in the photos?")
        try await tap("A woman", expect: "Give the avatar a name")
        try await say(name, expect: "18 or older")
        try await tap("I confirm", expect: "Send 10–20 photos")
    }

    /// Sends `count` photos as one album and waits for the progress message to count them.
    func sendPhotos(_ count: Int) async throws {
        try await step("an album of \(count) photos", expect: "Photos: \(count) of 20") { _ = await user.sendAlbum(photos(count)) }
    }

    /// The honest end of a paid step that failed: the credits are back.
    static let refunded = "credits were returned"

    /// Presses Start training and waits for the outcome the bot reports (by default: ready).
    /// Returns what the bot said.
    @discardableResult
    func train(expect outcome: String = "is ready", or alternatives: [String] = []) async throws -> String {
        let pressed = sandbox.transcript.events(chatID: user.id).count
        try await tap("Start training", expect: "Training started")
        // The outcome may arrive right behind "Training started": look from the press on.
        let fragments = [outcome] + alternatives
        guard let event = await sandbox.transcript.waitFor(chatID: user.id, after: pressed, timeout: .seconds(120), { event in
            event.actor == .bot && fragments.contains { event.text.contains($0) }
        }) else { throw Stalled(description: "user \(user.id): the training never ended with “\(outcome)”") }
        return event.text
    }

    /// Generate → a prompt → 1:1 → `images` images, waiting for the images (or `alternatives`).
    @discardableResult
    func generate(images: Int = 2, expect: String = "More?", or alternatives: [String] = []) async throws -> String {
        try await tap("Generate", expect: "Describe the scene")
        try await say("a walk by the sea at dawn", expect: "Choose the shape")
        try await tap("1:1", expect: "How many images?")
        return try await step("[\(images) (…)]", expect: expect, or: alternatives, timeout: .seconds(120)) { _ = await user.press("\(images) (") }.text
    }

    /// How a whole journey ended.
    enum Outcome: Sendable { case delivered, trainingRefunded, generationRefunded }

    /// The whole journey; with `acceptRefunds`, a paid step that ended failed-and-refunded is an
    /// honest end too (a worker killed between marking a submission and recording it).
    @discardableResult
    func run(acceptRefunds: Bool = false) async throws -> Outcome {
        let refunds = acceptRefunds ? [Self.refunded] : []
        try await createAvatar(name: "Avatar \(user.id)")
        try await sendPhotos(10)
        if try await train(or: refunds).contains(Self.refunded) { return .trainingRefunded }
        return try await generate(or: refunds).contains(Self.refunded) ? .generationRefunded : .delivered
    }
}
