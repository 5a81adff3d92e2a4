/// A minimal baseline JPEG encoder: 8-bit grayscale, one DC coefficient per 8×8 block.
///
/// It makes real, decodable JPEG files of any size (smooth shading, no texture) for the Sandbox's
/// generated images, photo-validation fixtures and benchmarks, with no image library on the machine.
/// `padding` adds a comment (COM) segment of pseudo-random bytes so files can reach realistic sizes.
public enum JPEGEncoder {
    /// Encodes a `width`×`height` image whose gray level at (x, y) is `shade(x, y)`.
    public static func encode(width: Int, height: Int, padding: Int = 0, seed: UInt64 = 1, shade: (Int, Int) -> UInt8) -> [UInt8] {
        precondition(width > 0 && height > 0 && width <= 65_535 && height <= 65_535, "JPEG dimensions are 1…65535")
        var out: [UInt8] = [0xFF, 0xD8]  // SOI
        // APP0 JFIF.
        out += [0xFF, 0xE0, 0x00, 0x10] + Array("JFIF".utf8) + [0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]
        // COM segments of filler, at most 65,533 payload bytes each.
        var random = seed | 1
        var remaining = padding
        while remaining > 0 {
            let chunk = min(remaining, 65_533)
            out += [0xFF, 0xFE, UInt8((chunk + 2) >> 8), UInt8((chunk + 2) & 0xFF)]
            for _ in 0..<chunk {
                random ^= random << 13; random ^= random >> 7; random ^= random << 17
                out.append(UInt8(truncatingIfNeeded: random))
            }
            remaining -= chunk
        }
        // DQT: table 0, all ones (the DC value is kept exactly).
        out += [0xFF, 0xDB, 0x00, 0x43, 0x00] + [UInt8](repeating: 1, count: 64)
        // SOF0: 8-bit, one component (id 1, 1×1 sampling, table 0).
        out += [0xFF, 0xC0, 0x00, 0x0B, 0x08, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF), 0x01, 0x01, 0x11, 0x00]
        // DHT: the standard luminance DC table (ITU T.81 K.3) and an AC table holding only EOB.
        out += [0xFF, 0xC4, 0x00, 0x1F, 0x00] + dcCounts + Array(0...11)
        out += [0xFF, 0xC4, 0x00, 0x14, 0x10, 0x01] + [UInt8](repeating: 0, count: 15) + [0x00]
        // SOS: one component, DC table 0, AC table 0, full spectral range.
        out += [0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]

        var writer = BitWriter()
        let dcCodes = huffmanCodes(counts: dcCounts)
        var previousDC = 0
        for blockY in stride(from: 0, to: height, by: 8) {
            for blockX in stride(from: 0, to: width, by: 8) {
                var sum = 0
                for y in 0..<8 {
                    for x in 0..<8 { sum += Int(shade(min(blockX + x, width - 1), min(blockY + y, height - 1))) - 128 }
                }
                let dc = Int((Double(sum) / 8).rounded())  // the DCT's DC term is the sum / 8
                let diff = dc - previousDC
                previousDC = dc
                let magnitude = abs(diff)
                let category = magnitude == 0 ? 0 : Int.bitWidth - magnitude.leadingZeroBitCount
                writer.write(dcCodes[category].code, count: dcCodes[category].length)
                if category > 0 {
                    let bits = diff > 0 ? diff : diff + (1 << category) - 1
                    writer.write(bits, count: category)
                }
                writer.write(0, count: 1)  // EOB: the only AC symbol, code "0"
            }
        }
        out += writer.finish()
        out += [0xFF, 0xD9]  // EOI
        return out
    }

    private static let dcCounts: [UInt8] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]

    /// Canonical Huffman codes from a DHT count list (symbols in order).
    private static func huffmanCodes(counts: [UInt8]) -> [(code: Int, length: Int)] {
        var codes: [(Int, Int)] = []
        var code = 0
        for (index, count) in counts.enumerated() {
            for _ in 0..<count {
                codes.append((code, index + 1))
                code += 1
            }
            code <<= 1
        }
        return codes
    }

    private struct BitWriter {
        var bytes: [UInt8] = []
        var accumulator = 0
        var bitCount = 0

        mutating func write(_ value: Int, count: Int) {
            for shift in stride(from: count - 1, through: 0, by: -1) {
                accumulator = accumulator << 1 | (value >> shift & 1)
                bitCount += 1
                if bitCount == 8 { flushByte() }
            }
        }

        private mutating func flushByte() {
            let byte = UInt8(accumulator & 0xFF)
            bytes.append(byte)
            if byte == 0xFF { bytes.append(0x00) }  // byte stuffing inside entropy-coded data
            accumulator = 0
            bitCount = 0
        }

        mutating func finish() -> [UInt8] {
            while bitCount != 0 { write(1, count: 1) }  // pad with 1-bits
            return bytes
        }
    }
}
