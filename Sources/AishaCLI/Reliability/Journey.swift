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

    /// Does `action`, then waits for the bot to say something containing `expect`.
    @discardableResult
    func step(_ what: String, expect: String, timeout: Duration? = nil, _ action: @Sendable () async -> Void) async throws -> Transcript.Event {
        let seen = sandbox.transcript.events(chatID: user.id).count
        await action()
        guard let event = await sandbox.transcript.waitFor(chatID: user.id, after: seen, timeout: timeout ?? stepTimeout, { $0.actor == .bot && $0.text.contains(expect) }) else {
            throw Stalled(description: "user \(user.id): after \(what), the bot never said “\(expect)”")
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

    /// Presses Start training and waits for the outcome the bot reports: ready or failed.
    func train(expect outcome: String = "is ready") async throws {
        try await tap("Start training", expect: "Training started")
        _ = try await step("waiting for the training", expect: outcome, timeout: .seconds(120)) {}
    }

    /// Generate → a prompt → 1:1 → `images` images, waiting for the images to arrive.
    func generate(images: Int = 2, expect: String = "More?") async throws {
        try await tap("Generate", expect: "Describe the scene")
        try await say("a walk by the sea at dawn", expect: "Choose the shape")
        try await tap("1:1", expect: "How many images?")
        try await tap("\(images) (", expect: expect, timeout: .seconds(120))
    }

    /// The whole journey.
    func run() async throws {
        try await createAvatar(name: "Avatar \(user.id)")
        try await sendPhotos(10)
        try await train()
        try await generate()
    }
}
