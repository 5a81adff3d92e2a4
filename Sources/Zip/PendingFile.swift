internal import CLibzip
import Foundation

/// A file another task is still writing (a download, say), to be archived once it is whole.
///
/// `ZipWriter.addFile(_:as:)` takes one of these; libzip reaches the entry only inside
/// `finish()`, and there the entry's source blocks *its* thread until `finish()` or `fail(_:)`
/// is called here. This lets the archive be written while later files still download: the
/// entries are packed in order, each as soon as it is complete, instead of after the last one.
/// Whoever creates a pending file must resolve it on every path, or the writer waits forever.
public final class PendingFile: @unchecked Sendable {  // state guarded by `condition`
    /// Where the file is (or will be) once complete.
    public let path: String
    private let condition = NSCondition()
    private var state = State.pending

    private enum State { case pending, complete, failed }

    public init(path: String) { self.path = path }

    /// The file is complete.
    public func finish() { resolve(.complete) }

    /// The file will never be complete: the archive fails with `ZipError.Code.io` (the caller
    /// reports its own error instead). A no-op once resolved.
    public func fail() { resolve(.failed) }

    private func resolve(_ outcome: State) {
        condition.lock()
        defer { condition.unlock() }
        guard state == .pending else { return }
        state = outcome
        condition.broadcast()
    }

    /// Blocks until resolved; true when the file is complete.
    func waitUntilComplete() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while state == .pending { condition.wait() }
        return state == .complete
    }
}

/// The libzip source behind a pending file: a read-only source whose `stat` and `open` wait
/// for the file, then read it with plain `read(2)`.
final class PendingFileSource {
    let file: PendingFile
    private var descriptor: Int32 = -1
    private var error: (zip: Int32, system: Int32) = (0, 0)

    init(_ file: PendingFile) { self.file = file }
    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Creates the libzip source; libzip owns it (and, through `FREE`, this object) from then on.
    static func make(_ file: PendingFile, in archive: OpaquePointer) -> OpaquePointer? {
        let context = Unmanaged.passRetained(PendingFileSource(file)).toOpaque()
        guard let source = zip_source_function(archive, callback, context) else {
            Unmanaged<PendingFileSource>.fromOpaque(context).release()
            return nil
        }
        return source
    }

    private static let callback: zip_source_callback = { context, data, length, command in
        let source = Unmanaged<PendingFileSource>.fromOpaque(context!).takeUnretainedValue()
        switch command {
        case ZIP_SOURCE_SUPPORTS:
            return [ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, ZIP_SOURCE_SUPPORTS]
                .reduce(0) { $0 | (zip_int64_t(1) << zip_int64_t($1.rawValue)) }
        case ZIP_SOURCE_STAT:
            guard let data, length >= MemoryLayout<zip_stat_t>.size else { return source.failed(ZIP_ER_INVAL) }
            guard source.file.waitUntilComplete() else { return source.failed(ZIP_ER_OPEN) }
            var info = stat()
            guard stat(source.file.path, &info) == 0 else { return source.failed(ZIP_ER_OPEN, errno) }
            let result = data.assumingMemoryBound(to: zip_stat_t.self)
            zip_stat_init(result)
            result.pointee.size = zip_uint64_t(info.st_size)
            result.pointee.mtime = info.st_mtim.tv_sec
            result.pointee.valid |= zip_uint64_t(ZIP_STAT_SIZE) | zip_uint64_t(ZIP_STAT_MTIME)
            return zip_int64_t(MemoryLayout<zip_stat_t>.size)
        case ZIP_SOURCE_OPEN:
            guard source.file.waitUntilComplete() else { return source.failed(ZIP_ER_OPEN) }
            source.descriptor = open(source.file.path, O_RDONLY | O_CLOEXEC)
            return source.descriptor >= 0 ? 0 : source.failed(ZIP_ER_OPEN, errno)
        case ZIP_SOURCE_READ:
            guard let data else { return source.failed(ZIP_ER_INVAL) }
            while true {
                let count = read(source.descriptor, data, Int(length))
                if count >= 0 { return zip_int64_t(count) }
                if errno != EINTR { return source.failed(ZIP_ER_READ, errno) }
            }
        case ZIP_SOURCE_CLOSE:
            if source.descriptor >= 0 { close(source.descriptor); source.descriptor = -1 }
            return 0
        case ZIP_SOURCE_ERROR:
            guard let data, length >= 2 * MemoryLayout<Int32>.size else { return -1 }
            let codes = data.assumingMemoryBound(to: Int32.self)
            codes[0] = source.error.zip
            codes[1] = source.error.system
            return zip_int64_t(2 * MemoryLayout<Int32>.size)
        case ZIP_SOURCE_FREE:
            Unmanaged<PendingFileSource>.fromOpaque(context!).release()
            return 0
        default:
            return source.failed(ZIP_ER_OPNOTSUPP)
        }
    }

    private func failed(_ zip: Int32, _ system: Int32 = 0) -> zip_int64_t {
        error = (zip, system)
        return -1
    }
}
