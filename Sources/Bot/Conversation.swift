public import Avatars
public import Foundation

/// Where a chat is in a conversation. Persisted as JSON in `chat_state`.
public enum ChatStep: Codable, Sendable, Equatable {
    case idle
    case chooseKind
    case chooseGender(AvatarKind)
    case enterName(AvatarKind, Gender)
    case consent(AvatarKind, Gender, String)
    case collecting(UUID)
}

/// What arrived, already reduced to what the conversation cares about.
public enum BotEvent: Sendable, Equatable {
    case command(String, argument: String)
    case text(String)
    /// A photo, or an image sent as a file (uncompressed original).
    case photo(fileID: String, fileUniqueID: String, fileSize: Int?)
    /// A file that is not an image.
    case otherFile
    case button(data: String, callbackID: String)
}

/// What the conversation needs to know from the database to decide.
public struct BotFacts: Sendable, Equatable {
    public var isNewUser: Bool
    public var balance: Int
    public var trainingPrice: Int
    public var minimumPhotos: Int
    public var maximumPhotos: Int
    /// The avatar being collected for, when the step names one and it belongs to this user.
    public var collecting: Avatar?
    /// An id for an avatar this update may create (injected, so the core stays pure).
    public var newAvatarID: UUID

    public init(isNewUser: Bool, balance: Int, trainingPrice: Int, minimumPhotos: Int, maximumPhotos: Int, collecting: Avatar?, newAvatarID: UUID) {
        self.isNewUser = isNewUser
        self.balance = balance
        self.trainingPrice = trainingPrice
        self.minimumPhotos = minimumPhotos
        self.maximumPhotos = maximumPhotos
        self.collecting = collecting
        self.newAvatarID = newAvatarID
    }
}

/// A text to show: a catalogue key with arguments, and buttons of (catalogue key, callback data).
public struct Reply: Sendable, Equatable {
    public var key: String
    public var arguments: [String: String]
    public var buttons: [[Button]]

    public struct Button: Sendable, Equatable {
        public var key: String
        public var data: String
        public var arguments: [String: String] = [:]
    }

    init(_ key: String, _ arguments: [String: String] = [:], buttons: [[Button]] = []) {
        self.key = key
        self.arguments = arguments
        self.buttons = buttons
    }
}

/// What the conversation asks the edges to do, in order.
public enum BotAction: Sendable, Equatable {
    case reply(Reply)
    case answerCallback(textKey: String?)
    case createAvatar(id: UUID, kind: AvatarKind, gender: Gender, name: String)
    case recordConsent
    case ingestPhoto(avatarID: UUID, fileID: String, fileUniqueID: String, fileSize: Int?)
    case startTraining(avatarID: UUID)
    case setLanguage(String)
}

/// The conversation: a pure function of (step, event, facts) → (next step, actions). No I/O,
/// so every screen and button is tested directly (Tests/BotTests).
public enum Conversation {
    static func button(_ key: String, _ data: String, _ arguments: [String: String] = [:]) -> Reply.Button { .init(key: key, data: data, arguments: arguments) }

    static var mainMenu: [[Reply.Button]] {
        [[button("menu.create", "av:new")], [button("menu.avatars", "av:list:0")], [button("menu.balance", "bal")], [button("menu.help", "help")]]
    }

    public static func handle(_ step: ChatStep, _ event: BotEvent, _ facts: BotFacts) -> (ChatStep, [BotAction]) {
        var actions: [BotAction] = []
        if case .button = event { actions.append(.answerCallback(textKey: nil)) }  // always answer, so the client stops spinning

        switch event {
        case .command("/start", _):
            // Deep links (`/start <payload>`) are accepted and ignored.
            actions.append(.reply(Reply(facts.isNewUser ? "start.welcome.new" : "start.welcome", ["balance": "\(facts.balance)"], buttons: mainMenu)))
            return (.idle, actions)
        case .command("/help", _), .button("help", _):
            actions.append(.reply(Reply("help", ["min": "\(facts.minimumPhotos)", "max": "\(facts.maximumPhotos)", "price": "\(facts.trainingPrice)"], buttons: mainMenu)))
            return (step, actions)
        case .command("/balance", _), .button("bal", _):
            actions.append(.reply(Reply("balance", ["balance": "\(facts.balance)"], buttons: mainMenu)))
            return (step, actions)
        case .command("/cancel", _), .button("cancel", _):
            actions.append(.reply(Reply(step == .idle ? "cancel.nothing" : "cancel.done", buttons: mainMenu)))
            return (.idle, actions)
        case .command("/language", _):
            actions.append(.reply(Reply("language.choose", buttons: [[button("language.en", "lang:en"), button("language.ru", "lang:ru")]])))
            return (step, actions)
        case .button(let data, _) where data.hasPrefix("lang:"):
            let language = data == "lang:ru" ? "ru" : "en"
            actions.append(.setLanguage(language))
            actions.append(.reply(Reply("language.set", buttons: mainMenu)))
            return (step, actions)
        case .command("/create", _), .button("av:new", _):
            actions.append(.reply(Reply("create.kind", buttons: [[button("kind.portrait", "kind:portrait"), button("kind.style", "kind:style")], [button("button.cancel", "cancel")]])))
            return (.chooseKind, actions)
        case .command(_, _):
            actions.append(.reply(Reply("unknown.command", buttons: mainMenu)))
            return (step, actions)
        default:
            break
        }

        switch (step, event) {
        case (.chooseKind, .button(let data, _)) where data.hasPrefix("kind:"):
            let kind: AvatarKind = data == "kind:style" ? .style : .portrait
            actions.append(.reply(Reply("create.gender", buttons: [[button("gender.female", "gender:female"), button("gender.male", "gender:male")],
                                                                 [button("gender.other", "gender:other")], [button("button.cancel", "cancel")]])))
            return (.chooseGender(kind), actions)
        case (.chooseGender(let kind), .button(let data, _)) where data.hasPrefix("gender:"):
            let gender = Gender(rawValue: String(data.dropFirst("gender:".count))) ?? .other
            actions.append(.reply(Reply("create.name")))
            return (.enterName(kind, gender), actions)
        case (.enterName(let kind, let gender), .text(let text)):
            guard let name = AvatarRules.validName(text) else {
                actions.append(.reply(Reply("create.name.invalid")))
                return (step, actions)
            }
            actions.append(.reply(Reply("create.consent", ["name": name], buttons: [[button("consent.yes", "consent:yes")], [button("button.cancel", "cancel")]])))
            return (.consent(kind, gender, name), actions)
        case (.consent(let kind, let gender, let name), .button("consent:yes", _)):
            actions.append(.recordConsent)
            actions.append(.createAvatar(id: facts.newAvatarID, kind: kind, gender: gender, name: name))
            actions.append(.reply(Reply("photos.send", ["name": name, "min": "\(facts.minimumPhotos)", "max": "\(facts.maximumPhotos)"])))
            return (.collecting(facts.newAvatarID), actions)
        case (.collecting(let avatarID), .photo(let fileID, let fileUniqueID, let size)):
            guard let avatar = facts.collecting, avatar.id == avatarID, avatar.status.acceptsPhotos else {
                actions.append(.reply(Reply("photos.closed", buttons: mainMenu)))
                return (.idle, actions)
            }
            actions.append(.ingestPhoto(avatarID: avatarID, fileID: fileID, fileUniqueID: fileUniqueID, fileSize: size))
            return (step, actions)
        case (.collecting, .otherFile):
            actions.append(.reply(Reply("photo.rejected.not_image")))
            return (step, actions)
        case (.collecting(let avatarID), .button(let data, _)) where data == "train:\(avatarID.uuidString.lowercased())":
            guard let avatar = facts.collecting, avatar.id == avatarID else {
                return (step, [.answerCallback(textKey: "stale.button")])
            }
            guard avatar.photoCount >= facts.minimumPhotos else {
                actions.append(.reply(Reply("train.too_few", ["count": "\(avatar.photoCount)", "min": "\(facts.minimumPhotos)"])))
                return (step, actions)
            }
            guard facts.balance >= facts.trainingPrice else {
                actions.append(.reply(Reply("train.insufficient", ["price": "\(facts.trainingPrice)", "balance": "\(facts.balance)", "missing": "\(facts.trainingPrice - facts.balance)"], buttons: mainMenu)))
                return (step, actions)
            }
            actions.append(.startTraining(avatarID: avatarID))
            return (.idle, actions)
        case (_, .photo), (_, .otherFile):
            actions.append(.reply(Reply("photos.not_expected", buttons: mainMenu)))
            return (step, actions)
        case (_, .button):
            // A button from an older screen, or forged data: say so politely, change nothing.
            return (step, [.answerCallback(textKey: "stale.button")])
        default:
            actions.append(.reply(Reply("menu.hint", buttons: mainMenu)))
            return (step, actions)
        }
    }
}
