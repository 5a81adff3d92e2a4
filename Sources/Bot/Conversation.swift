public import Avatars
public import Foundation
import Messages

/// Where a chat is in a conversation. Persisted as JSON in `chat_state`.
public enum ChatStep: Codable, Sendable, Equatable {
    case idle
    case chooseKind
    case chooseGender(AvatarKind)
    case enterName(AvatarKind, Gender)
    case consent(AvatarKind, Gender, String)
    case collecting(UUID)
    case renaming(UUID)
    /// Waiting for a scene description for this avatar.
    case prompt(UUID)
    case aspect(UUID, String)
    case count(UUID, String, String)
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
public struct BotFacts: Sendable {
    public var isNewUser: Bool
    public var balance: Int
    public var trainingPrice: Int
    public var minimumPhotos: Int
    public var maximumPhotos: Int
    /// The avatar being collected for, when the step names one and it belongs to this user.
    public var collecting: Avatar?
    /// An id for an avatar or generation this update may create (injected, so the core stays pure).
    public var newAvatarID: UUID
    /// The user's avatars, newest first (for the gallery and /generate).
    public var avatars: [Avatar] = []
    /// The avatar a pressed button names, if it belongs to the presser (nil: foreign or gone).
    public var target: Avatar?
    public var imagePrice: Int = 5
    /// `en` or `ru`, for data that carries its own translations (style presets).
    public var language = "en"
    /// The last ledger movements, already rendered in the user's language.
    public var history = ""
    /// A generation a pressed button names, if it is the presser's: (avatar, prompt, ratio, count).
    public var targetGeneration: (avatarID: UUID, prompt: String, aspectRatio: String, count: Int)?
    /// The user's finished generations, newest first: (id, prompt, images, favourite).
    public var gallery: [(id: UUID, prompt: String, images: Int, favourite: Bool)] = []
    /// The photos of the avatar being collected, in upload order (for "My photos").
    public var photos: [UUID] = []

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
    case setMain(avatarID: UUID)
    case rename(avatarID: UUID, name: String)
    case deleteAvatar(avatarID: UUID)
    case cancelTraining(avatarID: UUID)
    case requestGeneration(id: UUID, avatarID: UUID, prompt: String, aspectRatio: String, count: Int)
    case deleteMe
    case removePhoto(avatarID: UUID, photoID: UUID)
    case toggleFavourite(generationID: UUID)
    case resendImages(generationID: UUID)
    case deleteImages(generationID: UUID)
}

/// The conversation: a pure function of (step, event, facts) → (next step, actions). No I/O,
/// so every screen and button is tested directly (Tests/BotTests).
public enum Conversation {
    static func button(_ key: String, _ data: String, _ arguments: [String: String] = [:]) -> Reply.Button { .init(key: key, data: data, arguments: arguments) }

    static var mainMenu: [[Reply.Button]] {
        [[button("menu.create", "av:new")], [button("menu.avatars", "av:list:0"), button("menu.images", "img:list")], [button("menu.balance", "bal"), button("menu.help", "help")]]
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
            actions.append(.reply(Reply("balance", ["balance": "\(facts.balance)", "history": facts.history], buttons: mainMenu)))
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
        case .command("/delete_me", _):
            actions.append(.reply(Reply("me.delete.confirm", buttons: [[button("me.delete.yes", "me:del")], [button("button.cancel", "cancel")]])))
            return (.idle, actions)
        case .button("me:del", _):
            actions.append(.deleteMe)
            actions.append(.reply(Reply("me.deleting")))
            return (.idle, actions)
        case .command("/gallery", _), .button("img:list", _):
            actions.append(.reply(imageGallery(facts.gallery)))
            return (.idle, actions)
        case .button(let data, _) where data.hasPrefix("gen:fav:") || data.hasPrefix("gen:show:") || data.hasPrefix("gen:del:") || data.hasPrefix("gen:delok:"):
            guard facts.targetGeneration != nil, let id = data.split(separator: ":").last.flatMap({ UUID(uuidString: String($0)) }) else {
                return (step, [.answerCallback(textKey: "stale.button")])
            }
            if data.hasPrefix("gen:fav:") { return (step, [.answerCallback(textKey: "images.favourite.toggled"), .toggleFavourite(generationID: id)]) }
            if data.hasPrefix("gen:show:") { return (step, actions + [.resendImages(generationID: id)]) }
            if data.hasPrefix("gen:del:") {
                actions.append(.reply(Reply("images.delete.confirm", buttons: [[button("avatar.delete.yes", "gen:delok:\(id.uuidString.lowercased())"), button("button.cancel", "cancel")]])))
                return (step, actions)
            }
            actions.append(.deleteImages(generationID: id))
            actions.append(.reply(Reply("images.deleted", buttons: mainMenu)))
            return (.idle, actions)
        case .button(let data, _) where data.hasPrefix("gen:again:") || data.hasPrefix("gen:prompt:"):
            guard let generation = facts.targetGeneration else { return (step, [.answerCallback(textKey: "stale.button")]) }
            if data.hasPrefix("gen:prompt:") {
                actions.append(.reply(Reply("text.raw", ["text": generation.prompt])))
                return (step, actions)
            }
            guard facts.balance >= generation.count * facts.imagePrice else {
                let price = generation.count * facts.imagePrice
                actions.append(.reply(Reply("generate.insufficient", ["price": "\(price)", "balance": "\(facts.balance)", "missing": "\(price - facts.balance)"], buttons: mainMenu)))
                return (.idle, actions)
            }
            actions.append(.requestGeneration(id: facts.newAvatarID, avatarID: generation.avatarID, prompt: generation.prompt, aspectRatio: generation.aspectRatio, count: generation.count))
            return (.idle, actions)
        case .command("/avatars", _):
            actions.append(.reply(gallery(facts.avatars, page: 0)))
            return (.idle, actions)
        case .button(let data, _) where data.hasPrefix("av:list:"):
            actions.append(.reply(gallery(facts.avatars, page: Int(data.dropFirst("av:list:".count)) ?? 0)))
            return (.idle, actions)
        case .command("/generate", _):
            guard let avatar = facts.avatars.first(where: { $0.isMain }) ?? facts.avatars.first(where: { $0.status == .completed }) else {
                actions.append(.reply(Reply("generate.no_avatar", buttons: mainMenu)))
                return (.idle, actions)
            }
            actions.append(.reply(promptReply(avatar.name)))
            return (.prompt(avatar.id), actions)
        case .command(_, _):
            actions.append(.reply(Reply("unknown.command", buttons: mainMenu)))
            return (step, actions)
        case .button(let data, _) where data.hasPrefix("av:") || data.hasPrefix("gen:av:"):
            return avatarButton(data, step: step, facts: facts, actions: actions)
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
        case (.renaming(let avatarID), .text(let text)):
            guard let name = AvatarRules.validName(text) else {
                actions.append(.reply(Reply("create.name.invalid")))
                return (step, actions)
            }
            actions.append(.rename(avatarID: avatarID, name: name))
            actions.append(.reply(Reply("avatar.renamed", ["name": name], buttons: mainMenu)))
            return (.idle, actions)
        case (.prompt(let avatarID), .text(let text)):
            guard let prompt = GenerationRules.validPrompt(text) else {
                actions.append(.reply(Reply("generate.prompt.invalid")))
                return (step, actions)
            }
            actions.append(.reply(aspectReply))
            return (.aspect(avatarID, prompt), actions)
        case (.prompt, .button("pre:cats", _)):
            let rows = Presets.shared.categories.map { [button("text.raw", "pre:c:\($0.id)", ["text": $0.title[facts.language] ?? $0.id])] }
            actions.append(.reply(Reply("presets.categories", buttons: rows + [[button("button.cancel", "cancel")]])))
            return (step, actions)
        case (.prompt, .button(let data, _)) where data.hasPrefix("pre:c:"):
            let presets = Presets.shared.inCategory(String(data.dropFirst("pre:c:".count)))
            guard !presets.isEmpty else { return (step, [.answerCallback(textKey: "stale.button")]) }
            let rows = presets.map { [button("text.raw", "pre:p:\($0.id)", ["text": $0.title[facts.language] ?? $0.id])] }
            actions.append(.reply(Reply("presets.choose", buttons: rows + [[button("presets.back", "pre:cats")]])))
            return (step, actions)
        case (.prompt(let avatarID), .button(let data, _)) where data.hasPrefix("pre:p:"):
            guard let preset = Presets.shared.preset(String(data.dropFirst("pre:p:".count))) else { return (step, [.answerCallback(textKey: "stale.button")]) }
            actions.append(.reply(aspectReply))
            return (.aspect(avatarID, preset.prompt), actions)
        case (.aspect(let avatarID, let prompt), .button(let data, _)) where data.hasPrefix("asp:"):
            let ratio = String(data.dropFirst(4))
            guard ["1:1", "3:4", "4:3", "9:16", "16:9"].contains(ratio) else { return (step, [.answerCallback(textKey: "stale.button")]) }
            actions.append(.reply(Reply("generate.count", ["price": "\(facts.imagePrice)", "balance": "\(facts.balance)"],
                                        buttons: [(1...4).map { button("count.n", "cnt:\($0)", ["n": "\($0)", "price": "\($0 * facts.imagePrice)"]) }, [button("button.cancel", "cancel")]])))
            return (.count(avatarID, prompt, ratio), actions)
        case (.count(let avatarID, let prompt, let ratio), .button(let data, _)) where data.hasPrefix("cnt:"):
            guard let count = Int(data.dropFirst(4)), (1...4).contains(count) else { return (step, [.answerCallback(textKey: "stale.button")]) }
            guard facts.balance >= count * facts.imagePrice else {
                let price = count * facts.imagePrice
                actions.append(.reply(Reply("generate.insufficient", ["price": "\(price)", "balance": "\(facts.balance)", "missing": "\(price - facts.balance)"], buttons: mainMenu)))
                return (.idle, actions)
            }
            actions.append(.requestGeneration(id: facts.newAvatarID, avatarID: avatarID, prompt: prompt, aspectRatio: ratio, count: count))
            return (.idle, actions)
        case (.collecting(let avatarID), .button(let data, _)) where data == "ph:list:\(avatarID.uuidString.lowercased())":
            guard !facts.photos.isEmpty else {
                actions.append(.reply(Reply("photos.none")))
                return (step, actions)
            }
            let rows = facts.photos.enumerated().map { index, id in [button("photos.remove", "ph:del:\(id.uuidString.lowercased())", ["n": "\(index + 1)"])] }
            actions.append(.reply(Reply("photos.list", ["count": "\(facts.photos.count)"], buttons: rows)))
            return (step, actions)
        case (.collecting(let avatarID), .button(let data, _)) where data.hasPrefix("ph:del:"):
            guard let photoID = UUID(uuidString: String(data.dropFirst("ph:del:".count))), facts.photos.contains(photoID) else {
                return (step, [.answerCallback(textKey: "stale.button")])
            }
            actions.append(.removePhoto(avatarID: avatarID, photoID: photoID))
            actions.append(.reply(Reply("photos.removed", ["count": "\(facts.photos.count - 1)", "min": "\(facts.minimumPhotos)"])))
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

    static let pageSize = 5

    /// The user's images: one row per generation (★ for favourites) to show it again or delete it.
    static func imageGallery(_ generations: [(id: UUID, prompt: String, images: Int, favourite: Bool)]) -> Reply {
        guard !generations.isEmpty else { return Reply("images.none", buttons: mainMenu) }
        let rows = generations.prefix(10).map { generation -> [Reply.Button] in
            let id = generation.id.uuidString.lowercased()
            let title = (generation.favourite ? "★ " : "") + String(generation.prompt.prefix(40))
            return [button("text.raw", "gen:show:\(id)", ["text": title]), button("button.delete", "gen:del:\(id)")]
        }
        return Reply("images.title", ["count": "\(generations.count)"], buttons: rows)
    }

    static func promptReply(_ name: String) -> Reply {
        Reply("generate.prompt", ["name": name], buttons: [[button("presets.browse", "pre:cats")], [button("button.cancel", "cancel")]])
    }

    static var aspectReply: Reply {
        Reply("generate.aspect", buttons: [["1:1", "3:4", "4:3", "9:16", "16:9"].map { button("aspect." + $0, "asp:" + $0) }, [button("button.cancel", "cancel")]])
    }

    /// The gallery: one line per avatar (name, kind, status, photos, date), a button to open each,
    /// and paging.
    static func gallery(_ avatars: [Avatar], page: Int) -> Reply {
        guard !avatars.isEmpty else { return Reply("gallery.empty", buttons: [[button("menu.create", "av:new")]]) }
        let pages = (avatars.count + pageSize - 1) / pageSize
        let page = min(max(0, page), pages - 1)
        let shown = avatars.dropFirst(page * pageSize).prefix(pageSize)
        var rows = shown.map { [button("gallery.open", "av:open:\($0.id.uuidString.lowercased())", ["name": $0.name, "status": "status." + $0.status.rawValue])] }
        var paging: [Reply.Button] = []
        if page > 0 { paging.append(button("gallery.previous", "av:list:\(page - 1)")) }
        if page + 1 < pages { paging.append(button("gallery.next", "av:list:\(page + 1)")) }
        if !paging.isEmpty { rows.append(paging) }
        rows.append([button("menu.create", "av:new")])
        return Reply("gallery.title", ["count": "\(avatars.count)", "page": "\(page + 1)", "pages": "\(pages)"], buttons: rows)
    }

    /// An avatar's card: its facts and the buttons its status allows.
    static func card(_ avatar: Avatar) -> Reply {
        let id = avatar.id.uuidString.lowercased()
        var rows: [[Reply.Button]]
        switch avatar.status {
        case .draft, .ready: rows = [[button("card.continue", "av:cont:\(id)")], [button("button.delete", "av:del:\(id)")]]
        case .training: rows = [[button("card.status", "av:status:\(id)"), button("card.cancel", "av:cancel:\(id)")]]
        case .completed:
            rows = [[button("button.generate", "gen:av:\(id)")]]
            if !avatar.isMain { rows.append([button("card.main", "av:main:\(id)")]) }
            rows.append([button("card.rename", "av:ren:\(id)"), button("button.delete", "av:del:\(id)")])
        case .failed, .cancelled: rows = [[button("button.retry", "av:retry:\(id)"), button("button.delete", "av:del:\(id)")]]
        }
        rows.append([button("menu.avatars", "av:list:0")])
        let created = ISO8601DateFormatter.string(from: avatar.createdAt, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate])
        return Reply("card", ["name": avatar.name, "kind": "kind.\(avatar.kind.rawValue)", "status": "status.\(avatar.status.rawValue)",
                              "photos": "\(avatar.photoCount)", "created": created, "main": avatar.isMain ? "card.is_main" : ""], buttons: rows)
    }

    /// Buttons that name an avatar: only the presser's own avatar, in a status that allows the action.
    static func avatarButton(_ data: String, step: ChatStep, facts: BotFacts, actions: [BotAction]) -> (ChatStep, [BotAction]) {
        var actions = actions
        let stale: (ChatStep, [BotAction]) = (step, [.answerCallback(textKey: "stale.button")])
        guard let avatar = facts.target, data.hasSuffix(avatar.id.uuidString.lowercased()) else { return stale }
        let verb = data.hasPrefix("gen:av:") ? "gen" : String(data.split(separator: ":")[1])
        switch (verb, avatar.status) {
        case ("open", _):
            actions.append(.reply(card(avatar)))
            return (step, actions)
        case ("cont", .draft), ("cont", .ready):
            actions.append(.reply(Reply("photos.continue", ["name": avatar.name, "count": "\(avatar.photoCount)", "min": "\(facts.minimumPhotos)", "max": "\(facts.maximumPhotos)"],
                                        buttons: avatar.photoCount >= facts.minimumPhotos ? [[button("train.start", "train:\(avatar.id.uuidString.lowercased())", ["price": "\(facts.trainingPrice)"])]] : [])))
            return (.collecting(avatar.id), actions)
        case ("status", .training):
            actions.append(.reply(Reply("training.status", ["name": avatar.name])))
            return (step, actions)
        case ("cancel", .training):
            actions.append(.cancelTraining(avatarID: avatar.id))
            return (.idle, actions)
        case ("retry", .failed), ("retry", .cancelled):
            guard facts.balance >= facts.trainingPrice else {
                actions.append(.reply(Reply("train.insufficient", ["price": "\(facts.trainingPrice)", "balance": "\(facts.balance)", "missing": "\(facts.trainingPrice - facts.balance)"])))
                return (step, actions)
            }
            return (.idle, actions + [.startTraining(avatarID: avatar.id)])
        case ("main", .completed):
            actions.append(.setMain(avatarID: avatar.id))
            actions.append(.reply(Reply("avatar.main", ["name": avatar.name], buttons: mainMenu)))
            return (step, actions)
        case ("ren", .completed):
            actions.append(.reply(Reply("avatar.rename", ["name": avatar.name])))
            return (.renaming(avatar.id), actions)
        case ("del", _):
            actions.append(.reply(Reply("avatar.delete.confirm", ["name": avatar.name],
                                        buttons: [[button("avatar.delete.yes", "av:delok:\(avatar.id.uuidString.lowercased())"), button("button.cancel", "cancel")]])))
            return (step, actions)
        case ("delok", _):
            actions.append(.deleteAvatar(avatarID: avatar.id))
            actions.append(.reply(Reply("avatar.deleted", ["name": avatar.name], buttons: mainMenu)))
            return (.idle, actions)
        case ("gen", .completed):
            actions.append(.reply(promptReply(avatar.name)))
            return (.prompt(avatar.id), actions)
        default:
            return stale
        }
    }
}
