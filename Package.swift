// swift-tools-version:6.1
import PackageDescription

/// One set of settings for every Swift target: Swift 6 mode (strict concurrency) plus the
/// upcoming features that keep imports and existentials explicit.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "aisha",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "aisha-server", targets: ["AishaServer"]),
        .executable(name: "aisha-worker", targets: ["AishaWorker"]),
        .executable(name: "aisha", targets: ["AishaCLI"]),
        .executable(name: "aisha-probe", targets: ["AishaProbe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C libraries of the design card, each behind one system-library target.
        .systemLibrary(name: "CLibpq", pkgConfig: "libpq", providers: [.apt(["libpq-dev"]), .brew(["libpq"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"]), .brew(["curl"])]),
        .systemLibrary(name: "CLibzip", pkgConfig: "libzip", providers: [.apt(["libzip-dev"]), .brew(["libzip"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]),

        // Swift owners of those C handles.
        .target(name: "Signing", dependencies: ["COpenSSL"], swiftSettings: swiftSettings),
        .target(name: "BlockingIO", swiftSettings: swiftSettings),
        // The webhook server's HTTP/1.1 layer: epoll loops, no task hops on the hot path.
        .systemLibrary(name: "CEpoll"),
        .target(name: "HTTPServer", dependencies: ["CEpoll", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .target(
            name: "Postgres",
            dependencies: ["CLibpq", "BlockingIO", "Signing", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(name: "Curl", dependencies: ["CCurl"], swiftSettings: swiftSettings),
        .target(name: "Zip", dependencies: ["CLibzip"], swiftSettings: swiftSettings),
        .target(name: "Imaging", swiftSettings: swiftSettings),
        .target(name: "ObjectStorage", dependencies: ["Curl", "Signing"], swiftSettings: swiftSettings),
        // JSON text without Codable, for the hot paths where `JSONDecoder`/`JSONEncoder` cost most.
        .target(name: "JSON", swiftSettings: swiftSettings),
        .target(name: "FAL", dependencies: ["Curl", "Signing", "JSON"], swiftSettings: swiftSettings),
        .target(name: "Telegram", dependencies: ["Curl", "JSON"], swiftSettings: swiftSettings),
        .target(name: "RateLimit", dependencies: ["Postgres", "JobQueue", "Telegram"], swiftSettings: swiftSettings),
        // Every user-facing text, English and Russian, as data.
        .target(name: "Messages", resources: [.copy("Resources/en.json"), .copy("Resources/ru.json"), .copy("Resources/presets.json")], swiftSettings: swiftSettings),
        // The domain: users, credits, avatars, photos, generations; pure rules plus their tables.
        .target(name: "Avatars", dependencies: ["Postgres", "JobQueue", "Imaging"], swiftSettings: swiftSettings),
        // The worker's job handlers: photo ingest, training, FAL results, the outbox.
        .target(
            name: "Pipeline",
            dependencies: [
                "Avatars", "Messages", "JobQueue", "Postgres", "ObjectStorage", "FAL", "Telegram", "RateLimit", "Zip", "Imaging", "Signing", "Curl", "BlockingIO", "JSON",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The Telegram conversation: a pure core plus the telegram.update handler.
        .target(
            name: "Bot",
            dependencies: ["Avatars", "Messages", "Pipeline", "JobQueue", "Postgres", "RateLimit", "Telegram", "FAL", "Signing", "ObjectStorage", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Local stand-ins for the Telegram Bot API and FAL (tests, demo, benchmarks).
        .target(
            name: "Sandbox",
            dependencies: [
                "Curl", "FAL", "HTTPServer", "Imaging", "JSON", "RateLimit", "Signing", "Zip",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "JobQueue",
            dependencies: [
                "Postgres", "BlockingIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // Executables: thin shells that read configuration and call builders.
        // The webhook HTTP application (a library so tests run it in-process).
        .target(
            name: "WebhookServer",
            dependencies: [
                "Postgres", "JobQueue", "FAL", "Telegram", "Signing", "HTTPServer",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "AishaServer",
            dependencies: [
                "Postgres", "WebhookServer", "HTTPServer",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "AishaWorker",
            dependencies: [
                "Postgres", "JobQueue", "Pipeline", "Bot", "RateLimit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "AishaCLI",
            dependencies: [
                "Postgres", "JobQueue", "BlockingIO", "Sandbox", "Curl", "Telegram", "Pipeline", "Avatars", "ObjectStorage", "FAL", "Imaging", "RateLimit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // A worker with synthetic job kinds for queue tests, reliability runs and benchmarks.
        .executableTarget(
            name: "AishaProbe",
            dependencies: [
                "JobQueue", "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // Shared by the test targets only: the local services' coordinates, fresh databases.
        .target(
            name: "TestSupport",
            dependencies: [
                "Postgres", "BlockingIO", "WebhookServer", "HTTPServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "JSONTests", dependencies: ["JSON", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "SigningTests", dependencies: ["Signing"], swiftSettings: swiftSettings),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "Curl", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(
            name: "CurlTests",
            dependencies: ["Curl", "Signing", "TestSupport", .product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "JobQueueTests",
            dependencies: ["JobQueue", "Postgres", "TestSupport", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(name: "ObjectStorageTests", dependencies: ["ObjectStorage", "Signing", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "FALTests",
            dependencies: ["FAL", "JSON", "Signing", "TestSupport", .product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TelegramTests",
            dependencies: ["Telegram", "JSON", "TestSupport", .product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SandboxTests",
            dependencies: ["Sandbox", "Telegram", "FAL", "JSON", "Curl", "Zip", "Imaging", "Signing", "RateLimit", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WebhookServerTests",
            dependencies: [
                "WebhookServer", "JobQueue", "Postgres", "FAL", "Curl", "Sandbox", "Telegram", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PipelineTests",
            dependencies: [
                "Pipeline", "Bot", "Avatars", "Messages", "JobQueue", "Postgres", "ObjectStorage", "FAL", "Telegram", "RateLimit", "Sandbox", "WebhookServer",
                "Imaging", "JSON", "Zip", "TestSupport",
                .product(name: "Logging", package: "swift-log"), .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RateLimitTests", dependencies: ["RateLimit", "Postgres", "JobQueue", "Telegram", "Sandbox", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ZipTests", dependencies: ["Zip", "Signing", "Imaging", "TestSupport"], swiftSettings: swiftSettings),
    ]
)
