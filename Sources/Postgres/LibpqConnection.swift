internal import CLibpq
import Foundation
import Synchronization

/// The single owner of one `PGconn` (and its `PGcancel`), finished in deinit.
///
/// `@unchecked Sendable`: libpq allows one thread at a time per connection. The pool hands a
/// connection to exactly one lease holder, whose calls run one after another on the pool's
/// blocking threads; only `cancel()`, which libpq documents as thread-safe, may run concurrently.
final class LibpqConnection: @unchecked Sendable {
    private let pointer: OpaquePointer
    private let cancelHandle: OpaquePointer?
    /// Cancellation of the current call, shared between its thread and the canceller.
    private let activity = Mutex(Activity())
    /// Statements prepared on this connection: SQL text → name. Touched only by the lease holder.
    private var prepared: [String: String] = [:]
    private var preparedSerial = 0  // names are never reused, even after one is forgotten
    /// Statements that go out with the next one, in the same round trip (libpq pipeline mode):
    /// a transaction's BEGIN, and writes whose results nobody reads. Lease holder only.
    private var pending: [PostgresQuery] = []
    /// Past this many, further statements run unnamed (parsed every time) instead of growing the
    /// server's per-connection memory without bound.
    static let preparedLimit = 256

    private struct Activity {
        var generation: UInt64 = 0
        var running = false
        var cancelRequested = false
    }

    private init(pointer: OpaquePointer) {
        self.pointer = pointer
        self.cancelHandle = PQgetCancel(pointer)
        // libpq prints NOTICEs to stderr by default ("relation … already exists, skipping").
        PQsetNoticeProcessor(pointer, { _, _ in }, nil)
    }

    deinit {
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        PQfinish(pointer)
    }

    /// TCP settings for every connection, so that a database that vanishes without closing the
    /// connection (a dead host, a dropped network path) fails the calls waiting on it instead of
    /// blocking them for the kernel's defaults (15 minutes of retransmissions, 2 hours before the
    /// first keepalive): data unacknowledged for 15 s, or an idle wait whose peer answers no probe
    /// for 15 + 3 × 5 s, ends the connection. A long statement is not affected: a live peer's
    /// kernel answers the probes while it runs. The URL may override each (`?tcp_user_timeout=…`).
    static let tcpDefaults: [(String, String)] = [
        ("keepalives", "1"), ("keepalives_idle", "15"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
        ("tcp_user_timeout", "15000"),
    ]

    /// Opens a connection (blocking). Settings after `dbname` override the URL; those before it are defaults.
    static func connect(_ configuration: PostgresClient.Configuration) throws -> LibpqConnection {
        let defaults: [(String, String)] = [
            ("connect_timeout", String(max(1, Int(configuration.connectTimeout.components.seconds)))),
            ("application_name", configuration.applicationName),
        ] + tcpDefaults
        let pairs = defaults + [("dbname", configuration.connectionString)]
        let keywords = pairs.map { strdup($0.0) } + [nil]
        let values = pairs.map { strdup($0.1) } + [nil]
        defer { (keywords + values).forEach { free($0) } }
        let raw = keywords.map { UnsafePointer($0) }.withUnsafeBufferPointer { k in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { v in
                PQconnectdbParams(k.baseAddress, v.baseAddress, 1)
            }
        }
        guard let raw else { throw PostgresError(.connectionFailed, serverMessage: "out of memory") }
        guard PQstatus(raw) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(raw)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(raw)
            throw PostgresError(.connectionFailed, serverMessage: message)
        }
        let connection = LibpqConnection(pointer: raw)
        // Fixed session settings make text decoding predictable (ISO timestamps in UTC).
        var setup = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET bytea_output = 'hex';"
        if let timeout = configuration.statementTimeout {
            let ms = timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
            setup += " SET statement_timeout = \(ms);"
        }
        try connection.executeScript(setup)
        return connection
    }

    /// Whether the connection can serve another lease: open, idle, and not closed by the server
    /// while it sat in the pool. Non-blocking: a zero-timeout poll and `PQconsumeInput`.
    func isReusable() -> Bool {
        guard pending.isEmpty, PQstatus(pointer) == CONNECTION_OK, PQtransactionStatus(pointer) == PQTRANS_IDLE else { return false }
        for _ in 0..<4 {
            var descriptor = pollfd(fd: PQsocket(pointer), events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { return true }
            // Something arrived while idle: EOF or a FATAL notice (server shutting down). Read it.
            if PQconsumeInput(pointer) == 0 || PQstatus(pointer) != CONNECTION_OK { return false }
            while let notification = PQnotifies(pointer) { PQfreemem(notification) }
        }
        return PQstatus(pointer) == CONNECTION_OK
    }

    /// Starts a caller's call: forgets any cancellation meant for an earlier one.
    func beginCall() {
        activity.withLock { $0.cancelRequested = false }
    }

    /// Cancels the current call from any thread. A statement that has not started is never sent;
    /// one that is running gets `PQcancel` now and again every 100 ms while it still runs, because
    /// a cancel request that reaches the server before the statement does is ignored.
    func cancel() {
        let (running, generation) = activity.withLock { state in
            state.cancelRequested = true
            return (state.running, state.generation)
        }
        guard running else { return }
        sendCancelRequest()
        for attempt in 1...50 {
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100 * attempt)) { [weak self] in
                guard let self, self.activity.withLock({ $0.running && $0.generation == generation }) else { return }
                self.sendCancelRequest()
            }
        }
    }

    private func sendCancelRequest() {
        guard let cancelHandle else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancelHandle, &buffer, Int32(buffer.count))
    }

    /// Marks a statement as running unless its call was cancelled; ends with `finishStatement`.
    private func startStatement() throws {
        let cancelled = activity.withLock { state -> Bool in
            guard !state.cancelRequested else { return true }
            state.generation &+= 1
            state.running = true
            return false
        }
        if cancelled { throw CancellationError() }
    }

    private func finishStatement() {
        activity.withLock { $0.running = false }
    }

    /// Queues `query` to go out with the next statement (see `pending`).
    func sendWithNext(_ query: PostgresQuery) { pending.append(query) }

    /// Forgets the queued statements (their transaction is being abandoned); returns them.
    func discardPending() -> [PostgresQuery] {
        defer { pending = [] }
        return pending
    }

    /// Inside a transaction, or about to start one with the next statement.
    var isInTransaction: Bool { !pending.isEmpty || PQtransactionStatus(pointer) != PQTRANS_IDLE }

    /// Runs one parameterized statement (blocking) and returns its rows, sending any queued
    /// statements first in the same round trip.
    func execute(_ query: PostgresQuery) throws -> PostgresResultStorage {
        try startStatement()
        defer { finishStatement() }
        guard pending.isEmpty else {
            let batch = pending + [query]
            pending = []
            return try pipeline(batch).last!
        }
        // Each statement is parsed and analysed once per connection, then only bound and planned:
        // parsing was a tenth of PostgreSQL's CPU per bot reply.
        let name = try preparedName(for: query.sql, parameterCount: query.binds.count)
        let result = Parameters(query.binds).withPointers { count, values, lengths, formats in
            if let name {
                PQexecPrepared(pointer, name, count, values, lengths, formats, 0)
            } else {
                PQexecParams(pointer, query.sql, count, nil, values, lengths, formats, 0)
            }
        }
        guard let result else { throw PostgresError(.connectionLost, serverMessage: String(cString: PQerrorMessage(pointer))) }
        return try checked(PostgresResultStorage(result), query: query, name: name)
    }

    /// Runs several statements in one round trip (after any queued ones) and returns their rows.
    func execute(all queries: [PostgresQuery]) throws -> [PostgresResultStorage] {
        guard queries.count > 1 || !pending.isEmpty else { return try queries.map { try execute($0) } }
        try startStatement()
        defer { finishStatement() }
        let batch = pending + queries
        pending = []
        return Array(try pipeline(batch).suffix(queries.count))
    }

    /// Sends `queries` in one round trip (pipeline mode) and returns their results in order. The
    /// first failure is thrown, after every result has been read; the statements after it were
    /// not run (PostgreSQL skips the rest of a pipeline after an error).
    private func pipeline(_ queries: [PostgresQuery]) throws -> [PostgresResultStorage] {
        let names = try queries.map { try preparedName(for: $0.sql, parameterCount: $0.binds.count) }
        guard PQenterPipelineMode(pointer) == 1 else { throw PostgresError(.connectionLost, serverMessage: String(cString: PQerrorMessage(pointer))) }
        var results: [PostgresResultStorage] = []
        var lost = false
        for (query, name) in zip(queries, names) {
            let sent = Parameters(query.binds).withPointers { count, values, lengths, formats in
                if let name {
                    PQsendQueryPrepared(pointer, name, count, values, lengths, formats, 0)
                } else {
                    PQsendQueryParams(pointer, query.sql, count, nil, values, lengths, formats, 0)
                }
            }
            if sent != 1 { lost = true; break }
        }
        if !lost, PQpipelineSync(pointer) == 1 {
            for _ in queries {
                guard let result = PQgetResult(pointer) else { lost = true; break }
                results.append(PostgresResultStorage(result))
                while let extra = PQgetResult(pointer) { PQclear(extra) }  // the statement's end
            }
            if !lost, let sync = PQgetResult(pointer) { PQclear(sync) } else { lost = true }
        } else {
            lost = true
        }
        if lost || PQexitPipelineMode(pointer) != 1 {
            throw PostgresError(.connectionLost, serverMessage: String(cString: PQerrorMessage(pointer)))
        }
        for (index, storage) in results.enumerated() { _ = try checked(storage, query: queries[index], name: names[index]) }
        return results
    }

    /// `storage` if it succeeded; otherwise its error. A statement whose prepared plan no longer
    /// fits the schema (SQLSTATE 0A000, "cached plan must not change result type") is forgotten
    /// so that its next call prepares it afresh.
    private func checked(_ storage: PostgresResultStorage, query: PostgresQuery, name: String?) throws -> PostgresResultStorage {
        do {
            return try check(storage)
        } catch let error as PostgresError where error.sqlState == "0A000" {
            if let name {
                prepared[query.sql] = nil
                PQclear(PQexec(pointer, "DEALLOCATE \(name)"))  // best effort: names are never reused anyway
            }
            throw error
        }
    }

    /// The prepared statement for `sql`, preparing it now if it is new; nil when the cache is full.
    private func preparedName(for sql: String, parameterCount: Int) throws -> String? {
        if let name = prepared[sql] { return name }
        guard prepared.count < LibpqConnection.preparedLimit else { return nil }
        preparedSerial += 1
        let name = "aisha_\(preparedSerial)"
        _ = try check(PQprepare(pointer, name, sql, Int32(parameterCount), nil))
        prepared[sql] = name
        return name
    }

    /// Runs SQL without parameters through the simple protocol (several statements allowed).
    /// Only for trusted, static SQL: migration files and session setup.
    func executeScript(_ sql: String) throws {
        try startStatement()
        defer { finishStatement() }
        if !pending.isEmpty {
            let batch = pending
            pending = []
            _ = try pipeline(batch)
        }
        _ = try check(PQexec(pointer, sql))
    }

    /// Reads pending input without blocking; false when the connection is gone.
    func consumeInput() -> Bool { PQconsumeInput(pointer) == 1 && PQstatus(pointer) == CONNECTION_OK }

    /// The socket, for polling.
    var socket: Int32 { PQsocket(pointer) }

    /// The NOTIFY messages received so far.
    func drainNotifications() -> [PostgresNotification] {
        var out: [PostgresNotification] = []
        while let raw = PQnotifies(pointer) {
            let item = raw.pointee
            out.append(PostgresNotification(channel: String(cString: item.relname), payload: String(cString: item.extra), processID: Int(item.be_pid)))
            PQfreemem(raw)
        }
        return out
    }

    private func check(_ result: OpaquePointer?) throws -> PostgresResultStorage {
        guard let result else {
            throw PostgresError(.connectionLost, serverMessage: String(cString: PQerrorMessage(pointer)))
        }
        return try check(PostgresResultStorage(result))
    }

    private func check(_ storage: PostgresResultStorage) throws -> PostgresResultStorage {
        let result = storage.pointer
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return storage
        default:
            func field(_ code: UInt8) -> String? {
                PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
            }
            let lost = PQstatus(pointer) != CONNECTION_OK
            throw PostgresError(
                lost ? .connectionLost : .server,
                sqlState: field(UInt8(ascii: "C")),
                constraint: field(UInt8(ascii: "n")),
                table: field(UInt8(ascii: "t")),
                column: field(UInt8(ascii: "c")),
                serverMessage: field(UInt8(ascii: "M")) ?? String(cString: PQerrorMessage(pointer))
            )
        }
    }
}

/// One message from `NOTIFY`.
public struct PostgresNotification: Sendable, Equatable {
    /// The channel it was sent on.
    public var channel: String
    /// The payload (empty when none was given).
    public var payload: String
    /// The backend process that sent it.
    public var processID: Int
}

/// A statement's parameters as the C arrays libpq takes: text values NUL-terminated, bytea binary.
private struct Parameters {
    private var values: [UnsafeMutablePointer<CChar>?]
    private var lengths: [Int32]
    private var formats: [Int32]

    init(_ binds: [PostgresBind]) {
        values = [UnsafeMutablePointer<CChar>?](repeating: nil, count: binds.count)
        lengths = [Int32](repeating: 0, count: binds.count)
        formats = [Int32](repeating: 0, count: binds.count)
        for (index, bind) in binds.enumerated() {
            switch bind {
            case .null:
                break
            case .text(let text):
                values[index] = strdup(text)
            case .binary(let bytes):
                let copy = malloc(max(1, bytes.count))!.assumingMemoryBound(to: CChar.self)
                bytes.withUnsafeBytes { UnsafeMutableRawPointer(copy).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
                values[index] = copy
                lengths[index] = Int32(bytes.count)
                formats[index] = 1
            }
        }
    }

    /// Calls `body` with (count, values, lengths, formats), then frees the copies.
    consuming func withPointers<R>(_ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, [Int32], [Int32]) -> R) -> R {
        defer { values.forEach { free($0) } }
        return values.map { UnsafePointer($0) }.withUnsafeBufferPointer { body(Int32(values.count), $0.baseAddress, lengths, formats) }
    }
}
