internal import CLibzip

/// A failure reading or writing a ZIP archive.
public struct ZipError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The file is not a ZIP archive (no end-of-central-directory record, e.g. truncated).
        public static let notAZip = Code("notAZip")
        /// The archive's structure is inconsistent (corrupt or truncated).
        public static let inconsistent = Code("inconsistent")
        /// An entry's data does not match its CRC.
        public static let crcMismatch = Code("crcMismatch")
        /// A file could not be opened, read or written.
        public static let io = Code("io")
        /// An entry name that is empty, absolute, or climbs out with `..`.
        public static let invalidEntryName = Code("invalidEntryName")
        /// Two entries with one name.
        public static let duplicateEntry = Code("duplicateEntry")
        /// No entry with that name or index.
        public static let noSuchEntry = Code("noSuchEntry")
        /// Any other libzip error; see `libzipCode`.
        public static let other = Code("other")
        public var description: String { name }
    }

    /// The failure's kind.
    public var code: Code
    /// libzip's `ZIP_ER_*` code (0 when the failure was detected here).
    public var libzipCode: Int
    /// libzip's message, or ours.
    public var message: String

    public var description: String { "ZipError(\(code), \(message))" }

    init(_ code: Code, message: String, libzipCode: Int = 0) {
        self.code = code
        self.message = message
        self.libzipCode = libzipCode
    }

    /// An error from a `ZIP_ER_*` code and, where libzip supplies one, the system errno.
    init(libzipCode: Int32, systemCode: Int32 = 0) {
        var error = zip_error_t()
        zip_error_init_with_code(&error, libzipCode)
        let message = String(cString: zip_error_strerror(&error))
        zip_error_fini(&error)
        let code: Code
        switch libzipCode {
        case ZIP_ER_NOZIP: code = .notAZip
        case ZIP_ER_INCONS: code = .inconsistent
        case ZIP_ER_CRC: code = .crcMismatch
        case ZIP_ER_EXISTS: code = .duplicateEntry
        case ZIP_ER_NOENT: code = .noSuchEntry
        case ZIP_ER_OPEN, ZIP_ER_READ, ZIP_ER_WRITE, ZIP_ER_CLOSE, ZIP_ER_TMPOPEN, ZIP_ER_RENAME, ZIP_ER_SEEK, ZIP_ER_EOF: code = .io
        default: code = .other
        }
        self.init(code, message: message, libzipCode: Int(libzipCode))
    }

    /// The error libzip recorded on an archive or source.
    init(_ error: UnsafeMutablePointer<zip_error_t>) {
        self.init(libzipCode: zip_error_code_zip(error), systemCode: zip_error_code_system(error))
    }
}
