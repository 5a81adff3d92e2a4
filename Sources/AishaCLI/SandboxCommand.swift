import ArgumentParser
import Foundation
import Sandbox
import UnixSignals

/// `aisha sandbox`: runs the Telegram and FAL stand-ins on loopback until interrupted.
struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run local stand-ins for the Telegram Bot API and FAL (offline development, demo, tests).",
        discussion: """
            Point Aisha at it with AISHA_TELEGRAM_API_URL, FAL_QUEUE_URL, FAL_REST_URL and AISHA_FAL_JWKS_URL (printed at start).
            Drive a simulated user over HTTP:
              curl -X POST --data-binary 'hello' http://HOST:PORT/sandbox/users/42/text
              curl -X POST --data-binary @photo.jpg http://HOST:PORT/sandbox/users/42/photo
              curl -X POST --data-binary 'Create avatar' http://HOST:PORT/sandbox/users/42/press
              curl -X POST http://HOST:PORT/sandbox/fal/faults/lost-webhook
              curl http://HOST:PORT/sandbox/transcript
            """
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port = 8090
    @Option(help: "Webhook URL to deliver Telegram updates to (what setWebhook would set).") var webhookURL: String?
    @Option(help: "Secret token sent with each update (X-Telegram-Bot-Api-Secret-Token).") var secretToken: String?
    @Option(help: "Seconds a training takes.") var trainingSeconds = 5.0
    @Option(help: "Folder for FAL's stored files (default: a fresh temporary folder).") var storageDir: String?

    func run() async throws {
        let sandbox = Sandbox(fal: .init(trainingDuration: .milliseconds(Int(trainingSeconds * 1000))), storageDirectory: storageDir)
        if let webhookURL { sandbox.telegram.setWebhook(.init(url: webhookURL, secretToken: secretToken)) }
        try await sandbox.run(host: host, port: port) { endpoints in
            let lines = """
                sandbox listening on \(endpoints.baseURL)
                AISHA_TELEGRAM_API_URL=\(endpoints.telegramAPI)
                AISHA_TELEGRAM_BOT_TOKEN=\(sandbox.telegram.configuration.token)
                FAL_QUEUE_URL=\(endpoints.falQueue)
                FAL_REST_URL=\(endpoints.falREST)
                FAL_KEY=\(sandbox.fal.configuration.key)
                AISHA_FAL_JWKS_URL=\(endpoints.falJWKS)

                """
            FileHandle.standardOutput.write(Data(lines.utf8))
            // Until SIGINT or SIGTERM.
            for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { break }
        }
    }
}
