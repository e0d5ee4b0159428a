// Runs kdtrain-dist-harness under a real `mpirun` (or alone, as an MPI singleton) with a hard
// timeout, so a hang fails the test instead of hanging CI.
//
// The child environment drops every OMPI_*, PMIX_* and OPAL_* variable (a process that ever
// initialized MPI carries them, and an mpirun that inherits them fails) and allows mpirun to run
// as root. More ranks than cores need --oversubscribe, which `run` adds for ranks > 2.

import Foundation
import XCTest

struct HarnessRun {
    let status: Int32
    let stdout: String
    let stderr: String
    let seconds: Double
    let timedOut: Bool
    let command: String

    var output: String { stdout + stderr }

    /// Lines of stdout starting with `prefix` (the prefix removed).
    func lines(_ prefix: String) -> [String] {
        stdout.split(separator: "\n").filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }
}

enum MPIRunner {
    static let harnessName = "kdtrain-dist-harness"

    /// The harness binary next to the test bundle (.build/<config>/).
    static func harness(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        var dirs: [URL] = []
        if let exe = Bundle.main.executableURL { dirs.append(exe.deletingLastPathComponent()) }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            dirs.append(bundle.bundleURL.deletingLastPathComponent())
        }
        let repo = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        dirs.append(repo.appendingPathComponent(".build/release"))
        dirs.append(repo.appendingPathComponent(".build/debug"))
        for dir in dirs {
            var candidate = dir
            // Inside a macOS-style bundle the executable sits in Contents/MacOS.
            while candidate.path.contains(".xctest") { candidate = candidate.deletingLastPathComponent() }
            let path = candidate.appendingPathComponent(harnessName).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        XCTFail("\(harnessName) not found next to the tests (looked in \(dirs.map(\.path))); build it with `swift build -c release --product \(harnessName)`",
                file: file, line: line)
        throw XCTSkip("harness missing")
    }

    static func mpirun() -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return "/usr/bin/mpirun"
    }

    static func childEnvironment() -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") || key.hasPrefix("OPAL_"))
        }
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        return env
    }

    /// Runs the harness with `arguments` under `mpirun -n ranks` (ranks == nil: alone, a
    /// singleton). Kills the whole run after `timeout` seconds.
    static func run(ranks: Int?, _ arguments: [String], timeout: Double = 60,
                    file: StaticString = #filePath, line: UInt = #line) throws -> HarnessRun {
        let harness = try harness(file: file, line: line)
        let process = Process()
        if let ranks {
            process.executableURL = URL(fileURLWithPath: mpirun())
            process.arguments = ["-n", "\(ranks)"] + (ranks > 2 ? ["--oversubscribe"] : []) + [harness] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: harness)
            process.arguments = arguments
        }
        process.environment = childEnvironment()
        let command = ([process.executableURL!.path] + (process.arguments ?? [])).joined(separator: " ")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("disttests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("stdout"), errURL = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let start = Date()
        try process.run()
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                process.terminate()  // SIGTERM: mpirun forwards it and kills the ranks
                let grace = Date()
                while process.isRunning && Date().timeIntervalSince(grace) < 5 { usleep(50_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        try out.close()
        try err.close()
        let stdout = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
        let stderr = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
        return HarnessRun(status: process.terminationStatus, stdout: stdout, stderr: stderr,
                          seconds: seconds, timedOut: timedOut, command: command)
    }

    /// Runs and asserts success: exit 0, no timeout, and the line "OK <mode>" present.
    @discardableResult
    static func expectOK(ranks: Int?, _ arguments: [String], timeout: Double = 60,
                         file: StaticString = #filePath, line: UInt = #line) throws -> HarnessRun {
        let result = try run(ranks: ranks, arguments, timeout: timeout, file: file, line: line)
        XCTAssertFalse(result.timedOut, "timed out after \(timeout) s: \(result.command)\n\(result.output)", file: file, line: line)
        XCTAssertEqual(result.status, 0, "\(result.command) failed:\n\(result.output)", file: file, line: line)
        XCTAssertTrue(result.stdout.contains("OK \(arguments[0])"), "no 'OK \(arguments[0])' from \(result.command):\n\(result.output)",
                      file: file, line: line)
        return result
    }
}
