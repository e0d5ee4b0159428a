// The run directory: its layout (the one place that names RUN's files and folders), the
// resolution of the checkpoints commands take by default (the teacher of `distill`, the models of
// `evaluate`), its creation, its lock and its clean-up after a kill.
import Foundation
import KDCore
#if canImport(Glibc)
import Glibc
#endif

/// Rank 0's hold on a run directory, for the whole process.
///
/// `RUN/.lock` is locked with `flock(LOCK_EX | LOCK_NB)` and holds the holder's pid; the file
/// descriptor is never closed, so the kernel releases the lock when the process ends, however it
/// ends (a kill included). A second job on the same directory is refused, naming the holder.
public struct RunDirectory: Sendable {
    /// The directory itself.
    public let path: String

    public init(_ path: String) { self.path = path }

    // The layout: every file and folder of a run, named here only.
    public var config: String { path + "/config.json" }
    public var metrics: String { path + "/metrics.jsonl" }
    public var report: String { path + "/report.md" }
    public var labels: String { path + "/labels.tsv" }
    public var skipped: String { path + "/skipped.tsv" }
    public var eval: String { path + "/eval" }
    public static let subdirectories = ["teacher", "student", "eval"]

    /// The checkpoint folder of a phase of the default job (studies have their own, under RUN/<study>/).
    public func phase(_ role: Trainer.Role) -> String { path + "/" + role.rawValue }
    /// The averaged student (`kdtrain average`, `run`).
    public var averagedStudent: String { phase(.student) + "/averaged.safetensors" }
    /// A file of the evaluation folder (eval/NAME).
    public func evalFile(_ name: String) -> String { eval + "/" + name }

    /// The step checkpoints of a phase, oldest first.
    public func checkpoints(_ role: Trainer.Role) -> [String] { Checkpoint.list(in: phase(role)) }

    /// The teacher `distill` uses: `--teacher`, else `teacher.checkpoint`, else the run's latest
    /// teacher checkpoint; nil when there is none.
    public func teacherForDistillation(explicit: String?, configured: String?) -> String? {
        explicit ?? configured ?? checkpoints(.teacher).last
    }

    /// The checkpoints `evaluate` takes without `--checkpoints`: the latest teacher, the latest
    /// student and the averaged student, those that exist.
    public func defaultEvaluationCheckpoints() -> [String] {
        var paths = [checkpoints(.teacher).last, checkpoints(.student).last].compactMap { $0 }
        if FileManager.default.fileExists(atPath: averagedStudent) { paths.append(averagedStudent) }
        return paths
    }
    /// Creates `dir` (and its parents) and `subdirectories` in it, and checks that `dir` is a
    /// writable directory. - Throws: `ConfigError`, one line naming the path.
    public static func create(_ dir: String, subdirectories: [String] = []) throws {
        try makeDirectory(dir)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ConfigError("run directory \(dir): exists and is not a directory")
        }
        guard access(dir, W_OK | X_OK) == 0 else {
            throw ConfigError("run directory \(dir): not writable (\(String(cString: strerror(errno))))")
        }
        for sub in subdirectories { try makeDirectory(dir + "/" + sub) }
    }

    /// mkdir -p with one line naming the component that failed.
    static func makeDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + part
            if mkdir(prefix, 0o755) != 0 {
                let err = errno
                var st = stat()
                if stat(prefix, &st) == 0 {
                    if (st.st_mode & S_IFMT) == S_IFDIR { continue }
                    throw ConfigError("run directory \(path): \(prefix == path ? "" : prefix + " ")exists and is not a directory")
                }
                throw ConfigError("run directory \(path): cannot create \(prefix) (\(String(cString: strerror(err))))")
            }
        }
    }

    private final class Held: @unchecked Sendable {
        let lock = NSLock()
        var fds: [String: Int32] = [:]
    }
    private static let held = Held()

    /// Takes the lock of `dir` for the rest of the process (again: no-op).
    /// - Throws: `ConfigError` naming the directory and the holder's pid when another process holds it.
    public static func lock(_ dir: String) throws {
        let key = URL(fileURLWithPath: dir).standardizedFileURL.resolvingSymlinksInPath().path
        held.lock.lock(); defer { held.lock.unlock() }
        if held.fds[key] != nil { return }
        let path = dir + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ConfigError("run directory \(dir): cannot open \(path) (\(String(cString: strerror(errno))))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let err = errno
            var buf = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buf, buf.count, 0)
            close(fd)
            let pid = n > 0 ? Int(String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) : nil
            if err == EWOULDBLOCK {
                throw ConfigError("run directory \(dir): in use by another kdtrain job (pid \(pid.map(String.init) ?? "unknown"), holding \(path)); wait for it to end or use another --run-dir")
            }
            throw ConfigError("run directory \(dir): cannot lock \(path) (\(String(cString: strerror(err))))")
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, text, text.count, 0)
        held.fds[key] = fd
    }

    /// Whether `name` is a temporary of an atomic write (see `AtomicFile.isTemporary`).
    public static func isTemporary(_ name: String) -> Bool { AtomicFile.isTemporary(name) }

    /// Removes the temporaries a killed job left in `dir` and its immediate subdirectories; call
    /// with the lock held (no live job is writing them then). Returns the removed paths.
    @discardableResult
    public static func removeOrphanTemporaries(in dir: String) -> [String] {
        let fm = FileManager.default
        var removed: [String] = []
        var dirs = [dir]
        // Symbolic links are not followed: a link to another run's folder (cluster/ablation.sh links
        // each student's teacher/) belongs to that run, which may be live.
        func kind(_ p: String) -> mode_t? { var st = stat(); return lstat(p, &st) == 0 ? st.st_mode & S_IFMT : nil }
        for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where !name.hasPrefix(".") && kind(dir + "/" + name) == S_IFDIR {
            dirs.append(dir + "/" + name)
        }
        for d in dirs {
            for name in (try? fm.contentsOfDirectory(atPath: d)) ?? [] where isTemporary(name) && kind(d + "/" + name) == S_IFREG {
                let p = d + "/" + name
                if unlink(p) == 0 { removed.append(p) }
            }
        }
        return removed.sorted()
    }
}
