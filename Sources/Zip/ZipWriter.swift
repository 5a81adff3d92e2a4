internal import CLibzip

/// How an entry is stored.
public enum ZipCompression: Sendable, Equatable {
    /// Stored as-is: right for JPEG, PNG and WebP, which deflate cannot shrink.
    case store
    /// Deflated.
    case deflate
    /// `store` for already-compressed formats (by the entry's extension), `deflate` otherwise.
    case automatic

    static let compressedExtensions: Set<String> = ["jpg", "jpeg", "png", "webp", "gif", "zip", "gz", "mp4", "safetensors"]

    func resolved(for name: String) -> ZipCompression {
        guard self == .automatic else { return self }
        let ext = name.split(separator: ".").last.map { $0.lowercased() } ?? ""
        return ZipCompression.compressedExtensions.contains(ext) ? .store : .deflate
    }
}

/// Writes a ZIP archive whose entries stream from files on disk.
///
/// libzip reads the files only in `finish()`, one at a time, so memory does not grow with the
/// archive; the archive appears at its path atomically (libzip writes a temporary and renames).
/// Not thread-safe (libzip's `zip_t` is not): use one writer from one thread.
public struct ZipWriter: ~Copyable {
    private var archive: OpaquePointer?
    private var names: Set<String> = []

    /// Starts an archive at `path`, replacing any file there when finished.
    /// - Throws: `ZipError` if the path cannot be used.
    public init(path: String) throws(ZipError) {
        var code: Int32 = 0
        guard let archive = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &code) else { throw ZipError(libzipCode: code) }
        self.archive = archive
    }

    deinit { if let archive { zip_discard(archive) } }

    /// Adds the file at `filePath` as the entry `name`.
    /// - Throws: `ZipError.Code.invalidEntryName` for an unsafe name, `.duplicateEntry` for a repeat,
    ///   `.io` if the file cannot be read.
    public mutating func addFile(at filePath: String, as name: String, compression: ZipCompression = .automatic) throws(ZipError) {
        try add(name, compression: compression) { archive in zip_source_file(archive, filePath, 0, -1) }
    }

    /// Adds a file that may still be being written: `finish()` waits, when it reaches this
    /// entry, until `file` is resolved (and fails with `.io` if it failed).
    /// - Throws: `ZipError.Code.invalidEntryName` for an unsafe name, `.duplicateEntry` for a repeat.
    public mutating func addFile(_ file: PendingFile, as name: String, compression: ZipCompression = .automatic) throws(ZipError) {
        try add(name, compression: compression) { archive in PendingFileSource.make(file, in: archive) }
    }

    private mutating func add(_ name: String, compression: ZipCompression, source makeSource: (OpaquePointer) -> OpaquePointer?) throws(ZipError) {
        guard let archive else { throw ZipError(.other, message: "archive already finished") }
        try ZipWriter.validate(name: name)
        guard names.insert(name).inserted else { throw ZipError(.duplicateEntry, message: "entry '\(name)' added twice") }
        guard let source = makeSource(archive) else { throw ZipError(zip_get_error(archive)) }
        let index = zip_file_add(archive, name, source, zip_flags_t(ZIP_FL_ENC_UTF_8))
        guard index >= 0 else {
            zip_source_free(source)
            throw ZipError(zip_get_error(archive))
        }
        let method = compression.resolved(for: name) == .store ? ZIP_CM_STORE : ZIP_CM_DEFLATE
        guard zip_set_file_compression(archive, zip_uint64_t(index), method, 0) == 0 else { throw ZipError(zip_get_error(archive)) }
    }

    /// Writes the archive to disk and closes it.
    /// - Throws: `ZipError` if a source file vanished or the archive cannot be written.
    public consuming func finish() throws(ZipError) {
        guard let archive else { return }
        self.archive = nil
        if zip_close(archive) != 0 {
            let error = ZipError(zip_get_error(archive))
            zip_discard(archive)
            throw error
        }
    }

    /// Entry names must stay inside the archive: not empty, not absolute, no `..`, no backslash or NUL.
    static func validate(name: String) throws(ZipError) {
        let components = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\\"), !name.contains("\0"),
              !components.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty })
        else { throw ZipError(.invalidEntryName, message: "unsafe entry name") }
    }
}
