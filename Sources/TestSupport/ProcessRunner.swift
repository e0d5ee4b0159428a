// Running kdtrain's executables from tests: alone (an MPI singleton) or under a real `mpirun`,
// always with a hard timeout so a hang fails a test instead of hanging CI.
//
// The child environment drops every OMPI_*, PMIX_* and OPAL_* variable (a process that ever
// initialized MPI carries them, and an mpirun that inherits them fails) and allows mpirun to run
// as root. More ranks than cores need --oversubscribe, which is added for ranks > 2.
import Foundation

/// The outcome of one child process.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
    public let seconds: Double
    public let timedOut: Bool
    public let command: String
    public var output: String { stdout + stderr }
    /// Lines of stdout starting with `prefix` (the prefix removed).
    public func lines(_ prefix: String) -> [String] {
        stdout.split(separator: "\n").filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }
}

public struct ProcessRunnerError: Error, CustomStringConvertible {
    public let description: String
}

/// A started child process with its output captured to files.
public final class LaunchedProcess {
    public let process: Process
    public let command: String
    let dir: URL, outURL: URL, errURL: URL
    let out: FileHandle, err: FileHandle
    let start = Date()

    init(_ process: Process) throws {
        self.process = process
        command = ([process.executableURL!.path] + (process.arguments ?? [])).joined(separator: " ")
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("kdtrain-proc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        outURL = dir.appendingPathComponent("stdout"); errURL = dir.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        out = try FileHandle(forWritingTo: outURL); err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var isRunning: Bool { process.isRunning }
    /// Stdout so far.
    public var currentOutput: String { String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self) }
    public func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Polls `condition` until true, the process exits, or `timeout` seconds pass. Returns whether it became true.
    public func waitFor(timeout: Double, _ condition: () -> Bool) -> Bool {
        let t0 = Date()
        while Date().timeIntervalSince(t0) < timeout {
            if condition() { return true }
            if !process.isRunning { return condition() }
            usleep(50_000)
        }
        return false
    }

    /// Waits for exit; kills the child (SIGTERM, then SIGKILL after 5 s) past `timeout` seconds from start.
    public func finish(timeout: Double) -> ProcessResult {
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                process.terminate()   // mpirun forwards SIGTERM to the ranks
                let grace = Date()
                while process.isRunning && Date().timeIntervalSince(grace) < 5 { usleep(50_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        try? out.close(); try? err.close()
        let stdout = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
        let stderr = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
        try? FileManager.default.removeItem(at: dir)
        return ProcessResult(status: process.terminationStatus, stdout: stdout, stderr: stderr,
                             seconds: Date().timeIntervalSince(start), timedOut: timedOut, command: command)
    }
}

public enum ProcessRunner {
    /// The repository root, from this file's location (Sources/TestSupport/ProcessRunner.swift).
    public static var repositoryRoot: URL {
        URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// An executable product built next to the test bundle (.build/<config>/NAME).
    public static func executable(_ name: String) throws -> String {
        var dirs: [URL] = []
        if let exe = Bundle.main.executableURL { dirs.append(exe.deletingLastPathComponent()) }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            dirs.append(bundle.bundleURL.deletingLastPathComponent())
        }
        dirs.append(repositoryRoot.appendingPathComponent(".build/release"))
        dirs.append(repositoryRoot.appendingPathComponent(".build/debug"))
        for dir in dirs {
            var candidate = dir
            while candidate.path.contains(".xctest") { candidate = candidate.deletingLastPathComponent() }
            let path = candidate.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw ProcessRunnerError(description: "\(name) not found next to the tests (looked in \(dirs.map(\.path))); build it with `swift build -c release --product \(name)`")
    }

    public static func mpirun() -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return "/usr/bin/mpirun"
    }

    public static func childEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") || key.hasPrefix("OPAL_"))
        }
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Starts `executable arguments` under `mpirun -n ranks` (nil: alone).
    public static func launch(_ executable: String, ranks: Int?, _ arguments: [String],
                              environment: [String: String] = [:], directory: String? = nil) throws -> LaunchedProcess {
        let process = Process()
        if let ranks {
            process.executableURL = URL(fileURLWithPath: mpirun())
            process.arguments = ["-n", "\(ranks)"] + (ranks > 2 ? ["--oversubscribe"] : []) + [executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        process.environment = childEnvironment(environment)
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        return try LaunchedProcess(process)
    }

    /// Runs to completion (or `timeout`).
    public static func run(_ executable: String, ranks: Int?, _ arguments: [String], timeout: Double = 60,
                           environment: [String: String] = [:], directory: String? = nil) throws -> ProcessResult {
        try launch(executable, ranks: ranks, arguments, environment: environment, directory: directory).finish(timeout: timeout)
    }
}
