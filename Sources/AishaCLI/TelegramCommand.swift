import ArgumentParser
import Foundation
import Telegram

/// `aisha telegram …`: the bot's webhook and command list at Telegram.
struct TelegramCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "telegram", abstract: "Manage the bot's webhook and commands at Telegram (token from $AISHA_TELEGRAM_BOT_TOKEN).",
        subcommands: [SetWebhook.self, DeleteWebhook.self, WebhookInfo.self, SetCommands.self]
    )

    struct Connection: ParsableArguments {
        @Option(help: "Bot API base URL (default: $AISHA_TELEGRAM_API_URL, else https://api.telegram.org).") var apiURL: String?

        func client() throws -> TelegramClient {
            let environment = ProcessInfo.processInfo.environment
            guard let token = environment["AISHA_TELEGRAM_BOT_TOKEN"], !token.isEmpty else {
                throw ValidationError("set AISHA_TELEGRAM_BOT_TOKEN (the token is never taken from the command line, where it would land in shell history)")
            }
            return TelegramClient(token: token, apiBaseURL: apiURL ?? environment["AISHA_TELEGRAM_API_URL"] ?? "https://api.telegram.org")
        }
    }

    struct SetWebhook: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-webhook", abstract: "Point Telegram at our /telegram/webhook.")
        @OptionGroup var connection: Connection
        @Option(help: "Public HTTPS URL of the webhook, e.g. https://bot.example.com/telegram/webhook.") var url: String
        @Option(help: "Update kinds to receive (comma-separated; empty: Telegram's default set).")
        var allowedUpdates = "message,edited_message,callback_query,my_chat_member,pre_checkout_query"
        @Option(help: "Most simultaneous webhook connections (1–100).") var maxConnections = 40
        @Flag(help: "Drop the updates Telegram queued while no webhook was set.") var dropPending = false

        func run() async throws {
            guard let secret = ProcessInfo.processInfo.environment["AISHA_TELEGRAM_WEBHOOK_SECRET"] else {
                throw ValidationError("set AISHA_TELEGRAM_WEBHOOK_SECRET (the same value aisha-server checks)")
            }
            let kinds = allowedUpdates.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            try await connection.client().setWebhook(url: url, secretToken: secret, allowedUpdates: kinds.isEmpty ? nil : kinds, maxConnections: maxConnections, dropPendingUpdates: dropPending)
            print("webhook set: \(url) (\(kinds.isEmpty ? "default update kinds" : kinds.joined(separator: ", ")); max \(maxConnections) connections)")
        }
    }

    struct DeleteWebhook: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete-webhook", abstract: "Stop webhook delivery.")
        @OptionGroup var connection: Connection
        @Flag(help: "Also drop the updates Telegram has queued.") var dropPending = false

        func run() async throws {
            try await connection.client().deleteWebhook(dropPendingUpdates: dropPending)
            print("webhook deleted")
        }
    }

    struct WebhookInfo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "webhook-info", abstract: "Show the webhook Telegram has, its backlog and last error.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let info = try await connection.client().getWebhookInfo()
            print("url:                  \(info.url.isEmpty ? "(none)" : info.url)")
            print("pending updates:      \(info.pendingUpdateCount)")
            print("max connections:      \(info.maxConnections.map(String.init) ?? "-")")
            print("allowed updates:      \(info.allowedUpdates?.joined(separator: ", ") ?? "(default)")")
            if let message = info.lastErrorMessage {
                let when = info.lastErrorDate.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval($0))) } ?? "?"
                print("last error:           \(message) at \(when)")
            }
        }
    }

    struct SetCommands: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-commands", abstract: "Register the bot's command menu in English (default) and Russian.")
        @OptionGroup var connection: Connection

        static let english: [TelegramClient.BotCommand] = [
            .init("start", "Start and main menu"), .init("avatars", "My avatars"), .init("generate", "Create images"), .init("gallery", "My images"),
            .init("balance", "Credits and history"), .init("language", "Change language"), .init("cancel", "Cancel the current step"),
            .init("help", "How it works"), .init("delete_me", "Delete my data"),
        ]
        static let russian: [TelegramClient.BotCommand] = [
            .init("start", "Начать и главное меню"), .init("avatars", "Мои аватары"), .init("generate", "Создать изображения"), .init("gallery", "Мои изображения"),
            .init("balance", "Кредиты и история"), .init("language", "Сменить язык"), .init("cancel", "Отменить текущий шаг"),
            .init("help", "Как это работает"), .init("delete_me", "Удалить мои данные"),
        ]

        func run() async throws {
            let client = try connection.client()
            try await client.setMyCommands(Self.english)
            try await client.setMyCommands(Self.english, languageCode: "en")
            try await client.setMyCommands(Self.russian, languageCode: "ru")
            print("commands set: \(Self.english.map { "/" + $0.command }.joined(separator: " ")) (default, en, ru)")
        }
    }
}
