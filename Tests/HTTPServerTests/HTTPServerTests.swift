import Curl
import Foundation
import Glibc
@testable import HTTPServer
import Logging
import Synchronization
import Testing

/// An application for the tests: `/echo` answers at once with what it received, `/slow` after
/// 300 ms from another thread, `/small` takes at most 16 bytes of body.
final class EchoResponder: HTTPResponder {
    let seen = Mutex<[String]>([])
    let refusals = Mutex<[Int]>([])
    /// `/held` answers only when the test calls `release()`.
    let held = Mutex<[@Sendable () -> Void]>([])

    func release() { for answer in held.withLock({ held in defer { held = [] }; return held }) { answer() } }

    func bodyLimit(method: String, path: String) -> Int { path == "/small" ? 16 : 1 << 20 }

    func respond(to request: HTTPRequest, _ respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let text = "\(request.method) \(request.path) \(request.body.count) \(request.queryParameter("q") ?? "-")"
        seen.withLock { $0.append(text) }
        if request.path == "/held" {
            held.withLock { $0.append { respond(.text(200, text)) } }
        } else if request.path == "/big" {
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { respond(HTTPResponse(status: 200, body: [UInt8](repeating: 0x61, count: 32 << 20))) }
        } else if request.path == "/slow" {
            // From a Dispatch thread, not a task: the full test run keeps the 2-thread
            // cooperative pool busy, and the answer's timing must not depend on it.
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { respond(.text(200, text)) }
        } else {
            respond(.text(200, text))
        }
    }

    func refused(status: Int, path: String?) { refusals.withLock { $0.append(status) } }
}

/// A raw TCP client, to send exactly the bytes a test needs (pipelining, partial heads).
final class RawClient {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard status == 0 else { throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Whether anything (data or the end) is waiting to be read.
    var hasData: Bool {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&ready, 1, 0) == 1
    }

    /// Sends what the socket takes (a closed peer is not a crash: no SIGPIPE).
    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Everything received until `done` says so, the peer closes, or 20 s pass. It polls and
    /// sleeps instead of blocking, so the cooperative threads stay free for other tests.
    func receive(until done: (String) -> Bool = { _ in false }) async -> (text: String, closed: Bool) {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let deadline = ContinuousClock.now + .seconds(20)
        while !done(String(decoding: received, as: UTF8.self)) {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&ready, 1, 0) == 1 {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
                received += buffer[0..<count]
            } else if ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(5))
            } else {
                break
            }
        }
        return (String(decoding: received, as: UTF8.self), false)
    }
}

extension String {
    func occurrences(of part: String) -> Int { components(separatedBy: part).count - 1 }
}

@Suite struct HTTPServerTests {
    func withServer<T>(idleTimeout: Duration = .seconds(75), requestTimeout: Duration = .seconds(30), _ body: (Int, EchoResponder, HTTPServer) async throws -> T) async throws -> T {
        let responder = EchoResponder()
        var logger = Logger(label: "test.http")
        logger.logLevel = .critical
        let server = HTTPServer(configuration: .init(host: "127.0.0.1", port: 0, threads: 2, idleTimeout: idleTimeout, requestTimeout: requestTimeout), responder: responder, logger: logger)
        let port = try server.start()
        do {
            let result = try await body(port, responder, server)
            await server.shutdown()
            return result
        } catch {
            await server.shutdown()
            throw error
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withServer { port, _, _ in
            let client = try RawClient(port: port)
            // The slow answer is ready 300 ms after the fast one: it must still go first.
            client.send("POST /slow?q=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /echo?q=2 HTTP/1.1\r\n\r\nPOST /echo?q=3 HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            let (text, closed) = await client.receive { $0.occurrences(of: "HTTP/1.1 200 OK") == 3 && $0.hasSuffix("- ") == false && $0.hasSuffix("3") }
            #expect(!closed)
            let bodies = text.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.components(separatedBy: "HTTP/1.1").first ?? "" }
            #expect(bodies == ["POST /slow 3 1", "GET /echo 0 2", "POST /echo 0 3"], "received: \(text.debugDescription)")
            #expect(text.contains("Content-Length: 14\r\n") && text.contains("Date: "))
        }
    }

    @Test func connectionCloseAndHTTP10AreHonoured() async throws {
        try await withServer { port, _, _ in
            let client = try RawClient(port: port)
            client.send("GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n")
            let first = await client.receive()
            #expect(first.closed && first.text.contains("Connection: close\r\n") && first.text.hasSuffix("GET /echo 0 -"))
            let old = try RawClient(port: port)
            old.send("GET /echo HTTP/1.0\r\n\r\n")
            #expect(await old.receive().closed)
            // A keep-alive connection serves many requests.
            let reused = try RawClient(port: port)
            for index in 0..<5 {
                reused.send("GET /echo?q=\(index) HTTP/1.1\r\n\r\n")
                #expect(await reused.receive { $0.hasSuffix("GET /echo 0 \(index)") }.closed == false)
            }
        }
    }

    @Test func tooLargeBodiesAreRefusedBeforeTheyAreRead() async throws {
        try await withServer { port, responder, _ in
            let client = try RawClient(port: port)
            client.send("POST /small HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 17\r\n\r\n")
            let refused = await client.receive()
            #expect(refused.text.hasPrefix("HTTP/1.1 413 ") && !refused.text.contains("100 Continue") && refused.closed)
            // Within the limit, the interim answer invites the body.
            let accepted = try RawClient(port: port)
            accepted.send("POST /small HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 16\r\n\r\n")
            #expect(await accepted.receive { $0.hasSuffix("\r\n\r\n") }.text == "HTTP/1.1 100 Continue\r\n\r\n")
            accepted.send("0123456789abcdef")
            #expect(await accepted.receive { $0.hasSuffix("POST /small 16 -") }.text.contains("HTTP/1.1 200 OK"))
            #expect(responder.seen.withLock { $0 } == ["POST /small 16 -"], "the refused request never reached the application")
            #expect(responder.refusals.withLock { $0 } == [413])
        }
    }

    @Test func aRefusalSurvivesTheBodyStillArriving() async throws {
        // curl (with `Expect:` off, as `CurlClient` sends it) writes the whole body at once.
        // Closing on a body still arriving resets the connection, and curl then reports a
        // send error instead of the 413 (the reliability suite saw 16 in 1,000 like that).
        try await withServer { port, _, _ in
            let http = CurlClient()
            // Larger than the loopback socket buffers, so curl is still writing when the answer comes.
            let body = Data(repeating: UInt8(ascii: "x"), count: 32 << 20)
            let statuses = await withTaskGroup(of: Int.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        let request = CurlRequest(.post, url: "http://127.0.0.1:\(port)/small", body: .bytes(body), timeout: .seconds(20))
                        return (try? await http.execute(request))?.status ?? 0
                    }
                }
                return await group.reduce(into: [Int: Int]()) { $0[$1, default: 0] += 1 }
            }
            #expect(statuses == [413: 12], "without the lingering close some of these fail (status 0)")
        }
    }

    @Test func aClientGoneBeforeALargeAnswerDoesNotKillTheServer() async throws {
        // Writing to a reset connection raises SIGPIPE unless the write says MSG_NOSIGNAL; the
        // default action would end the whole process (here: the test run).
        try await withServer { port, _, _ in
            for _ in 0..<3 {
                let client = try RawClient(port: port)
                client.send("GET /big HTTP/1.1\r\n\r\n")
                try await Task.sleep(for: .milliseconds(50))
            }  // each client is closed (deinit) with the answer still to come
            try await Task.sleep(for: .milliseconds(800))
            let after = try RawClient(port: port)
            after.send("GET /echo HTTP/1.1\r\n\r\n")
            #expect(await after.receive { $0.hasSuffix("GET /echo 0 -") }.text.hasPrefix("HTTP/1.1 200 OK"))
        }
    }

    @Test func aClientThatStopsReadingIsDisconnected() async throws {
        try await withServer(idleTimeout: .seconds(1)) { port, _, _ in
            let client = try RawClient(port: port)
            client.send("GET /big HTTP/1.1\r\n\r\n")  // a 32 MiB answer, more than the socket buffers hold, nobody reads
            let started = ContinuousClock.now
            try await Task.sleep(for: .seconds(4))
            var received = 0
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            // Reading now, a kept connection would deliver all 32 MiB in milliseconds.
            while ContinuousClock.now - started < .seconds(6) {
                let count = buffer.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if count > 0 { received += count } else if count == 0 || errno != EAGAIN { break } else { try await Task.sleep(for: .milliseconds(5)) }
            }
            #expect(received < 32 << 20, "the server gave up on the stalled answer (\(received) bytes arrived)")
        }
    }

    @Test func aClientThatSendsButNeverReadsIsHeldBack() async throws {
        // Pipelined requests from a client that reads nothing: the server must stop reading
        // (and answering) once its buffers are full, not buffer without bound.
        try await withServer { port, _, _ in
            let client = try RawClient(port: port)
            _ = fcntl(client.fd, F_SETFL, fcntl(client.fd, F_GETFL) | O_NONBLOCK)
            client.send("POST /slow HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            let chunk = Array(String(repeating: "GET /echo HTTP/1.1\r\n\r\n", count: 2_000).utf8)  // 44 KB
            var accepted = 0
            let deadline = ContinuousClock.now + .seconds(2)
            while ContinuousClock.now < deadline && accepted < 200 << 20 {
                let count = chunk.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if count > 0 { accepted += count } else { try await Task.sleep(for: .milliseconds(1)) }
            }
            // The server's 1 MiB plus what the kernels' socket buffers hold, far below 200 MB.
            #expect(accepted < 32 << 20, "accepted \(accepted) bytes")
        }
    }

    @Test func malformedHeadsGetAnErrorAndTheConnectionCloses() async throws {
        try await withServer { port, responder, _ in
            let client = try RawClient(port: port)
            client.send("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            let answer = await client.receive()
            #expect(answer.text.hasPrefix("HTTP/1.1 411 ") && answer.closed)
            let garbage = try RawClient(port: port)
            garbage.send("\u{16}\u{03}\u{01}\u{02}\u{00}\r\n\r\n")
            #expect(await garbage.receive().text.hasPrefix("HTTP/1.1 400 "))
            #expect(responder.seen.withLock { $0 }.isEmpty && responder.refusals.withLock { $0 } == [411, 400])
        }
    }

    @Test func aRequestThatTrickles() async throws {
        try await withServer(requestTimeout: .seconds(1)) { port, _, _ in
            let client = try RawClient(port: port)
            client.send("POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
            let started = ContinuousClock.now
            let answer = await client.receive()
            #expect(answer.text.hasPrefix("HTTP/1.1 408 ") && answer.closed)
            #expect(ContinuousClock.now - started < .seconds(10), "closed by the server's 1 s limit, not the client's 20 s patience")
        }
    }

    @Test func aRequestSentWithTheEndOfInputIsStillServed() async throws {
        try await withServer { port, responder, _ in
            let client = try RawClient(port: port)
            client.send("POST /slow HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
            shutdown(client.fd, Int32(SHUT_WR))
            let answer = await client.receive()
            #expect(answer.text.hasSuffix("POST /slow 2 -") && answer.text.contains("Connection: close") && answer.closed)
            #expect(responder.seen.withLock { $0 } == ["POST /slow 2 -"])
        }
    }

    @Test func shutdownFinishesRequestsInFlightAndStopsAccepting() async throws {
        let responder = EchoResponder()
        var logger = Logger(label: "test.http")
        logger.logLevel = .critical
        let server = HTTPServer(configuration: .init(host: "127.0.0.1", port: 0), responder: responder, logger: logger)
        let port = try server.start()
        let busy = try RawClient(port: port), idle = try RawClient(port: port), late = try RawClient(port: port)
        for client in [idle, late] {
            client.send("GET /echo HTTP/1.1\r\n\r\n")
            _ = await client.receive { $0.hasSuffix("GET /echo 0 -") }
        }
        busy.send("POST /held HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        while responder.held.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(5)) }
        // Sent but, most likely, not yet read by the server when the shutdown begins.
        late.send("GET /echo?q=late HTTP/1.1\r\n\r\n")
        let stopping = Task { await server.shutdown(grace: .seconds(30)) }
        let lateAnswer = await late.receive { $0.hasSuffix("GET /echo 0 late") }
        // Read before or after the drain began, either way it is answered.
        #expect(lateAnswer.text.hasPrefix("HTTP/1.1 200 OK") && lateAnswer.text.hasSuffix("GET /echo 0 late"), "a request already sent is answered")
        #expect(await idle.receive().closed, "an idle keep-alive connection is closed")
        try await Task.sleep(for: .milliseconds(200))
        #expect(!busy.hasData, "the held request is still unanswered, and its connection open")
        responder.release()
        await stopping.value
        let answer = await busy.receive()
        #expect(answer.text.hasPrefix("HTTP/1.1 200 OK") && answer.text.contains("Connection: close") && answer.closed, "\(answer.text.debugDescription), closed: \(answer.closed)")
        #expect(throws: (any Error).self, "no longer listening") { try RawClient(port: port) }
    }
}
