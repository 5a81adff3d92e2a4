import Foundation
import Imaging
import TestSupport
import Testing

@Suite struct ImageHeaderTests {
    /// Files written by Pillow (an independent encoder) in every format and WebP flavour.
    @Test(arguments: [
        ("JPEG", "RGB", 640, 480, ImageHeader.Format.jpeg, "{}"),
        ("JPEG", "RGB", 300, 1200, .jpeg, "{'progressive': True}"),
        ("PNG", "RGBA", 513, 257, .png, "{}"),
        ("WEBP", "RGB", 800, 600, .webp, "{'quality': 80}"),
        ("WEBP", "RGB", 333, 777, .webp, "{'lossless': True}"),
        ("WEBP", "RGBA", 1024, 512, .webp, "{'quality': 80, 'exif': b'Exif\\x00\\x00MM'}"),
    ])
    func readsFormatAndSize(pil: String, mode: String, width: Int, height: Int, format: ImageHeader.Format, options: String) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("header-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = "import sys\nfrom PIL import Image\nImage.new('\(mode)', (\(width), \(height)), 'red').save(sys.argv[1], '\(pil)', **\(options))"
        _ = try await TestServices.run("/usr/bin/env", ["python3", "-c", script, path])
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(ImageHeader.parse(bytes) == ImageHeader(format: format, width: width, height: height))
    }

    @Test func ourJPEGsAndNonImages() {
        let jpeg = JPEGEncoder.encode(width: 1000, height: 700, padding: 5000) { _, _ in 128 }
        #expect(ImageHeader.parse(jpeg) == ImageHeader(format: .jpeg, width: 1000, height: 700))
        #expect(ImageHeader.parse(jpeg.prefix(20)) == nil, "a header cut short is not an image")
        #expect(ImageHeader.parse(Array("hello, this is a text file renamed to .jpg".utf8)) == nil)
        #expect(ImageHeader.parse([]) == nil)
        #expect(ImageHeader.parse([0xFF, 0xD8, 0xFF, 0xD9]) == nil)
    }
}

@Suite struct ImageCompletenessTests {
    @Test(arguments: [("JPEG", ImageHeader.Format.jpeg), ("PNG", .png), ("WEBP", .webp)])
    func completeFilesPassAndTruncatedOnesDoNot(pil: String, format: ImageHeader.Format) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("complete-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Noise, so the files are large enough to cut in the middle of the image data.
        let script = "import sys, os\nfrom PIL import Image\nImage.frombytes('RGB', (600, 600), os.urandom(600*600*3)).save(sys.argv[1], '\(pil)')"
        _ = try await TestServices.run("/usr/bin/env", ["python3", "-c", script, path])
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(ImageHeader.parse(bytes)?.format == format)
        #expect(ImageHeader.isComplete(bytes, format: format))
        let cut = Array(bytes.prefix(bytes.count * 2 / 3))
        #expect(ImageHeader.parse(cut)?.format == format, "the header survives the cut")
        #expect(!ImageHeader.isComplete(cut, format: format), "but the file is known to be incomplete")
    }
}
