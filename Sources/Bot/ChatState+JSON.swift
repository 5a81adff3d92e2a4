import Avatars
import Foundation
import JSON
import Pipeline

// The step and the follow-ups are written to `chat_state` with every update and read back with
// the next: without Codable, in the text the synthesized conformances write and read (tested
// both ways), so rows saved by either build still load. `JSONEncoder` and `JSONDecoder` on these
// two were a sixth of the worker's CPU per reply (docs/benchmarks.md).

extension ChatStep {
    /// The case's name and its values, in order, as text.
    private var parts: (name: String, values: [String]) {
        switch self {
        case .idle: ("idle", [])
        case .chooseKind: ("chooseKind", [])
        case .chooseGender(let kind): ("chooseGender", [kind.rawValue])
        case .enterName(let kind, let gender): ("enterName", [kind.rawValue, gender.rawValue])
        case .consent(let kind, let gender, let name): ("consent", [kind.rawValue, gender.rawValue, name])
        case .collecting(let id): ("collecting", [id.uuidString])
        case .renaming(let id): ("renaming", [id.uuidString])
        case .prompt(let id): ("prompt", [id.uuidString])
        case .aspect(let id, let prompt): ("aspect", [id.uuidString, prompt])
        case .count(let id, let prompt, let ratio): ("count", [id.uuidString, prompt, ratio])
        }
    }

    /// `{"case":{"_0":…,"_1":…}}`, as the synthesized `Encodable` writes it.
    var jsonText: String {
        let (name, values) = parts
        var json = JSONWriter(capacity: 64)
        json.object { json in
            json.key(name)
            json.object { json in
                for (index, value) in values.enumerated() { json.member("_\(index)", value) }
            }
        }
        return String(decoding: json.bytes, as: UTF8.self)
    }

    /// A step from its stored text; nil when it is not one. Like the synthesized `Decodable`, it
    /// ignores members it does not need.
    init?(jsonText text: String) {
        guard case .object(let outer)? = try? JSONValue(parsing: text.utf8), outer.count == 1, let (name, payload) = outer.first,
              case .object(let members) = payload else { return nil }
        func value(_ index: Int) -> String? { members["_\(index)"]?.stringValue }
        func kind() -> AvatarKind? { value(0).flatMap(AvatarKind.init(rawValue:)) }
        func gender() -> Gender? { value(1).flatMap(Gender.init(rawValue:)) }
        func id() -> UUID? { value(0).flatMap(UUID.init(uuidString:)) }
        let step: ChatStep? = switch name {
        case "idle": .idle
        case "chooseKind": .chooseKind
        case "chooseGender": kind().map { .chooseGender($0) }
        case "enterName": kind().flatMap { kind in gender().map { .enterName(kind, $0) } }
        case "consent": kind().flatMap { kind in gender().flatMap { gender in value(2).map { .consent(kind, gender, $0) } } }
        case "collecting": id().map { .collecting($0) }
        case "renaming": id().map { .renaming($0) }
        case "prompt": id().map { .prompt($0) }
        case "aspect": id().flatMap { id in value(1).map { .aspect(id, $0) } }
        case "count": id().flatMap { id in value(1).flatMap { prompt in value(2).map { .count(id, prompt, $0) } } }
        default: nil
        }
        guard let step else { return nil }
        self = step
    }
}

extension BotHandler.FollowUps {
    var jsonText: String {
        var json = JSONWriter(capacity: 128)
        json.object { json in
            json.member("language", language)
            json.member("startTraining", startTraining?.uuidString)
            json.member("cancelTraining", cancelTraining?.uuidString)
            if let generation {
                json.key("generation")
                json.object { json in
                    json.member("id", generation.id.uuidString)
                    json.member("avatarID", generation.avatarID.uuidString)
                    json.member("prompt", generation.prompt)
                    json.member("ratio", generation.ratio)
                    json.member("count", Int64(generation.count))
                }
            }
            if let removedPhoto {
                json.key("removedPhoto")
                json.object { json in
                    json.member("avatarID", removedPhoto.avatarID.uuidString)
                    json.member("photoID", removedPhoto.photoID.uuidString)
                }
            }
            json.key("deletedImages")
            json.array(deletedImages) { json, key in json.string(key) }
            json.member("answerCallback", answerCallback)
            json.member("callbackText", callbackText)
            if let reply {
                json.key("reply")
                reply.write(to: &json)
            }
        }
        return String(decoding: json.bytes, as: UTF8.self)
    }

    /// Follow-ups from their stored text; nil when it is not that.
    init?(jsonText text: String) {
        guard let json = try? JSONValue(parsing: text.utf8), let language = json["language"]?.stringValue,
              case .array(let deleted)? = json["deletedImages"], let answerCallback = json["answerCallback"]?.boolValue else { return nil }
        func uuid(_ value: JSONValue) -> UUID? { value.stringValue.flatMap(UUID.init(uuidString:)) }
        let images = deleted.compactMap(\.stringValue)
        guard images.count == deleted.count else { return nil }
        do {
            self.init(
                language: language, startTraining: try json.optionalMember("startTraining", uuid), cancelTraining: try json.optionalMember("cancelTraining", uuid),
                generation: try json.optionalMember("generation") { value in
                    guard let id = value["id"].flatMap(uuid), let avatarID = value["avatarID"].flatMap(uuid), let prompt = value["prompt"]?.stringValue,
                          let ratio = value["ratio"]?.stringValue, let count = value["count"]?.integerValue else { return nil }
                    return Generation(id: id, avatarID: avatarID, prompt: prompt, ratio: ratio, count: Int(count))
                },
                removedPhoto: try json.optionalMember("removedPhoto") { value in
                    guard let avatarID = value["avatarID"].flatMap(uuid), let photoID = value["photoID"].flatMap(uuid) else { return nil }
                    return RemovedPhoto(avatarID: avatarID, photoID: photoID)
                },
                deletedImages: images, answerCallback: answerCallback, callbackText: try json.optionalMember("callbackText", \.stringValue),
                reply: try json.optionalMember("reply") { try? OutgoingMessage(json: $0) })
        } catch {
            return nil
        }
    }
}
