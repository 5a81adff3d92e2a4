import Foundation
import Imaging
import Signing
import Synchronization
import TestSupport
import Testing
import Zip

@Suite struct ZipTests {
    /// A fresh temporary folder, removed after the test.
    func withTemporaryFolder<T>(_ body: (String) async throws -> T) async throws -> T {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("zip-test-" + UUID().uuidString).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        return try await body(folder)
    }

    /// Writes 20 real JPEGs (different sizes and shading, ~40 KB each with filler).
    func makePhotos(in folder: String) throws -> [String: [UInt8]] {
        var photos: [String: [UInt8]] = [:]
        for index in 0..<20 {
            let jpeg = JPEGEncoder.encode(width: 512 + index * 8, height: 640, padding: 40_000, seed: UInt64(index + 1)) { x, y in
                UInt8((x / 4 + y / 3 + index * 10) % 256)
            }
            let path = folder + "/photo-\(index).jpg"
            try Data(jpeg).write(to: URL(fileURLWithPath: path))
            photos["photo-\(index).jpg"] = jpeg
        }
        return photos
    }

    @Test func twentyJPEGsAreStoredAndReadBack() async throws {
        try await withTemporaryFolder { folder in
            let photos = try makePhotos(in: folder)
            let archive = folder + "/training.zip"
            var writer = try ZipWriter(path: archive)
            for name in photos.keys.sorted() { try writer.addFile(at: folder + "/" + name, as: name) }
            try writer.finish()

            let reader = try ZipReader(path: archive)
            #expect(reader.entries.count == 20)
            #expect(reader.entries.allSatisfy { $0.isStored }, "JPEG entries are stored, not deflated")
            for entry in reader.entries {
                #expect(try [UInt8](reader.contents(of: entry.name)) == photos[entry.name])
                #expect(entry.size == entry.compressedSize)
            }
            try reader.verify()
        }
    }

    @Test func pythonZipfileAndUnzipAcceptTheArchive() async throws {
        try await withTemporaryFolder { folder in
            let photos = try makePhotos(in: folder)
            let archive = folder + "/training.zip"
            var writer = try ZipWriter(path: archive)
            for name in photos.keys.sorted() { try writer.addFile(at: folder + "/" + name, as: name) }
            try writer.finish()

            let unzip = try await TestServices.run("/usr/bin/unzip", ["-t", archive])
            #expect(unzip.contains("No errors detected"))
            let script = """
                import sys, zipfile, hashlib
                z = zipfile.ZipFile(sys.argv[1])
                assert z.testzip() is None
                for i in z.infolist():
                    assert i.compress_type == zipfile.ZIP_STORED, i.filename
                    data = z.read(i)
                    assert data[:2] == b'\\xff\\xd8' and data[-2:] == b'\\xff\\xd9', i.filename
                print(len(z.infolist()), hashlib.sha256(z.read('photo-7.jpg')).hexdigest())
                """
            let output = try await TestServices.run("/usr/bin/env", ["python3", "-c", script, archive])
            #expect(output == "20 " + SHA256.hexDigest(photos["photo-7.jpg"]!))
        }
    }

    @Test func textIsDeflatedAutomatically() async throws {
        try await withTemporaryFolder { folder in
            let text = String(repeating: "caption caption caption\n", count: 2000)
            try text.write(toFile: folder + "/notes.txt", atomically: true, encoding: .utf8)
            var writer = try ZipWriter(path: folder + "/a.zip")
            try writer.addFile(at: folder + "/notes.txt", as: "notes.txt")
            try writer.finish()
            let reader = try ZipReader(path: folder + "/a.zip")
            #expect(reader.entries[0].isStored == false)
            #expect(reader.entries[0].compressedSize < reader.entries[0].size / 10)
            #expect(String(decoding: try reader.contents(at: 0), as: UTF8.self) == text)
        }
    }

    @Test func truncatedArchiveGivesTypedError() async throws {
        try await withTemporaryFolder { folder in
            _ = try makePhotos(in: folder)
            var writer = try ZipWriter(path: folder + "/a.zip")
            for index in 0..<3 { try writer.addFile(at: folder + "/photo-\(index).jpg", as: "photo-\(index).jpg") }
            try writer.finish()
            let whole = try Data(contentsOf: URL(fileURLWithPath: folder + "/a.zip"))
            try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: folder + "/truncated.zip"))
            #expect {
                _ = try ZipReader(path: folder + "/truncated.zip")
            } throws: { error in
                guard let error = error as? ZipError else { return false }
                return error.code == .notAZip || error.code == .inconsistent
            }
            try Data("not a zip at all".utf8).write(to: URL(fileURLWithPath: folder + "/text.zip"))
            #expect { _ = try ZipReader(path: folder + "/text.zip") } throws: { ($0 as? ZipError)?.code == .notAZip }
        }
    }

    @Test func corruptedEntryFailsItsCRC() async throws {
        try await withTemporaryFolder { folder in
            _ = try makePhotos(in: folder)
            var writer = try ZipWriter(path: folder + "/a.zip")
            try writer.addFile(at: folder + "/photo-0.jpg", as: "photo-0.jpg")
            try writer.finish()
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: folder + "/a.zip")))
            bytes[30 + "photo-0.jpg".utf8.count + 5000] ^= 0xFF  // inside the stored data
            try Data(bytes).write(to: URL(fileURLWithPath: folder + "/bad.zip"))
            let reader = try ZipReader(path: folder + "/bad.zip")
            #expect { try reader.verify() } throws: { ($0 as? ZipError)?.code == .crcMismatch }
        }
    }

    @Test func unsafeOrDuplicateNamesAreRefused() async throws {
        try await withTemporaryFolder { folder in
            try Data("x".utf8).write(to: URL(fileURLWithPath: folder + "/x.txt"))
            var writer = try ZipWriter(path: folder + "/a.zip")
            for name in ["", "/etc/passwd", "../up.jpg", "a/../../b", "a\\b", "a//b"] {
                #expect(throws: ZipError.self, "name \(name)") { try writer.addFile(at: folder + "/x.txt", as: name) }
            }
            try writer.addFile(at: folder + "/x.txt", as: "ok/x.txt")
            #expect { try writer.addFile(at: folder + "/x.txt", as: "ok/x.txt") } throws: { ($0 as? ZipError)?.code == .duplicateEntry }
            try writer.finish()
            #expect(try ZipReader(path: folder + "/a.zip").entries.map(\.name) == ["ok/x.txt"])
        }
    }

    @Test func missingSourceFileFailsAndLeavesNoArchive() async throws {
        try await withTemporaryFolder { folder in
            var failure: ZipError?
            do {
                var writer = try ZipWriter(path: folder + "/a.zip")
                try writer.addFile(at: folder + "/missing.jpg", as: "missing.jpg")
                try writer.finish()
            } catch {
                failure = error as? ZipError
            }
            #expect(failure?.code == .io || failure?.code == .noSuchEntry, "\(String(describing: failure))")
            #expect(!FileManager.default.fileExists(atPath: folder + "/a.zip"))
        }
    }
    /// Runs `body` on a thread of its own (a libzip writer blocks while it waits for files).
    func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    @Test func pendingFilesArePackedAsTheyComplete() async throws {
        try await withTemporaryFolder { folder in
            let names = (0..<20).map { "photo_\($0).jpg" }
            let files = names.map { PendingFile(path: folder + "/" + $0) }
            let archive = folder + "/training.zip"
            let finished = Mutex(false)
            async let packed: Void = onThread {
                var writer = try ZipWriter(path: archive)
                for (file, name) in zip(files, names) { try writer.addFile(file, as: name) }
                try writer.finish()
                finished.withLock { $0 = true }
            }
            // The files appear one by one, last first; the writer must wait for each.
            var contents: [String: [UInt8]] = [:]
            for (file, name) in zip(files, names).reversed() {
                let jpeg = JPEGEncoder.encode(width: 512, height: 512, padding: 20_000, seed: UInt64(name.hashValue & 0xFFFF)) { x, y in UInt8((x ^ y) & 0xFF) }
                try Data(jpeg).write(to: URL(fileURLWithPath: file.path))
                contents[name] = jpeg
                try await Task.sleep(for: .milliseconds(5))
                #expect(!finished.withLock { $0 }, "the archive was finished before \(name) was complete")
                file.finish()
            }
            try await packed
            let reader = try ZipReader(path: archive)
            #expect(reader.entries.map(\.name) == names)
            for entry in reader.entries { #expect(try [UInt8](reader.contents(of: entry.name)) == contents[entry.name]) }
            try reader.verify()
        }
    }

    @Test func aFailedPendingFileFailsTheArchiveAtOnce() async throws {
        try await withTemporaryFolder { folder in
            let files = (0..<3).map { PendingFile(path: folder + "/\($0).jpg") }
            try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: files[0].path))
            files[0].finish()
            files[1].fail()
            // files[2] is resolved only after the writer has returned (or, if the writer waits for it,
            // 60 s later): the writer must stop at the failed one, not wait for the rest.
            let resolvedLate = Task { () -> Bool in
                do { try await Task.sleep(for: .seconds(60)) } catch { return false }
                files[2].fail()
                return true
            }
            defer { files[2].fail() }
            let failure = try await onThread { () -> ZipError? in
                var writer = try ZipWriter(path: folder + "/a.zip")
                for (index, file) in files.enumerated() { try writer.addFile(file, as: "\(index).jpg") }
                do { try writer.finish(); return nil } catch { return error as? ZipError }
            }
            resolvedLate.cancel()
            #expect(failure?.code == .io, "\(String(describing: failure))")
            #expect(await resolvedLate.value == false, "the writer waited for a file after the failed one")
            #expect(!FileManager.default.fileExists(atPath: folder + "/a.zip"))
        }
    }
}
