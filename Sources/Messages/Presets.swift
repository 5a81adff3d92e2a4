import Foundation

/// The style presets: a browsable catalogue of scene prompts by category, each with an English
/// and a Russian title (`Resources/presets.json` — data, so it grows without code changes).
/// Prompts do not name the subject: the avatar's trigger phrase is put first when generating.
public struct Presets: Sendable {
    public struct Preset: Codable, Sendable, Equatable {
        public var id: String
        public var category: String
        public var title: [String: String]
        public var prompt: String
    }

    struct File: Codable {
        var categories: [String: [String: String]]
        var presets: [Preset]
    }

    public let categories: [(id: String, title: [String: String])]
    public let presets: [Preset]

    public static let shared: Presets = {
        guard let url = Bundle.module.url(forResource: "presets", withExtension: "json"), let data = try? Data(contentsOf: url),
              let file = try? JSONDecoder().decode(File.self, from: data)
        else { fatalError("presets.json is missing from the build") }
        let order = file.presets.map(\.category).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        return Presets(categories: order.map { ($0, file.categories[$0] ?? ["en": $0]) }, presets: file.presets)
    }()

    public func preset(_ id: String) -> Preset? { presets.first { $0.id == id } }
    public func inCategory(_ category: String) -> [Preset] { presets.filter { $0.category == category } }
}
