// The harness command line itself, run alone (no mpirun, MPI is never initialized): --help lists
// every mode, and a usage error (unknown mode or option, a bad choice) is a non-zero exit with a
// message naming what was wrong.

import XCTest

final class HarnessCommandLineTests: XCTestCase {
    static let modes = ["info", "collectives", "equivalence", "sampler", "fail", "diverge", "stall", "bench"]

    func testHelpListsEveryMode() throws {
        let run = try MPIRunner.run(ranks: nil, ["--help"], timeout: 30)
        XCTAssertFalse(run.timedOut, "timed out: \(run.command)\n\(run.output)")
        XCTAssertEqual(run.status, 0, "\(run.command) failed:\n\(run.output)")
        for mode in Self.modes {
            XCTAssertTrue(run.stdout.contains("  \(mode) "), "--help does not list \(mode):\n\(run.output)")
        }
    }

    func testModeHelpListsItsOptionsWithDefaults() throws {
        let run = try MPIRunner.run(ranks: nil, ["equivalence", "--help"], timeout: 30)
        XCTAssertEqual(run.status, 0, "\(run.command) failed:\n\(run.output)")
        for option in ["--steps", "--global-batch", "--micro", "--overlap", "--bn"] {
            XCTAssertTrue(run.stdout.contains(option), "equivalence --help lacks \(option):\n\(run.output)")
        }
        XCTAssertTrue(run.stdout.contains("sync"), "equivalence --help does not show the --bn choices:\n\(run.output)")
        XCTAssertTrue(run.stdout.contains("default: 40"), "equivalence --help does not show --steps' default:\n\(run.output)")
    }

    func assertUsageError(_ arguments: [String], naming text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try MPIRunner.run(ranks: nil, arguments, timeout: 30, file: file, line: line)
        XCTAssertFalse(run.timedOut, "timed out: \(run.command)\n\(run.output)", file: file, line: line)
        XCTAssertNotEqual(run.status, 0, "\(run.command) exited 0:\n\(run.output)", file: file, line: line)
        XCTAssertTrue(run.stderr.contains(text), "stderr of \(run.command) does not name \(text):\n\(run.output)", file: file, line: line)
        XCTAssertFalse(run.stdout.contains("OK "), "\(run.command) ran a check:\n\(run.output)", file: file, line: line)
    }

    func testUnknownOptionIsAUsageErrorNamingIt() throws {
        try assertUsageError(["equivalence", "--stepz", "3"], naming: "--stepz")
    }

    func testBadValuesAreUsageErrorsNamingTheOption() throws {
        try assertUsageError(["equivalence", "--steps", "many"], naming: "--steps")
        try assertUsageError(["equivalence", "--bn", "global"], naming: "--bn")
        try assertUsageError(["stall", "--how", "crash"], naming: "--how")
        try assertUsageError(["fail", "--kind", "mpi"], naming: "--kind")
    }

    func testUnknownOrMissingModeIsAUsageError() throws {
        try assertUsageError(["colectives"], naming: "colectives")
        try assertUsageError([], naming: "choose a mode")
    }
}
