/// Parses an HTTP/1.x request head (request line and header fields) from raw bytes. Pure: the
/// event loop feeds it what has arrived so far, and it says "need more", "here is the head", or
/// which status to refuse with.
enum HTTPHeadParser {
    struct Head: Equatable {
        var method: String
        var path: String
        var query: Substring?
        var headers: [HTTPField]
        var contentLength: Int
        var keepAlive: Bool
        var expectsContinue: Bool
        /// Bytes the head took, its blank line included.
        var length: Int
    }

    enum Outcome: Equatable {
        case incomplete
        case head(Head)
        case refuse(status: Int, reason: String)
    }

    /// Parses the head at the start of `bytes`, refusing with 431 once `maxLength` bytes hold no
    /// complete head.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maxLength: Int) -> Outcome {
        guard let end = headEnd(bytes) else {
            return bytes.count > maxLength ? .refuse(status: 431, reason: "request head too large") : .incomplete
        }
        guard end <= maxLength else { return .refuse(status: 431, reason: "request head too large") }
        var lines = Lines(bytes: bytes, end: end)
        // RFC 9112 §2.2: a server should ignore empty lines received before the request line.
        var requestLine = lines.next()
        while let line = requestLine, line.isEmpty { requestLine = lines.next() }
        guard let requestLine, let request = parseRequestLine(requestLine, bytes) else {
            return .refuse(status: 400, reason: "malformed request line")
        }
        guard request.version == 0 || request.version == 1 else { return .refuse(status: 505, reason: "only HTTP/1.0 and HTTP/1.1 are served") }

        var head = Head(
            method: request.method, path: request.path, query: request.query, headers: [], contentLength: 0,
            keepAlive: request.version == 1, expectsContinue: false, length: end
        )
        var contentLength: Int?
        while let line = lines.next(), !line.isEmpty {
            guard let field = parseField(line, bytes) else { return .refuse(status: 400, reason: "malformed header field") }
            switch field.name {
            case "content-length":
                guard let value = Int(field.value), value >= 0, field.value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    return .refuse(status: 400, reason: "invalid Content-Length")
                }
                if let earlier = contentLength, earlier != value { return .refuse(status: 400, reason: "conflicting Content-Length") }
                contentLength = value
            case "transfer-encoding":
                // Webhook senders and reverse proxies send a length; decoding chunked bodies
                // is left out on purpose (RFC 9112 allows refusing with 411).
                return .refuse(status: 411, reason: "a Content-Length is required")
            case "connection":
                for token in field.value.lowercased().split(separator: ",").map({ $0.trimmingSpaces }) {
                    if token == "close" { head.keepAlive = false } else if token == "keep-alive" && request.version == 0 { head.keepAlive = true }
                }
            case "expect":
                guard field.value.lowercased() == "100-continue" else { return .refuse(status: 417, reason: "unsupported expectation") }
                head.expectsContinue = request.version == 1
            default: break
            }
            head.headers.append(field)
        }
        head.contentLength = contentLength ?? 0
        return .head(head)
    }

    /// The offset just past the first empty line (CRLF CRLF, or bare LF LF), if it has arrived.
    static func headEnd(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var index = 0
        let count = bytes.count
        while index < count {
            if bytes[index] == 0x0A {  // LF: an empty line follows if the next line is CRLF or LF
                if index + 1 < count && bytes[index + 1] == 0x0A { return index + 2 }
                if index + 2 < count && bytes[index + 1] == 0x0D && bytes[index + 2] == 0x0A { return index + 3 }
            }
            index += 1
        }
        return nil
    }

    /// Lines of the head without their CRLF (or LF), as ranges of the buffer.
    struct Lines {
        let bytes: UnsafeBufferPointer<UInt8>
        let end: Int
        var position = 0

        mutating func next() -> Range<Int>? {
            guard position < end else { return nil }
            var index = position
            while index < end && bytes[index] != 0x0A { index += 1 }
            let lineEnd = index > position && bytes[index - 1] == 0x0D ? index - 1 : index
            defer { position = index + 1 }
            return position..<lineEnd
        }
    }

    /// The request line's parts; `version` is the minor version of HTTP/1, or -1 for another major.
    /// Index arithmetic, no intermediate arrays: this runs for every request.
    static func parseRequestLine(_ line: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>) -> (method: String, path: String, query: Substring?, version: Int)? {
        guard let firstSpace = bytes[line].firstIndex(of: 0x20),
              let secondSpace = bytes[(firstSpace + 1)..<line.upperBound].firstIndex(of: 0x20)
        else { return nil }
        let methodRange = line.lowerBound..<firstSpace, targetRange = (firstSpace + 1)..<secondSpace
        let versionRange = (secondSpace + 1)..<line.upperBound
        guard !methodRange.isEmpty, bytes[methodRange].allSatisfy(isTokenByte), bytes[targetRange].first == UInt8(ascii: "/") else { return nil }
        // HTTP-version = "HTTP/" DIGIT "." DIGIT; the caller refuses majors other than 1.
        let v = versionRange.lowerBound
        guard versionRange.count == 8, bytes[v] == UInt8(ascii: "H"), bytes[v + 1] == UInt8(ascii: "T"), bytes[v + 2] == UInt8(ascii: "T"),
              bytes[v + 3] == UInt8(ascii: "P"), bytes[v + 4] == UInt8(ascii: "/"), bytes[v + 6] == UInt8(ascii: "."),
              let major = HTTPRequest.hexValue(bytes[v + 5]), major <= 9, let minor = HTTPRequest.hexValue(bytes[v + 7]), minor <= 9
        else { return nil }
        guard bytes[targetRange].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        let method = String(decoding: bytes[methodRange], as: UTF8.self)
        let version = major == 1 ? Int(minor) : -1
        if let mark = bytes[targetRange].firstIndex(of: UInt8(ascii: "?")) {
            let query = String(decoding: bytes[(mark + 1)..<secondSpace], as: UTF8.self)
            return (method, String(decoding: bytes[targetRange.lowerBound..<mark], as: UTF8.self), query[...], version)
        }
        return (method, String(decoding: bytes[targetRange], as: UTF8.self), nil, version)
    }

    static func parseField(_ line: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>) -> HTTPField? {
        let slice = bytes[line]
        // No whitespace before the colon (RFC 9112 §5.1), no obsolete line folding.
        guard let colon = slice.firstIndex(of: UInt8(ascii: ":")), colon > line.lowerBound,
              bytes[line.lowerBound..<colon].allSatisfy(isTokenByte)
        else { return nil }
        var valueStart = colon + 1, valueEnd = line.upperBound
        while valueStart < valueEnd && (bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09) { valueStart += 1 }
        while valueEnd > valueStart && (bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09) { valueEnd -= 1 }
        guard bytes[valueStart..<valueEnd].allSatisfy({ ($0 >= 0x20 || $0 == 0x09) && $0 != 0x7F }) else { return nil }
        // Lower-cased into the new string's own storage (token bytes are ASCII).
        let nameBytes = bytes[line.lowerBound..<colon]
        let name = String(unsafeUninitializedCapacity: nameBytes.count) { buffer in
            for (offset, byte) in nameBytes.enumerated() { buffer[offset] = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }
            return nameBytes.count
        }
        return HTTPField(name: name, value: String(decoding: bytes[valueStart..<valueEnd], as: UTF8.self))
    }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"),
             UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default: false
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var result = self
        while result.first == " " || result.first == "\t" { result.removeFirst() }
        while result.last == " " || result.last == "\t" { result.removeLast() }
        return result
    }
}
