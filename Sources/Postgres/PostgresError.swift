/// A failure talking to PostgreSQL.
///
/// `description` names the SQLSTATE, constraint and table, never the SQL, the parameters or the
/// server's message text (which can quote a parameter, e.g. `invalid input syntax for type
/// integer: "…"`). The server's text is kept in `serverMessage` for deliberate, local use.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The server rejected a statement; `sqlState` says why.
        public static let server = Code("server")
        /// A connection could not be opened (refused, bad password, unknown database …).
        public static let connectionFailed = Code("connectionFailed")
        /// An open connection broke mid-call (server restarted or network lost); the call may or may not have run.
        public static let connectionLost = Code("connectionLost")
        /// No pooled connection became free within the acquire timeout.
        public static let poolTimeout = Code("poolTimeout")
        /// The client was shut down.
        public static let clientClosed = Code("clientClosed")
        /// A column could not be decoded into the requested Swift type.
        public static let decoding = Code("decoding")
        /// A connection string or URL that libpq cannot parse.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// A migration file or history problem (edited file, gap, bad name).
        public static let migration = Code("migration")
        public var description: String { name }
    }

    /// The failure's kind.
    public var code: Code
    /// The five-character SQLSTATE (for `.server` errors, and `57014` for cancelled statements).
    public var sqlState: String?
    /// The constraint the statement violated, when the server names one.
    public var constraint: String?
    /// The table involved, when the server names one.
    public var table: String?
    /// The column involved, when the server names one.
    public var column: String?
    /// The server's or libpq's message. May quote parameter values: do not log it by default.
    public var serverMessage: String?
    /// What the client was doing, without data (e.g. "decode column 2 as Int").
    public var context: String?

    /// Creates an error.
    public init(
        _ code: Code, sqlState: String? = nil, constraint: String? = nil, table: String? = nil,
        column: String? = nil, serverMessage: String? = nil, context: String? = nil
    ) {
        self.code = code
        self.sqlState = sqlState
        self.constraint = constraint
        self.table = table
        self.column = column
        self.serverMessage = serverMessage
        self.context = context
    }

    /// Whether this is a unique-constraint violation (SQLSTATE 23505).
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// Whether the statement was cancelled or hit `statement_timeout` (SQLSTATE 57014).
    public var isQueryCanceled: Bool { sqlState == "57014" }
    /// Whether retrying on a fresh connection may succeed (connection trouble, server shutting down,
    /// serialization failures and deadlocks).
    public var isTransient: Bool {
        if code == .connectionLost || code == .connectionFailed || code == .poolTimeout { return true }
        guard let sqlState else { return false }
        return sqlState == "40001" || sqlState == "40P01" || sqlState.hasPrefix("08") || sqlState.hasPrefix("57P")
    }

    public var description: String {
        var parts = ["\(code)"]
        if let sqlState { parts.append("sqlstate: \(sqlState)") }
        if let constraint { parts.append("constraint: \(constraint)") }
        if let table { parts.append("table: \(table)") }
        if let column { parts.append("column: \(column)") }
        if let context { parts.append("context: \(context)") }
        // libpq's connection messages name host, port, user and the reason, never the password.
        if code == .connectionFailed || code == .invalidConfiguration || code == .migration, let serverMessage {
            parts.append("message: \(serverMessage)")
        }
        return "PostgresError(" + parts.joined(separator: ", ") + ")"
    }
}
