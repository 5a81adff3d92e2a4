internal import CLibzip
public import Foundation

/// One entry as the archive's central directory describes it.
public struct ZipEntry: Sendable, Equatable {
    /// The entry's name.
    public var name: String
    /// Its uncompressed size.
    public var size: Int
    /// Its size in the archive.
    public var compressedSize: Int
    /// Whether it is stored (not compressed).
    public var isStored: Bool
    /// Its CRC-32.
    public var crc32: UInt32
}

/// Reads a ZIP archive, checking its structure on open and each entry's CRC when read.
public struct ZipReader: ~Copyable {
    private let archive: OpaquePointer
    /// The entries, in archive order.
    public let entries: [ZipEntry]

    /// Opens the archive at `path`.
    /// - Throws: `ZipError.Code.notAZip` or `.inconsistent` for a corrupt or truncated file, `.io` if unreadable.
    public init(path: String) throws(ZipError) {
        var code: Int32 = 0
        guard let archive = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code) else { throw ZipError(libzipCode: code) }
        var entries: [ZipEntry] = []
        let count = zip_get_num_entries(archive, 0)
        for index in 0..<max(0, count) {
            var info = zip_stat_t()
            guard zip_stat_index(archive, zip_uint64_t(index), 0, &info) == 0 else {
                let error = ZipError(zip_get_error(archive))
                zip_discard(archive)
                throw error
            }
            entries.append(ZipEntry(
                name: info.name.map { String(cString: $0) } ?? "",
                size: Int(info.size),
                compressedSize: Int(info.comp_size),
                isStored: info.comp_method == ZIP_CM_STORE,
                crc32: info.crc
            ))
        }
        self.archive = archive
        self.entries = entries
    }

    deinit { zip_discard(archive) }

    /// The contents of the entry at `index`, verified against its CRC.
    /// - Throws: `ZipError.Code.crcMismatch` or `.inconsistent` for corrupt data, `.noSuchEntry` for a bad index.
    public func contents(at index: Int) throws(ZipError) -> Data {
        guard entries.indices.contains(index) else { throw ZipError(.noSuchEntry, message: "no entry \(index)") }
        guard let file = zip_fopen_index(archive, zip_uint64_t(index), 0) else { throw ZipError(zip_get_error(archive)) }
        defer { zip_fclose(file) }
        var data = Data()
        data.reserveCapacity(entries[index].size)
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = zip_fread(file, &buffer, zip_uint64_t(buffer.count))
            if n < 0 { throw ZipError(zip_file_get_error(file)) }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<Int(n)])
        }
        return data
    }

    /// The contents of the entry named `name`.
    public func contents(of name: String) throws(ZipError) -> Data {
        guard let index = entries.firstIndex(where: { $0.name == name }) else {
            throw ZipError(.noSuchEntry, message: "no entry named '\(name)'")
        }
        return try contents(at: index)
    }

    /// Reads every entry to check its CRC; throws at the first bad one.
    public func verify() throws(ZipError) {
        for index in entries.indices { _ = try contents(at: index) }
    }
}
