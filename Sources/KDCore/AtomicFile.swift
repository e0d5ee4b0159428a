// KDCore owns what several modules share and nothing else: atomic file replacement (this file),
// the portable PRNG and hashes (Random.swift) and the replica checksum (Checksum.swift). It has no
// dependencies beyond the C library, so Model, Dist, FaceData, Evaluation and Pipeline can all use it.
import Foundation

/// Why an atomic write failed: the file it was writing and the system call that failed.
public struct AtomicWriteError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let what: String
    public init(path: String, what: String) { self.path = path; self.what = what }
    public var description: String { "\(path): \(what)" }
}

/// Atomic file replacement: a reader sees the old file or the new one, never a torn one, and a
/// crash at any point leaves one of the two. The bytes go to `.<name>.tmp-<pid>-<random>` beside
/// `path` (created exclusively, so two writers never share it), every `write` is retried on EINTR
/// and short counts, the file is fsynced and closed (both checked), renamed over `path`, and the
/// directory is fsynced so the rename itself survives a power cut. On any failure the temporary
/// file is removed and `path` is untouched.
public enum AtomicFile {
    /// Replaces `path` by `bytes`.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try write(to: path) { fd in try bytes.withUnsafeBytes { try writeAll(fd, $0, path: path) } }
    }

    /// Replaces `path` by `data`.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { fd in try data.withUnsafeBytes { try writeAll(fd, $0, path: path) } }
    }

    /// Replaces `path` by what `body` writes to the descriptor it is given (for streamed output;
    /// use `writeAll` inside `body` for EINTR-safe writes).
    public static func write(to path: String, _ body: (Int32) throws -> Void) throws {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !name.isEmpty else { throw AtomicWriteError(path: path, what: "not a file name") }
        let tmp = (dir == "/" ? "" : dir) + "/." + name + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func failure(_ call: String) -> AtomicWriteError {
            AtomicWriteError(path: path, what: "\(call) failed: \(String(cString: strerror(errno)))")
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("creating \(tmp)") }
        do {
            try body(fd)
        } catch {
            close(fd); unlink(tmp); throw error
        }
        if fsync(fd) != 0 { let e = failure("fsync"); close(fd); unlink(tmp); throw e }
        if close(fd) != 0 { let e = failure("close"); unlink(tmp); throw e }
        if rename(tmp, path) != 0 { let e = failure("rename"); unlink(tmp); throw e }
        let dfd = open(dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Whether `name` is the temporary of an atomic write (`.<name>.tmp-<pid>-<random>`, or
    /// `.<name>.tmp-<pid>` as versions before 0.9 wrote them), so a killed job's leftovers can be
    /// told from user files.
    public static func isTemporary(_ name: String) -> Bool {
        guard name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards),
              r.lowerBound > name.index(after: name.startIndex) else { return false }
        let tail = name[r.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        return (1...2).contains(tail.count) && tail.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }

    /// Writes all of `buffer` to `fd`, retrying on EINTR and short writes.
    public static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        guard var p = buffer.baseAddress else { return }
        var left = buffer.count
        while left > 0 {
            let n = Foundation.write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw AtomicWriteError(path: path, what: "write failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw AtomicWriteError(path: path, what: "write failed: no progress") }
            p += n; left -= n
        }
    }
}

