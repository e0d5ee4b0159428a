// Runs kdtrain-dist-harness under a real `mpirun` (or alone, as an MPI singleton) with a hard
// timeout, so a hang fails the test instead of hanging CI.
//
// The child environment drops every OMPI_*, PMIX_* and OPAL_* variable (a process that ever
// initialized MPI carries them, and an mpirun that inherits them fails) and allows mpirun to run
// as root. More ranks than cores need --oversubscribe, which `run` adds for ranks > 2.

import Foundation
import TestSupport
import XCTest

typealias HarnessRun = ProcessResult

enum MPIRunner {
    static let harnessName = "kdtrain-dist-harness"

    /// The harness binary next to the test bundle (.build/<config>/).
    static func harness(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        do { return try ProcessRunner.executable(harnessName) } catch {
            XCTFail("\(error)", file: file, line: line)
            throw XCTSkip("harness missing")
        }
    }

    /// Runs the harness with `arguments` under `mpirun -n ranks` (ranks == nil: alone, a
    /// singleton). Kills the whole run after `timeout` seconds.
    static func run(ranks: Int?, _ arguments: [String], timeout: Double = 60, environment: [String: String] = [:],
                    file: StaticString = #filePath, line: UInt = #line) throws -> HarnessRun {
        try ProcessRunner.run(try harness(file: file, line: line), ranks: ranks, arguments, timeout: timeout,
                              environment: environment)
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
