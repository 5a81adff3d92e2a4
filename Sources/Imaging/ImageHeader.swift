/// What an image file is and how big, read from its first bytes — never from its name.
///
/// Photo ingest (is this really a JPEG, PNG or WebP, and is its shorter side large enough?)
/// and the Sandbox trainer (does the ZIP hold images?) both decide on this.
public struct ImageHeader: Sendable, Equatable {
    public enum Format: String, Sendable, Equatable { case jpeg, png, webp }

    public var format: Format
    public var width: Int
    public var height: Int

    public init(format: Format, width: Int, height: Int) {
        self.format = format
        self.width = width
        self.height = height
    }

    /// The MIME type of the format.
    public var contentType: String {
        switch format {
        case .jpeg: "image/jpeg"
        case .png: "image/png"
        case .webp: "image/webp"
        }
    }

    /// Parses the header of a JPEG, PNG or WebP file; nil for anything else or a header cut short.
    /// JPEG dimensions sit in the first SOFn segment, which may follow large EXIF blocks, so pass
    /// enough of the file (the whole file is simplest).
    public static func parse(_ bytes: some Collection<UInt8>) -> ImageHeader? {
        let bytes = Array(bytes)
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return jpeg(bytes) }
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return png(bytes) }
        if bytes.count >= 16, bytes[0..<4].elementsEqual("RIFF".utf8), bytes[8..<12].elementsEqual("WEBP".utf8) { return webp(bytes) }
        return nil
    }

    /// Whether the file of this format ends the way a complete one does — a JPEG's end-of-image
    /// marker (cameras may append a few bytes after it), a PNG's IEND chunk, a WebP's full RIFF
    /// length — so a transfer cut short is caught before it reaches a training.
    public static func isComplete(_ bytes: some Collection<UInt8>, format: Format) -> Bool {
        let b = Array(bytes)
        switch format {
        case .jpeg:
            let tail = b.suffix(4096)
            return zip(tail, tail.dropFirst()).contains { $0 == 0xFF && $1 == 0xD9 }
        case .png:
            return b.count >= 12 && b.suffix(12).starts(with: [0, 0, 0, 0]) && b.suffix(8).starts(with: Array("IEND".utf8))
        case .webp:
            guard b.count >= 12 else { return false }
            let declared = Int(b[4]) | Int(b[5]) << 8 | Int(b[6]) << 16 | Int(b[7]) << 24
            return declared + 8 <= b.count
        }
    }

    private static func png(_ b: [UInt8]) -> ImageHeader? {
        // Signature, then the IHDR chunk: length(4) "IHDR" width(4) height(4), big-endian.
        guard b.count >= 24, b[12..<16].elementsEqual("IHDR".utf8) else { return nil }
        let width = Int(bigEndian32(b, 16)), height = Int(bigEndian32(b, 20))
        return width > 0 && height > 0 ? ImageHeader(format: .png, width: width, height: height) : nil
    }

    private static func jpeg(_ b: [UInt8]) -> ImageHeader? {
        var i = 2
        while i + 4 <= b.count {
            guard b[i] == 0xFF else { return nil }
            let marker = b[i + 1]
            if marker == 0xFF { i += 1; continue }  // fill byte
            if marker == 0xD8 || (0xD0...0xD7).contains(marker) || marker == 0x01 { i += 2; continue }
            if marker == 0xD9 || marker == 0xDA { return nil }  // end or scan before any frame header
            let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            guard length >= 2 else { return nil }
            // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                guard i + 9 <= b.count else { return nil }
                let height = Int(b[i + 5]) << 8 | Int(b[i + 6])
                let width = Int(b[i + 7]) << 8 | Int(b[i + 8])
                return width > 0 && height > 0 ? ImageHeader(format: .jpeg, width: width, height: height) : nil
            }
            i += 2 + length
        }
        return nil
    }

    private static func webp(_ b: [UInt8]) -> ImageHeader? {
        guard b.count >= 30 else { return nil }
        let chunk = String(decoding: b[12..<16], as: UTF8.self)
        switch chunk {
        case "VP8 ":
            // Lossy: frame tag (3), start code 9D 01 2A, then 14-bit width and height.
            guard b[23] == 0x9D, b[24] == 0x01, b[25] == 0x2A else { return nil }
            let width = Int(littleEndian16(b, 26) & 0x3FFF), height = Int(littleEndian16(b, 28) & 0x3FFF)
            return width > 0 && height > 0 ? ImageHeader(format: .webp, width: width, height: height) : nil
        case "VP8L":
            // Lossless: signature 2F, then 14-bit (width-1) and (height-1), little-endian bit packed.
            guard b[20] == 0x2F else { return nil }
            let bits = UInt32(b[21]) | UInt32(b[22]) << 8 | UInt32(b[23]) << 16 | UInt32(b[24]) << 24
            return ImageHeader(format: .webp, width: Int(bits & 0x3FFF) + 1, height: Int((bits >> 14) & 0x3FFF) + 1)
        case "VP8X":
            // Extended: 24-bit (canvas width-1) and (height-1) at offsets 24 and 27.
            let width = (Int(b[24]) | Int(b[25]) << 8 | Int(b[26]) << 16) + 1
            let height = (Int(b[27]) | Int(b[28]) << 8 | Int(b[29]) << 16) + 1
            return ImageHeader(format: .webp, width: width, height: height)
        default:
            return nil
        }
    }

    private static func bigEndian32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    private static func littleEndian16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
}
