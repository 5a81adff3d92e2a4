import HTTPServer

/// The Bot API stand-in on a port of its own, served by the project's `HTTPServer` rather than
/// Hummingbird: every reply the bot sends is a request here, and in `aisha bench bot` the
/// stand-in's HTTP layer cost a fifth of the machine, CPU the real Telegram does not take from
/// ours. Same answers as the routes on the main port (both call `SandboxTelegram.answer`/`file`).
struct SandboxTelegramFront: HTTPResponder {
    let telegram: SandboxTelegram

    /// Uploads (sendPhoto, sendDocument) are multipart bodies of up to 50 MB, as at Telegram.
    func bodyLimit(method: String, path: String) -> Int { 60 << 20 }

    func respond(to request: HTTPRequest, _ respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let path = request.path.utf8
        if request.method == "POST", path.starts(with: "/bot".utf8) {
            // /bot<token>/<method>: the token has no slash, the method neither.
            let rest = request.path.dropFirst(4).split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard rest.count == 2, !rest[1].contains("/") else { return respond(.text(404, "Not Found")) }
            let (token, method) = (String(rest[0]), String(rest[1]))
            let contentType = request.header("Content-Type") ?? "", query = request.queryParameters.map { ($0.name, $0.value) }, body = request.body
            let telegram = self.telegram
            Task { respond(await telegram.answer(token: token, method: method, contentType: contentType, query: query, body: body).httpResponse) }
        } else if request.method == "GET", path.starts(with: "/file/bot".utf8) {
            let rest = request.path.dropFirst(9).split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard rest.count == 2 else { return respond(.text(404, "Not Found")) }
            respond(telegram.file(token: String(rest[0]), path: String(rest[1])).httpResponse)
        } else {
            respond(.text(404, "Not Found"))
        }
    }
}

extension SandboxTelegram.Answer {
    var httpResponse: HTTPResponse { HTTPResponse(status: status, headers: [("Content-Type", contentType)], body: body) }
}
