internal import CCurl
import Foundation
import Synchronization

/// One request in flight: its easy handle and everything libcurl's callbacks touch.
///
/// `@unchecked Sendable`: created on the caller's task, then touched only by the engine thread
/// (setup, callbacks, completion), except `cancelled`, which is atomic.
final class Transfer: @unchecked Sendable {
    let request: CurlRequest
    var continuation: CheckedContinuation<CurlResponse, any Error>?
    private let cancelled = Atomic<Bool>(false)

    // Engine-thread state.
    var handle: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var mime: OpaquePointer?
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    private var requestBody = Data()
    private var requestBodyOffset = 0
    private var requestFile: Int32 = -1
    private var responseFile: Int32 = -1
    private var responseBody = Data()
    private var responseHeaders: [(name: String, value: String)] = []
    private var tooLarge = false
    private var fileFailed = false

    init(request: CurlRequest) { self.request = request }

    func markCancelled() { cancelled.store(true, ordering: .releasing) }
    var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    deinit { cleanUp() }

    /// Builds the easy handle. Throws for a body file that cannot be opened or a rejected option.
    func prepare() throws -> UnsafeMutableRawPointer {
        guard let handle = curl_easy_init() else { throw CurlError(code: .other, curlCode: -1, message: "curl_easy_init failed") }
        self.handle = handle
        let context = Unmanaged.passUnretained(self).toOpaque()
        var status = CURLE_OK
        func set(_ result: CURLcode) { if status == CURLE_OK { status = result } }

        set(ccurl_setopt_string(handle, CURLOPT_URL, request.url))
        set(ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        set(ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Transfer.milliseconds(request.timeout)))
        set(ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Transfer.milliseconds(request.connectTimeout)))
        set(ccurl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1))
        set(ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, &errorBuffer))
        set(ccurl_setopt_write_function(handle, Transfer.onWrite))
        set(ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, context))
        set(ccurl_setopt_header_function(handle, Transfer.onHeader))
        set(ccurl_setopt_pointer(handle, CURLOPT_HEADERDATA, context))

        // "Expect:" stops curl's 100-continue pause before large bodies (up to a second per request).
        for header in request.headers + [("Expect", "")] {
            headerList = curl_slist_append(headerList, header.value.isEmpty ? "\(header.name):" : "\(header.name): \(header.value)")
        }
        set(ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList))

        var bodySize = -1
        switch request.body {
        case .empty:
            break
        case .bytes(let data):
            requestBody = data
            bodySize = data.count
        case .file(let path):
            requestFile = open(path, O_RDONLY | O_CLOEXEC)
            guard requestFile >= 0 else { throw CurlError(code: .fileIO, curlCode: -1, message: "cannot open request body file (errno \(errno))") }
            var info = stat()
            fstat(requestFile, &info)
            bodySize = Int(info.st_size)
        case .multipart(let form):
            mime = try buildMime(form, handle: handle)
            set(ccurl_setopt_mime(handle, mime))
        }
        // A body in memory sent by POST (or another method with a body, not PUT) is handed to curl
        // as its own copy (COPYPOSTFIELDS): curl then writes it with the request's head in one
        // send. Read through the callback, it cost a 64 KB upload buffer per transfer (malloc's
        // slow path, a fifth of the worker's malloc time) and a second send.
        let copiesBody = request.method != .put && !requestBody.isEmpty
        if bodySize >= 0 && !copiesBody {
            set(ccurl_setopt_read_function(handle, Transfer.onRead))
            set(ccurl_setopt_pointer(handle, CURLOPT_READDATA, context))
        }

        switch (request.method, bodySize >= 0) {
        case (.get, _):
            set(ccurl_setopt_long(handle, CURLOPT_HTTPGET, 1))
        case (.head, _):
            set(ccurl_setopt_long(handle, CURLOPT_NOBODY, 1))
        case (.put, _):
            set(ccurl_setopt_long(handle, CURLOPT_UPLOAD, 1))
            set(ccurl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, max(0, bodySize)))
            if bodySize < 0 { set(ccurl_setopt_read_function(handle, Transfer.onRead)); set(ccurl_setopt_pointer(handle, CURLOPT_READDATA, context)) }
        case (_, true):
            set(ccurl_setopt_long(handle, CURLOPT_POST, 1))
            set(ccurl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, bodySize))
            if copiesBody {
                // Copied during the call, so the pointer need not outlive it; the size set above
                // lets curl copy binary data (no strlen).
                requestBody.withUnsafeBytes { set(ccurl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress))) }
            }
        case (.post, false):
            if mime == nil {
                set(ccurl_setopt_long(handle, CURLOPT_POST, 1))
                set(ccurl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, 0))
                set(ccurl_setopt_read_function(handle, Transfer.onRead))
                set(ccurl_setopt_pointer(handle, CURLOPT_READDATA, context))
            }
        case (_, false):
            break
        }
        if ![.get, .head, .post, .put].contains(request.method) {
            set(ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method.rawValue))
        }

        if case .file(let path) = request.destination {
            responseFile = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard responseFile >= 0 else { throw CurlError(code: .fileIO, curlCode: -1, message: "cannot create response file (errno \(errno))") }
        }
        guard status == CURLE_OK else { throw failure(status) }
        return handle
    }

    /// The response once libcurl reports the transfer done.
    func finish(_ result: CURLcode) -> Result<CurlResponse, any Error> {
        guard result == CURLE_OK, let handle else {
            discardResponseFile()
            return .failure(failure(result))
        }
        var status = 0
        var connects = 0
        var seconds = 0.0
        _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        _ = ccurl_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connects)
        _ = ccurl_getinfo_double(handle, CURLINFO_TOTAL_TIME, &seconds)
        if responseFile >= 0 {
            let synced = fsync(responseFile) == 0
            close(responseFile)
            responseFile = -1
            guard synced else { return .failure(CurlError(code: .fileIO, curlCode: -1, message: "cannot flush response file")) }
        }
        return .success(CurlResponse(
            status: status, headers: responseHeaders, body: responseBody, reusedConnection: connects == 0,
            duration: .microseconds(Int64(seconds * 1_000_000))
        ))
    }

    func discardResponseFile() {
        guard case .file(let path) = request.destination, responseFile >= 0 else { return }
        close(responseFile)
        responseFile = -1
        unlink(path)
    }

    func cleanUp() {
        if let handle { curl_easy_cleanup(handle); self.handle = nil }
        if let mime { curl_mime_free(mime); self.mime = nil }
        if let headerList { curl_slist_free_all(headerList); self.headerList = nil }
        if requestFile >= 0 { close(requestFile); requestFile = -1 }
        if responseFile >= 0 { close(responseFile); responseFile = -1 }
    }

    private func failure(_ code: CURLcode) -> CurlError {
        let text = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let message = text.isEmpty ? String(cString: curl_easy_strerror(code)) : text
        let kind: CurlError.Code
        switch code {
        case CURLE_OPERATION_TIMEDOUT: kind = .timedOut
        case CURLE_COULDNT_CONNECT: kind = .couldNotConnect
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .couldNotResolveHost
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE: kind = .connectionLost
        case CURLE_WRITE_ERROR where tooLarge: kind = .responseTooLarge
        case CURLE_WRITE_ERROR, CURLE_READ_ERROR, CURLE_ABORTED_BY_CALLBACK: kind = fileFailed || requestFile >= 0 || responseFile >= 0 ? .fileIO : .other
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_FUNCTION_ARGUMENT: kind = .invalidRequest
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM: kind = .tls
        default: kind = .other
        }
        return CurlError(code: kind, curlCode: Int(code.rawValue), message: message)
    }

    private func buildMime(_ form: MultipartForm, handle: UnsafeMutableRawPointer) throws -> OpaquePointer {
        guard let mime = curl_mime_init(handle) else { throw CurlError(code: .other, curlCode: -1, message: "curl_mime_init failed") }
        for part in form.parts {
            let item = curl_mime_addpart(mime)
            curl_mime_name(item, part.name)
            switch part.content {
            case .text(let text):
                curl_mime_data(item, text, Int(CURL_ZERO_TERMINATED))
            case .data(let data):
                data.withUnsafeBytes { _ = curl_mime_data(item, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
            case .file(let path):
                guard curl_mime_filedata(item, path) == CURLE_OK, access(path, R_OK) == 0 else {
                    curl_mime_free(mime)
                    throw CurlError(code: .fileIO, curlCode: -1, message: "cannot read multipart file part '\(part.name)'")
                }
            }
            if let filename = part.filename { curl_mime_filename(item, filename) }
            if let type = part.contentType { curl_mime_type(item, type) }
        }
        return mime
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }

    // MARK: C callbacks (engine thread)

    private static let onWrite: ccurl_data_callback = { pointer, size, count, context in
        let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
        let length = size * count
        guard let pointer, length > 0 else { return 0 }
        if transfer.responseFile >= 0 {
            var written = 0
            while written < length {
                let n = write(transfer.responseFile, pointer + written, length - written)
                if n < 0 { if errno == EINTR { continue }; transfer.fileFailed = true; return 0 }
                written += n
            }
            return length
        }
        if case .memory(let limit) = transfer.request.destination, transfer.responseBody.count + length > limit {
            transfer.tooLarge = true
            return 0
        }
        transfer.responseBody.append(UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: length)
        return length
    }

    private static let onRead: ccurl_data_callback = { pointer, size, count, context in
        let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
        let capacity = size * count
        guard let pointer else { return 0 }
        if transfer.requestFile >= 0 {
            while true {
                let n = read(transfer.requestFile, pointer, capacity)
                if n < 0, errno == EINTR { continue }
                if n < 0 { transfer.fileFailed = true; return Int(CURL_READFUNC_ABORT) }
                return n
            }
        }
        let remaining = transfer.requestBody.count - transfer.requestBodyOffset
        let n = min(capacity, remaining)
        if n > 0 {
            let start = transfer.requestBody.startIndex + transfer.requestBodyOffset
            transfer.requestBody.copyBytes(to: UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: UInt8.self), from: start..<start + n)
            transfer.requestBodyOffset += n
        }
        return n
    }

    private static let onHeader: ccurl_data_callback = { pointer, size, count, context in
        let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
        let length = size * count
        guard let pointer else { return 0 }
        // Bytes, not Foundation's trimming: this runs for every header line of every response
        // (it was 3 % of the worker's CPU at 1,000 replies/s).
        let line = UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: length)
        if line.starts(with: "HTTP/".utf8) {
            transfer.responseHeaders = []  // a new response (after 100 Continue or a redirect)
        } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
            var start = colon + 1, end = length
            while start < end, isSpace(line[start]) { start += 1 }
            while end > start, isSpace(line[end - 1]) { end -= 1 }
            transfer.responseHeaders.append((String(decoding: line[..<colon], as: UTF8.self), String(decoding: line[start..<end], as: UTF8.self)))
        }
        return length
    }
}
