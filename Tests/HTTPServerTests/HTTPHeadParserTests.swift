@testable import HTTPServer
import Testing

@Suite struct HTTPHeadParserTests {
    func parse(_ text: String, maxLength: Int = 16 << 10) -> HTTPHeadParser.Outcome {
        Array(text.utf8).withUnsafeBufferPointer { HTTPHeadParser.parse($0, maxLength: maxLength) }
    }

    func head(_ text: String) throws -> HTTPHeadParser.Head {
        guard case .head(let head) = parse(text) else { throw Failure("not a head: \(parse(text))") }
        return head
    }

    struct Failure: Error { let text: String; init(_ text: String) { self.text = text } }

    @Test func aWebhookHeadIsParsed() throws {
        let text = "POST /fal/webhook?ref=a%2Fb+c&x HTTP/1.1\r\nHost: example.org\r\nX-Telegram-Bot-Api-Secret-Token:  s3cret \r\nContent-Length: 12\r\n\r\n{\"update_id\""
        let head = try head(text)
        #expect(head.method == "POST" && head.path == "/fal/webhook" && head.query == "ref=a%2Fb+c&x")
        #expect(head.contentLength == 12 && head.keepAlive && !head.expectsContinue)
        #expect(head.length == text.utf8.count - 12, "the head ends after its blank line")
        #expect(head.headers.map(\.name) == ["host", "x-telegram-bot-api-secret-token", "content-length"], "names are lowercased")
        #expect(head.headers[1].value == "s3cret", "surrounding whitespace is not part of a value")
        let request = HTTPRequest(method: head.method, path: head.path, query: head.query, headers: head.headers)
        #expect(request.queryParameter("ref") == "a/b c" && request.queryParameter("x") == "" && request.queryParameter("y") == nil)
        #expect(request.header("X-TELEGRAM-BOT-API-SECRET-TOKEN") == "s3cret")
    }

    @Test func aHeadArrivesInPieces() throws {
        let text = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
        for cut in 0..<text.utf8.count {
            #expect(parse(String(decoding: Array(text.utf8)[0..<cut], as: UTF8.self)) == .incomplete, "cut at \(cut)")
        }
        #expect(try head(text).length == text.utf8.count)
        #expect(try head("GET /healthz HTTP/1.1\nHost: a\n\n").path == "/healthz", "bare LF line ends are accepted")
        #expect(try head("\r\nGET /healthz HTTP/1.1\r\n\r\n").path == "/healthz", "a stray CRLF before the request line is ignored")
    }

    @Test func connectionPersistenceFollowsTheVersionAndTheHeader() throws {
        #expect(try head("GET / HTTP/1.1\r\n\r\n").keepAlive)
        #expect(try !head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keepAlive)
        #expect(try !head("GET / HTTP/1.0\r\n\r\n").keepAlive)
        #expect(try head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive)
        #expect(try head("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").expectsContinue)
        #expect(try !head("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").expectsContinue, "HTTP/1.0 clients get no interim answer")
    }

    @Test func badHeadsAreRefusedWithTheRightStatus() {
        func status(_ text: String, maxLength: Int = 16 << 10) -> Int? {
            if case .refuse(let status, _) = parse(text, maxLength: maxLength) { return status }
            return nil
        }
        #expect(status("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n") == 400)
        #expect(status("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n") == nil, "a repeated equal length is allowed")
        #expect(status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n") == 400)
        #expect(status("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n") == 400)
        #expect(status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n") == 400)
        #expect(status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == 411)
        #expect(status("POST / HTTP/1.1\r\nExpect: something\r\n\r\n") == 417)
        #expect(status("GET / HTTP/2.0\r\n\r\n") == 505)
        #expect(status("GET / HTTP/1.1 extra\r\n\r\n") == 400)
        #expect(status("GET  / HTTP/1.1\r\n\r\n") == 400)
        #expect(status("GET * HTTP/1.1\r\n\r\n") == 400, "only origin-form targets")
        #expect(status("GET /a b HTTP/1.1\r\n\r\n") == 400, "a space inside the target")
        #expect(status("GET /\r\n\r\n") == 400, "no version")
        #expect(status("G@T / HTTP/1.1\r\n\r\n") == 400, "a method that is not a token")
        #expect(status("GET / HTTP/1.1\r\nX: a\u{7F}\r\n\r\n") == 400, "DEL in a value")
        #expect(status("GET /a\u{7F}b HTTP/1.1\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == 400, "whitespace before the colon")
        #expect(status("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n") == 400, "obsolete line folding")
        #expect(status("GET / HTTP/1.1\r\n: a\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n") == 400, "control characters in a value")
        let big = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200) + "\r\n\r\n"
        #expect(status(big, maxLength: 100) == 431)
        #expect(status(String(big.dropLast(4)), maxLength: 100) == 431, "refused before the head is complete")
    }
}
