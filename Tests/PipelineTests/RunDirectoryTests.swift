// The run directory: the lock (a second job refused naming the holder), orphan temporaries removed,
// uncreatable or read-only directories in one line, the layout's default checkpoints.
import Foundation
import XCTest
import Pipeline

/// The run directory: one job at a time (an flock on RUN/.lock), leftovers of a killed job
/// removed at start, and a directory that cannot be created or written is one line naming it.
final class RunDirectoryTests: XCTestCase {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "kdtrain-rundir-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// Holds RUN/.lock the way a running job does, writing `pid` into it; returns the descriptor.
    func holdLock(_ dir: String, pid: Int32 = getpid()) throws -> Int32 {
        let fd = open(dir + "/.lock", O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        let text = Array("\(pid)\n".utf8)
        _ = ftruncate(fd, 0); _ = pwrite(fd, text, text.count, 0)
        return fd
    }

    /// The built kdtrain next to this package's build products (skips when it is not built).
    func kdtrain() throws -> String {
        let root = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for c in ["release", "debug"] {
            let p = root.appendingPathComponent(".build/\(c)/kdtrain").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw XCTSkip("kdtrain is not built (swift build -c release)")
    }

    /// Runs kdtrain alone (an MPI singleton) with a hard timeout; returns (status, stderr).
    func run(_ args: [String], timeout: Double = 120) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try kdtrain())
        p.arguments = args
        var env = ProcessInfo.processInfo.environment.filter { k, _ in !(k.hasPrefix("OMPI_") || k.hasPrefix("PMIX_") || k.hasPrefix("OPAL_")) }
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        p.environment = env
        let errURL = URL(fileURLWithPath: NSTemporaryDirectory() + "kdtrain-rundir-err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let err = try FileHandle(forWritingTo: errURL)
        p.standardError = err; p.standardOutput = FileHandle.nullDevice; p.standardInput = FileHandle.nullDevice
        try p.run()
        let t0 = Date()
        while p.isRunning && Date().timeIntervalSince(t0) < timeout { usleep(20_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); XCTFail("kdtrain \(args) did not finish in \(timeout) s") }
        p.waitUntilExit()
        try err.close()
        return (p.terminationStatus, String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    func testSecondJobOnTheDirectoryIsRefusedNamingTheHolder() throws {
        let dir = try tempDir()
        let fd = try holdLock(dir, pid: 4242)
        XCTAssertThrowsError(try RunDirectory.lock(dir)) { e in
            let s = "\(e)"
            XCTAssert(s.contains(dir) && s.contains("in use by another kdtrain job") && s.contains("pid 4242"), s)
            XCTAssertFalse(s.contains("\n"), s)
        }
        close(fd)
        // Free now: taken, the pid written, and held (another process cannot take it).
        try RunDirectory.lock(dir)
        XCTAssertEqual(try String(contentsOfFile: dir + "/.lock", encoding: .utf8), "\(getpid())\n")
        try RunDirectory.lock(dir)   // again in the same process: a no-op
        let probe = open(dir + "/.lock", O_RDWR)
        defer { close(probe) }
        XCTAssertNotEqual(flock(probe, LOCK_EX | LOCK_NB), 0, "the lock is not held")
    }

    func testTheBinaryRefusesARunDirectoryInUse() throws {
        let dir = try tempDir()
        let fd = try holdLock(dir)
        defer { close(fd) }
        let (status, stderr) = try run(["evaluate", "--run-dir", dir])
        XCTAssertNotEqual(status, 0)
        let lines = stderr.split(separator: "\n").filter { $0.hasPrefix("kdtrain: ") }
        XCTAssertEqual(lines.count, 1, stderr)
        XCTAssert(stderr.contains("run directory \(dir): in use by another kdtrain job (pid \(getpid())"), stderr)
    }

    func testOrphanTemporariesOfAKilledJobAreRemovedAtStart() throws {
        let dir = try tempDir()
        for sub in ["teacher", "student", "eval", "ablation-kd"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        let orphans = ["teacher/.step-00000050.safetensors.tmp-12345", "student/.averaged.safetensors.tmp-7",
                       ".config.json.tmp-99", "eval/.results.json.tmp-123-4056", "ablation-kd/.step-00000001.safetensors.tmp-1"]
        let kept = ["teacher/step-00000050.safetensors", "teacher/.step-00000050.safetensors.tmp-", "teacher/.x.tmp-12a",
                    "student/notes.tmp-12", "student/.tmp-12", "eval/results.json", ".lock"]
        for f in orphans + kept { FileManager.default.createFile(atPath: dir + "/" + f, contents: Data("x".utf8)) }
        // A link to another run's folder is not entered (that run may be live).
        let other = try tempDir()
        FileManager.default.createFile(atPath: other + "/.step-00000009.safetensors.tmp-5", contents: Data())
        try FileManager.default.createSymbolicLink(atPath: dir + "/linked", withDestinationPath: other)

        let removed = RunDirectory.removeOrphanTemporaries(in: dir)
        XCTAssertEqual(removed, orphans.map { dir + "/" + $0 }.sorted())
        for f in orphans { XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + f), f) }
        for f in kept { XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + f), f) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: other + "/.step-00000009.safetensors.tmp-5"))

        // Through the binary: Run.init removes them before the command's own work (evaluate then
        // fails, having no checkpoint).
        FileManager.default.createFile(atPath: dir + "/" + orphans[0], contents: Data("x".utf8))
        try FileManager.default.removeItem(atPath: dir + "/teacher/step-00000050.safetensors")   // not a real checkpoint
        let (status, stderr) = try run(["evaluate", "--run-dir", dir])
        XCTAssertNotEqual(status, 0)
        XCTAssert(stderr.contains("no checkpoints"), stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + orphans[0]))
    }

    func testUncreatableOrReadOnlyRunDirectoryIsOneLineNamingThePath() throws {
        let dir = try tempDir()
        // Below a regular file.
        FileManager.default.createFile(atPath: dir + "/file", contents: Data())
        XCTAssertThrowsError(try RunDirectory.create(dir + "/file/run", subdirectories: ["teacher"])) {
            XCTAssert("\($0)".contains("run directory \(dir)/file/run: \(dir)/file exists and is not a directory"), "\($0)")
        }
        XCTAssertThrowsError(try RunDirectory.create(dir + "/file")) {
            XCTAssert("\($0)".contains("\(dir)/file: exists and is not a directory"), "\($0)")
        }
        // Where nothing can be created (even by root).
        XCTAssertThrowsError(try RunDirectory.create("/proc/kdtrain-run-\(getpid())")) {
            XCTAssert("\($0)".hasPrefix("run directory /proc/kdtrain-run-\(getpid()): cannot create"), "\($0)")
        }
        // The binary says the same in one line instead of an NSError dump.
        let (status, stderr) = try run(["train-teacher", "--run-dir", dir + "/file/run"])
        XCTAssertNotEqual(status, 0)
        XCTAssertEqual(stderr.split(separator: "\n").count, 1, stderr)
        XCTAssert(stderr.hasPrefix("kdtrain: run directory \(dir)/file/run: \(dir)/file exists and is not a directory"), stderr)
        XCTAssertFalse(stderr.contains("NSCocoaErrorDomain"), stderr)
        // Read-only (permissions bind only a non-root user).
        let ro = dir + "/ro"
        try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true)
        chmod(ro, 0o555)
        defer { chmod(ro, 0o755) }
        if geteuid() != 0 {
            XCTAssertThrowsError(try RunDirectory.create(ro, subdirectories: ["teacher"])) {
                XCTAssert("\($0)".contains("run directory \(ro): not writable"), "\($0)")
            }
            XCTAssertThrowsError(try RunDirectory.create(ro + "/run")) {
                XCTAssert("\($0)".contains("cannot create \(ro)/run (Permission denied)"), "\($0)")
            }
        }
    }

    /// The layout resolves the defaults of distill (--teacher, then teacher.checkpoint, then the
    /// run's latest teacher) and evaluate (latest teacher, latest student, averaged student).
    func testLayoutResolvesTheDefaultCheckpoints() throws {
        let dir = try tempDir()
        let run = RunDirectory(dir)
        XCTAssertNil(run.teacherForDistillation(explicit: nil, configured: nil))
        XCTAssertEqual(run.defaultEvaluationCheckpoints(), [])
        try RunDirectory.create(dir, subdirectories: RunDirectory.subdirectories)
        for (role, steps) in [(Trainer.Role.teacher, [4, 12, 8]), (.student, [3, 6])] {
            for s in steps { try Data([0]).write(to: URL(fileURLWithPath: run.phase(role) + "/" + Checkpoint.fileName(step: s))) }
        }
        let t12 = dir + "/teacher/" + Checkpoint.fileName(step: 12), s6 = dir + "/student/" + Checkpoint.fileName(step: 6)
        XCTAssertEqual(run.teacherForDistillation(explicit: nil, configured: nil), t12)
        XCTAssertEqual(run.teacherForDistillation(explicit: nil, configured: "c.safetensors"), "c.safetensors")
        XCTAssertEqual(run.teacherForDistillation(explicit: "e.safetensors", configured: "c.safetensors"), "e.safetensors")
        XCTAssertEqual(run.defaultEvaluationCheckpoints(), [t12, s6])
        try Data([0]).write(to: URL(fileURLWithPath: run.averagedStudent))
        XCTAssertEqual(run.defaultEvaluationCheckpoints(), [t12, s6, dir + "/student/averaged.safetensors"])
        XCTAssertEqual([run.config, run.metrics, run.report, run.evalFile("results.json")],
                       [dir + "/config.json", dir + "/metrics.jsonl", dir + "/report.md", dir + "/eval/results.json"])
    }
}
