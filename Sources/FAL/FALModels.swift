/// Model ids and typed inputs/outputs of the three FAL models Aisha uses (external-apis §4).
public enum FALModel {
    public static let portraitTrainer = "fal-ai/flux-lora-portrait-trainer"
    public static let fastTraining = "fal-ai/flux-lora-fast-training"
    public static let fluxLora = "fal-ai/flux-lora"
}

/// A file in a FAL output.
public struct FALFile: Codable, Sendable, Equatable {
    public var url: String
    public var contentType: String?
    public var fileName: String?
    public var fileSize: Int?
    enum CodingKeys: String, CodingKey { case url, contentType = "content_type", fileName = "file_name", fileSize = "file_size" }
}

/// `fal-ai/flux-lora-portrait-trainer` input (§4.1); nil fields take FAL's defaults.
public struct PortraitTrainerInput: Codable, Sendable, Equatable {
    /// The ZIP of photos (at least 10 recommended).
    public var imagesDataURL: String
    /// Used as the caption and in place of `[trigger]` (the avatar's own phrase).
    public var triggerPhrase: String?
    public var learningRate: Double?
    public var steps: Int?
    public var multiresolutionTraining: Bool?
    public var subjectCrop: Bool?
    public var createMasks: Bool?
    public var dataArchiveFormat: String?

    enum CodingKeys: String, CodingKey {
        case imagesDataURL = "images_data_url", triggerPhrase = "trigger_phrase", learningRate = "learning_rate", steps
        case multiresolutionTraining = "multiresolution_training", subjectCrop = "subject_crop", createMasks = "create_masks"
        case dataArchiveFormat = "data_archive_format"
    }

    /// An input with FAL's defaults except the archive and trigger phrase.
    public init(imagesDataURL: String, triggerPhrase: String?, steps: Int? = nil, learningRate: Double? = nil) {
        self.imagesDataURL = imagesDataURL
        self.triggerPhrase = triggerPhrase
        self.steps = steps
        self.learningRate = learningRate
        self.dataArchiveFormat = "zip"
    }
}

/// `fal-ai/flux-lora-fast-training` input (§4.2), used for style avatars.
public struct FastTrainingInput: Codable, Sendable, Equatable {
    public var imagesDataURL: String
    public var triggerWord: String?
    public var createMasks: Bool?
    public var steps: Int?
    public var isStyle: Bool?
    public var dataArchiveFormat: String?

    enum CodingKeys: String, CodingKey {
        case imagesDataURL = "images_data_url", triggerWord = "trigger_word", createMasks = "create_masks", steps, isStyle = "is_style"
        case dataArchiveFormat = "data_archive_format"
    }

    /// An input for a style (segmentation and captioning off) or a subject.
    public init(imagesDataURL: String, triggerWord: String?, isStyle: Bool, steps: Int? = nil) {
        self.imagesDataURL = imagesDataURL
        self.triggerWord = triggerWord
        self.isStyle = isStyle
        self.createMasks = isStyle ? false : nil
        self.steps = steps
        self.dataArchiveFormat = "zip"
    }
}

/// Both trainers' output. A training without `diffusers_lora_file` is a failure, never faked.
public struct TrainingOutput: Codable, Sendable, Equatable {
    public var diffusersLoraFile: FALFile
    public var configFile: FALFile?
    enum CodingKeys: String, CodingKey { case diffusersLoraFile = "diffusers_lora_file", configFile = "config_file" }
}

/// The aspect ratios the bot offers, each with an `image_size` whose pixels have exactly that ratio.
public enum AspectRatio: String, CaseIterable, Sendable, Codable {
    case square = "1:1", portrait3x4 = "3:4", landscape4x3 = "4:3", portrait9x16 = "9:16", landscape16x9 = "16:9"

    /// FAL's preset name and its pixel size (§4.3).
    public var imageSize: (preset: String, width: Int, height: Int) {
        switch self {
        case .square: ("square_hd", 1024, 1024)
        case .portrait3x4: ("portrait_4_3", 768, 1024)
        case .landscape4x3: ("landscape_4_3", 1024, 768)
        case .portrait9x16: ("portrait_16_9", 576, 1024)
        case .landscape16x9: ("landscape_16_9", 1024, 576)
        }
    }
}

/// `fal-ai/flux-lora` input (§4.3).
public struct FluxLoraInput: Encodable, Sendable, Equatable {
    public struct LoRA: Codable, Sendable, Equatable {
        public var path: String
        public var scale: Double
        public init(path: String, scale: Double = 1) { self.path = path; self.scale = scale }
    }

    public var prompt: String
    public var loras: [LoRA]
    /// A preset name such as `portrait_16_9`.
    public var imageSize: String
    public var numImages: Int
    public var seed: UInt64?
    public var enableSafetyChecker: Bool
    public var outputFormat: String

    enum CodingKeys: String, CodingKey {
        case prompt, loras, imageSize = "image_size", numImages = "num_images", seed, enableSafetyChecker = "enable_safety_checker", outputFormat = "output_format"
    }

    /// An input for `count` images (1–4) at `aspectRatio` with one LoRA.
    /// - Throws: `FALError` (status 0) when `count` is outside 1–4 or the prompt is empty.
    public init(prompt: String, lora: LoRA, aspectRatio: AspectRatio, count: Int, seed: UInt64? = nil) throws {
        guard (1...4).contains(count) else { throw FALError(status: 0, detail: "num_images must be 1–4", errorType: "bad_request", retryable: false) }
        guard !prompt.isEmpty else { throw FALError(status: 0, detail: "prompt is empty", errorType: "bad_request", retryable: false) }
        self.prompt = prompt
        self.loras = [lora]
        self.imageSize = aspectRatio.imageSize.preset
        self.numImages = count
        self.seed = seed
        self.enableSafetyChecker = true
        self.outputFormat = "jpeg"
    }
}

/// `fal-ai/flux-lora` output.
public struct FluxLoraOutput: Decodable, Sendable, Equatable {
    public struct Image: Decodable, Sendable, Equatable {
        public var url: String
        public var width: Int?
        public var height: Int?
        public var contentType: String?
        enum CodingKeys: String, CodingKey { case url, width, height, contentType = "content_type" }
    }
    public var images: [Image]
    /// May exceed 2^53: decoded as an integer, never a Double.
    public var seed: UInt64?
    public var hasNSFWConcepts: [Bool]?
    enum CodingKeys: String, CodingKey { case images, seed, hasNSFWConcepts = "has_nsfw_concepts" }
}
