import Foundation

/// The message catalogue: every user-facing text, in English and Russian, as data
/// (`Resources/en.json`, `ru.json`) — never in code, never an exception's text.
public struct Catalog: Sendable {
    public enum Language: String, Sendable, CaseIterable {
        case en, ru

        /// Russian for `ru…` clients, English for everyone else.
        public init(languageCode: String?) { self = languageCode?.lowercased().hasPrefix("ru") == true ? .ru : .en }
    }

    let texts: [Language: [String: String]]

    /// The catalogue shipped with the build.
    public static let shared: Catalog = {
        var texts: [Language: [String: String]] = [:]
        for language in Language.allCases {
            guard let url = Bundle.module.url(forResource: language.rawValue, withExtension: "json"),
                  let data = try? Data(contentsOf: url),
                  let table = try? JSONDecoder().decode([String: String].self, from: data)
            else { fatalError("message catalogue \(language.rawValue).json is missing from the build") }
            texts[language] = table
        }
        return Catalog(texts: texts)
    }()

    public init(texts: [Language: [String: String]]) { self.texts = texts }

    /// The text for `key` with `{name}` placeholders filled; falls back to English, then to the key.
    public func text(_ key: String, _ language: Language, _ arguments: [String: String] = [:]) -> String {
        let template = texts[language]?[key] ?? texts[.en]?[key] ?? key
        return arguments.isEmpty ? template : Self.fill(template, arguments)
    }

    /// Replaces each `{name}` of `template` once, in one pass. Replacing argument by argument
    /// (as before) also replaced placeholders inside earlier values: an avatar named
    /// "{balance}" was shown as the balance. Unknown placeholders stay as they are.
    static func fill(_ template: String, _ arguments: [String: String]) -> String {
        var result = ""
        result.reserveCapacity(template.utf8.count + 16)
        var rest = template[...]
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}"),
                  let value = arguments[String(rest[rest.index(after: open)..<close])] else {
                result += rest[open...open]
                rest = rest[rest.index(after: open)...]
                continue
            }
            result += value
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }

    /// `text`, with arguments that are themselves catalogue keys (a status, a reason) translated too.
    public func localized(_ key: String, _ language: Language, _ arguments: [String: String] = [:]) -> String {
        text(key, language, arguments.mapValues { has($0) ? text($0, language) : $0 })
    }

    /// Whether `key` is a catalogue key.
    public func has(_ key: String) -> Bool { texts[.en]?[key] != nil }

    /// Keys present in one language but not the other (a test keeps this empty).
    public var missingTranslations: [String] {
        let en = Set(texts[.en]?.keys ?? [:].keys), ru = Set(texts[.ru]?.keys ?? [:].keys)
        return en.symmetricDifference(ru).sorted()
    }
}
