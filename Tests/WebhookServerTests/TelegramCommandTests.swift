import Foundation
import Sandbox
import TestSupport
import Testing

/// `aisha telegram …` as an operator runs it, against the Sandbox's Bot API.
@Suite struct TelegramCommandTests {
    @Test func setInspectAndDeleteTheWebhookAndCommands() async throws {
        let sandbox = Sandbox()
        try await sandbox.run { endpoints in
            let aisha = TestServices.productsDirectory + "/aisha"
            let environment = ProcessInfo.processInfo.environment.merging([
                "AISHA_TELEGRAM_BOT_TOKEN": sandbox.telegram.configuration.token, "AISHA_TELEGRAM_API_URL": endpoints.telegramAPI,
                "AISHA_TELEGRAM_WEBHOOK_SECRET": "op_secret-1",
            ]) { $1 }
            let set = try await TestServices.run(aisha, ["telegram", "set-webhook", "--url", "https://bot.example.com/telegram/webhook", "--max-connections", "40"], environment: environment)
            #expect(set.contains("webhook set"))
            let webhook = try #require(sandbox.telegram.webhook)
            #expect(webhook.url == "https://bot.example.com/telegram/webhook" && webhook.secretToken == "op_secret-1" && webhook.maxConnections == 40)
            #expect(webhook.allowedUpdates == ["message", "edited_message", "callback_query", "my_chat_member", "pre_checkout_query"])
            let info = try await TestServices.run(aisha, ["telegram", "webhook-info"], environment: environment)
            #expect(info.contains("https://bot.example.com/telegram/webhook") && info.contains("pending updates:      0"))
            _ = try await TestServices.run(aisha, ["telegram", "set-commands"], environment: environment)
            #expect(sandbox.telegram.commands["ru"]?.contains("avatars") == true && sandbox.telegram.commands[""]?.count == 9)
            _ = try await TestServices.run(aisha, ["telegram", "delete-webhook"], environment: environment)
            #expect(sandbox.telegram.webhook == nil)
            // Without a token: a plain refusal, and the token is never asked for on the command line.
            var missing = environment
            missing["AISHA_TELEGRAM_BOT_TOKEN"] = nil
            await #expect(throws: (any Error).self) { _ = try await TestServices.run(aisha, ["telegram", "webhook-info"], environment: missing) }
        }
    }
}
