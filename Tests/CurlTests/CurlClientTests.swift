import Curl
import Foundation
import Signing
import Testing

@Suite struct CurlClientTests {
    let client = CurlClient()

    func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("curl-\(UUID().uuidString)-\(name)").path
    }

    @Test func getReadsStatusHeadersAndBody() async throws {
        try await LoopbackServer.withServer { base in
            let response = try await client.get(base + "/hello")
            #expect(response.status == 200 && response.isSuccess)
            #expect(String(decoding: response.body, as: UTF8.self) == "hello")
            #expect(response.header("x-server") == "loopback")
            #expect(response.header("Content-Type") == "text/plain")
        }
    }

    @Test func jsonRequestHeadersAndEveryMethod() async throws {
        try await LoopbackServer.withServer { base in
            struct Ping: Codable { var text: String }
            let request = try CurlRequest.json(url: base + "/echo", value: Ping(text: "привет"), headers: [("X-Token", "t-1")])
            let echo = try await client.execute(request).decode([String: String].self)
            #expect(echo["method"] == "POST" && echo["x-token"] == "t-1" && echo["content-type"] == "application/json")
            #expect(echo["sha256"] == SHA256.hexDigest(Array(#"{"text":"привет"}"#.utf8)))
            #expect(echo["expect"] == "", "no 100-continue handshake")
            for method in [CurlRequest.Method.get, .put, .delete, .patch] {
                let body: CurlRequest.Body = method == .get || method == .delete ? .empty : .bytes(Data("abc".utf8))
                let reply = try await client.execute(CurlRequest(method, url: base + "/echo", headers: [("Content-Type", "text/plain")], body: body))
                let decoded = try reply.decode([String: String].self)
                #expect(decoded["method"] == method.rawValue)
                #expect(decoded["length"] == (body.isEmpty ? "0" : "3"), "\(method)")
            }
            let head = try await client.execute(CurlRequest(.head, url: base + "/echo"))
            #expect(head.status == 200 && head.body.isEmpty && head.header("x-head") == "yes")
        }
    }

    @Test func statusCodesAreResponsesNotErrors() async throws {
        try await LoopbackServer.withServer { base in
            for code in [400, 404, 429, 503] {
                let response = try await client.get(base + "/status/\(code)")
                #expect(response.status == code && !response.isSuccess)
                #expect(String(decoding: response.body, as: UTF8.self) == "{\"error\":\(code)}")
            }
        }
    }

    @Test func multipartSendsFieldsBytesAndFiles() async throws {
        try await LoopbackServer.withServer { base in
            let path = temporaryPath("photo.jpg")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let fileBytes = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 13) })
            try fileBytes.write(to: URL(fileURLWithPath: path))
            var form = MultipartForm()
            form.append(name: "chat_id", value: "12345")
            form.append(name: "caption", value: "Готово ✓")
            form.append(name: "thumb", data: Data([1, 2, 3]), filename: "t.bin", contentType: "application/octet-stream")
            form.append(name: "photo", filePath: path, filename: "photo.jpg", contentType: "image/jpeg")
            let response = try await client.execute(CurlRequest(.post, url: base + "/raw", body: .multipart(form)))
            let contentType = try #require(response.header("x-request-content-type"))
            #expect(contentType.hasPrefix("multipart/form-data; boundary="))
            let boundary = "--" + contentType.components(separatedBy: "boundary=")[1]
            let parts = try MultipartParser.parse(response.body, boundary: boundary)
            #expect(parts.map(\.name) == ["chat_id", "caption", "thumb", "photo"])
            #expect(parts[0].body == Data("12345".utf8))
            #expect(parts[1].body == Data("Готово ✓".utf8))
            #expect(parts[2].filename == "t.bin" && parts[2].body == Data([1, 2, 3]))
            #expect(parts[3].filename == "photo.jpg" && parts[3].contentType == "image/jpeg" && parts[3].body == fileBytes)
        }
    }

    @Test func responseStreamsToAFileAndRequestFromAFile() async throws {
        try await LoopbackServer.withServer { base in
            let download = temporaryPath("download.bin")
            let upload = temporaryPath("upload.bin")
            defer { for path in [download, upload] { try? FileManager.default.removeItem(atPath: path) } }
            let size = 8 << 20
            let response = try await client.execute(CurlRequest(.get, url: base + "/bytes?n=\(size)", destination: .file(path: download)))
            #expect(response.status == 200 && response.body.isEmpty)
            let written = try Data(contentsOf: URL(fileURLWithPath: download))
            #expect(written.count == size)
            #expect(SHA256.hexDigest(written) == SHA256.hexDigest(LoopbackServer.pattern(offset: 0, count: size)))

            try written.write(to: URL(fileURLWithPath: upload))
            let echo = try await client.execute(CurlRequest(.put, url: base + "/echo", headers: [("Content-Type", "application/octet-stream")], body: .file(path: upload)))
                .decode([String: String].self)
            #expect(echo["length"] == String(size) && echo["sha256"] == SHA256.hexDigest(written))
            let posted = try await client.execute(CurlRequest(.post, url: base + "/echo", headers: [("Content-Type", "application/octet-stream")], body: .file(path: upload)))
                .decode([String: String].self)
            #expect(posted["method"] == "POST" && posted["length"] == String(size))
        }
    }

    @Test func deadlineFires() async throws {
        try await LoopbackServer.withServer { base in
            let started = ContinuousClock.now
            await #expect {
                _ = try await client.execute(CurlRequest(.get, url: base + "/slow?ms=30000", timeout: .milliseconds(300)))
            } throws: { ($0 as? CurlError)?.code == .timedOut }
            #expect(ContinuousClock.now - started < .seconds(15), "well before the server would have answered (30 s)")
        }
    }

    @Test func refusedConnectionIsATransportError() async throws {
        // Bind a port, then close it: nothing listens there.
        let port = try LoopbackPort.unused()
        do {
            _ = try await client.get("http://127.0.0.1:\(port)/hello")
            Issue.record("connected to a closed port")
        } catch let error as CurlError {
            #expect(error.code == .couldNotConnect && error.isTransient)
            #expect(!"\(error)".contains("/hello"), "errors never print the URL path (Telegram's holds the token)")
        }
        await #expect { _ = try await client.get("not a url") } throws: { $0 is CurlError }
    }

    @Test func connectionsAreReused() async throws {
        try await LoopbackServer.withServer { base in
            // Other suites share the engine's connection cache, so one eviction is possible;
            // without reuse, every one of these would open a connection.
            var reused = 0
            for _ in 0..<6 where try await client.get(base + "/hello").reusedConnection { reused += 1 }
            #expect(reused >= 4, "\(reused) of 6 sequential requests reused a connection")
        }
    }

    @Test func manyRequestsRunAtOnce() async throws {
        try await LoopbackServer.withServer { base in
            let started = ContinuousClock.now
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<50 { group.addTask { try await client.get(base + "/slow?ms=1000").status } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.count == 50 && statuses.allSatisfy { $0 == 200 })
            // One after another this is 50 s; concurrently about 1 s. The margin is wide because a
            // CI machine once stalled this test for 10 s.
            #expect(ContinuousClock.now - started < .seconds(25), "one after another this takes 50 s")
        }
    }

    @Test func oversizedResponseInMemoryFails() async throws {
        try await LoopbackServer.withServer { base in
            _ = await #expect {
                _ = try await client.execute(CurlRequest(.get, url: base + "/bytes?n=100000", destination: .memory(limit: 10_000)))
            } throws: { ($0 as? CurlError)?.code == .responseTooLarge }
        }
    }

    @Test func cancellationAbortsTheTransferAndRemovesPartialFiles() async throws {
        try await LoopbackServer.withServer { base in
            let path = temporaryPath("partial.bin")
            let task = Task {
                try await client.execute(CurlRequest(.get, url: base + "/slow?ms=60000", destination: .file(path: path)))
            }
            try await Task.sleep(for: .milliseconds(200))
            let started = ContinuousClock.now
            task.cancel()
            await #expect(throws: CancellationError.self) { _ = try await task.value }
            // Generous: a loaded machine may be slow to resume us, but an unanswered cancel would take 60 s.
            #expect(ContinuousClock.now - started < .seconds(20), "the 60 s answer was not awaited")
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }

    @Test func missingBodyFileFailsBeforeSending() async throws {
        await #expect {
            _ = try await client.execute(CurlRequest(.put, url: "http://127.0.0.1:9/x", body: .file(path: "/nonexistent/file")))
        } throws: { ($0 as? CurlError)?.code == .fileIO }
    }
}

extension CurlRequest.Body {
    var isEmpty: Bool { if case .empty = self { true } else { false } }
}

enum LoopbackPort {
    /// A port that was free a moment ago and is closed now.
    static func unused() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Just enough multipart/form-data parsing to check what curl sent.
enum MultipartParser {
    struct Part { var name: String; var filename: String?; var contentType: String?; var body: Data }

    static func parse(_ body: Data, boundary: String) throws -> [Part] {
        let delimiter = Data(("\r\n" + boundary).utf8)
        var data = Data("\r\n".utf8) + body
        var parts: [Part] = []
        while let range = data.range(of: delimiter) {
            let chunk = data[data.startIndex..<range.lowerBound]
            data = data[range.upperBound...]
            guard let split = chunk.range(of: Data("\r\n\r\n".utf8)) else { continue }
            let head = String(decoding: chunk[chunk.startIndex..<split.lowerBound], as: UTF8.self)
            let content = Data(chunk[split.upperBound...])
            func attribute(_ key: String) -> String? {
                guard let r = head.range(of: key + "=\"") else { return nil }
                return String(head[r.upperBound...].prefix { $0 != "\"" })
            }
            let type = head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("content-type:") }
                .map { $0.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces) }
            parts.append(Part(name: attribute("name") ?? "", filename: attribute("filename"), contentType: type, body: content))
        }
        return parts
    }
}
