import Foundation
import Imaging
import TestSupport
import Testing

@Suite struct JPEGEncoderTests {
    /// Pillow (an independent decoder) must decode our files to the size and shading we asked for.
    @Test(arguments: [(1, 1), (8, 8), (13, 7), (300, 300), (512, 768), (1024, 1024)])
    func pillowDecodesSizeAndShading(width: Int, height: Int) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jpeg-\(UUID().uuidString).jpg").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let jpeg = JPEGEncoder.encode(width: width, height: height, padding: 1000) { x, _ in x < width / 2 ? 40 : 220 }
        try Data(jpeg).write(to: URL(fileURLWithPath: path))
        let script = """
            import sys
            from PIL import Image
            im = Image.open(sys.argv[1]); im.load()
            w, h = im.size
            print(im.format, im.mode, w, h, im.getpixel((0, 0)), im.getpixel((w - 1, h - 1)))
            """
        let output = try await TestServices.run("/usr/bin/env", ["python3", "-c", script, path])
        let fields = output.split(separator: " ").map(String.init)
        #expect(fields.prefix(4) == ["JPEG", "L", "\(width)", "\(height)"])
        if width >= 16 {  // whole blocks on each side: the two halves keep their levels
            #expect(abs(Int(fields[4])! - 40) <= 2 && abs(Int(fields[5])! - 220) <= 2, "\(output)")
        }
    }

    @Test func paddingReachesTheRequestedSize() {
        let jpeg = JPEGEncoder.encode(width: 640, height: 480, padding: 140_000) { x, y in UInt8((x + y) % 256) }
        #expect(jpeg.count > 140_000 && jpeg.count < 150_000)
        #expect(jpeg.prefix(2) == [0xFF, 0xD8] && jpeg.suffix(2) == [0xFF, 0xD9])
    }
}
