import FAL
import Foundation
import Testing

@Suite struct FALModelsTests {
    @Test func aspectRatiosMatchTheirPixelsExactly() {
        for ratio in AspectRatio.allCases {
            let parts = ratio.rawValue.split(separator: ":").map { Int($0)! }
            let size = ratio.imageSize
            #expect(size.width * parts[1] == size.height * parts[0], "\(ratio.rawValue) → \(size.preset) \(size.width)×\(size.height)")
        }
    }

    @Test func inputsEncodeWithFALFieldNames() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let trainer = String(decoding: try encoder.encode(PortraitTrainerInput(imagesDataURL: "https://v3.fal.media/files/a/photos.zip", triggerPhrase: "ohwx_7f3a person", steps: 2500)), as: UTF8.self)
        #expect(trainer == #"{"data_archive_format":"zip","images_data_url":"https://v3.fal.media/files/a/photos.zip","steps":2500,"trigger_phrase":"ohwx_7f3a person"}"#)
        let style = String(decoding: try encoder.encode(FastTrainingInput(imagesDataURL: "u", triggerWord: "stl_1", isStyle: true)), as: UTF8.self)
        #expect(style == #"{"create_masks":false,"data_archive_format":"zip","images_data_url":"u","is_style":true,"trigger_word":"stl_1"}"#)
        let generation = try FluxLoraInput(prompt: "ohwx_7f3a person in Paris", lora: .init(path: "https://v3.fal.media/files/x/lora.safetensors"), aspectRatio: .portrait9x16, count: 2)
        let json = String(decoding: try encoder.encode(generation), as: UTF8.self)
        #expect(json.contains(#""image_size":"portrait_16_9""#) && json.contains(#""num_images":2"#) && json.contains(#""loras":[{"path":"https://v3.fal.media/files/x/lora.safetensors","scale":1}]"#))
        #expect(throws: FALError.self) { try FluxLoraInput(prompt: "x", lora: .init(path: "p"), aspectRatio: .square, count: 5) }
        #expect(throws: FALError.self) { try FluxLoraInput(prompt: "", lora: .init(path: "p"), aspectRatio: .square, count: 1) }
    }

    @Test func outputsDecodeIncludingHugeSeeds() throws {
        let output = try JSONDecoder().decode(FluxLoraOutput.self, from: Data(#"{"images":[{"url":"https://v3.fal.media/files/x/x.jpg","width":576,"height":1024,"content_type":"image/jpeg"}],"seed":196619188014358660,"has_nsfw_concepts":[false],"prompt":"p","timings":{"inference":2.1}}"#.utf8))
        #expect(output.seed == 196_619_188_014_358_660, "exact beyond 2^53")
        #expect(output.images.first?.width == 576 && output.hasNSFWConcepts == [false])
        let training = try JSONDecoder().decode(TrainingOutput.self, from: try Vector.fixture("webhook-training-ok.json").withPayload())
        #expect(training.diffusersLoraFile.url == "https://v3.fal.media/files/x/lora.safetensors" && training.configFile?.fileName == "config.json")
        #expect(throws: (any Error).self, "no LoRA file is a failure, not a default") {
            try JSONDecoder().decode(TrainingOutput.self, from: Data(#"{"config_file":{"url":"u"}}"#.utf8))
        }
    }
}

extension [UInt8] {
    /// The `payload` member of a webhook body, re-encoded.
    func withPayload() throws -> Data {
        let payload = try JSONDecoder().decode(FALWebhookPayload.self, from: Data(self)).payload
        return try JSONEncoder().encode(payload)
    }
}
