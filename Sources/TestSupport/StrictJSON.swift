import Foundation

/// An oracle for our JSON readers: random mutations of a valid body, judged by a strict RFC 8259
/// parser (Python's, with UTF-8 checked and NaN/Infinity refused). Foundation's parser is no
/// oracle: it accepts trailing commas.
public enum StrictJSON {
    /// `count` copies of `seed`, each with one to three random edits: a byte removed, a byte of
    /// JSON punctuation inserted, or a byte overwritten with any value.
    public static func mutations(of seed: [UInt8], count: Int) -> [[UInt8]] {
        var generator = SystemRandomNumberGenerator()
        let punctuation = Array(#"{}[]",:0-e.\ 9u"#.utf8)
        return (0..<count).map { _ in
            var body = seed
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let position = Int.random(in: 0..<body.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: body.remove(at: position)
                case 1: body.insert(punctuation.randomElement(using: &generator)!, at: position)
                default: body[position] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            return body
        }
    }

    /// Python's verdict on each body: nil when it refuses it, else the value re-encoded compactly
    /// as UTF-8 JSON (to compare values, not just acceptance).
    public static func pythonVerdicts(_ bodies: [[UInt8]]) async throws -> [[UInt8]?] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("strict-json-\(UUID()).hex").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try bodies.map { hex($0) }.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let script = """
            import json, sys
            def bad(_): raise ValueError
            for line in open(sys.argv[1]):
                try:
                    value = json.loads(bytes.fromhex(line.strip()).decode('utf-8'), parse_constant=bad)
                    print(json.dumps(value, ensure_ascii=False, allow_nan=False).encode('utf-8').hex())
                except Exception:
                    print('-')
            """
        let lines = try await TestServices.run("/usr/bin/env", ["python3", "-c", script, file]).split(separator: "\n")
        guard lines.count == bodies.count else { throw TestServicesError("python3 judged \(lines.count) of \(bodies.count) bodies") }
        return lines.map { $0 == "-" ? nil : bytes(fromHex: $0) }
    }

    private static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    private static func bytes(fromHex text: Substring) -> [UInt8] {
        var out: [UInt8] = []
        var digits = text.utf8.makeIterator()
        while let high = digits.next(), let low = digits.next() { out.append(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)!) }
        return out
    }
}
