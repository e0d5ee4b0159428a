// The stall watchdog under real mpirun (Sources/Dist/Watchdog.swift): a rank that stops making
// progress (SIGSTOP, a sleep standing for a hung read) ends the job within a bounded time, non-zero,
// with one report naming the missing rank and the collective the others wait in; a waiting rank
// does not burn a core; without a stall the same steps complete.

import XCTest

final class MPIStallTests: XCTestCase {
    /// Stall timeout given to the harness (seconds).
    static let timeout = 3.0
    /// Bound on the whole run: start-up (~1-2 s), 5 steps, the 3 s deadline, a grace period of at
    /// most 3 s (shorter when every other rank reports), MPI_Abort. Generous for a loaded machine.
    static let bound = 30.0

    func assertStallReport(_ run: HarnessRun, contains report: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(run.timedOut, "the job hung instead of ending as stalled: \(run.command)\n\(run.output)", file: file, line: line)
        XCTAssertNotEqual(run.status, 0, "the job exited 0 although a rank stalled:\n\(run.output)", file: file, line: line)
        XCTAssertTrue(run.stderr.contains(report), "stderr lacks \"\(report)\":\n\(run.output)", file: file, line: line)
        XCTAssertEqual(run.stderr.components(separatedBy: "stalled: ").count - 1, 1, "want exactly one stall report:\n\(run.output)",
                       file: file, line: line)
        XCTAssertLessThan(run.seconds, Self.bound, "ending the stalled job took \(run.seconds) s", file: file, line: line)
        XCTAssertFalse(run.stdout.contains("OK stall"), "a stalled job reported success:\n\(run.output)", file: file, line: line)
    }

    func testStoppedRankEndsTwoRankJobNamingIt() throws {
        let run = try MPIRunner.run(ranks: 2, ["stall", "--rank", "1", "--step", "5", "--how", "stop",
                                               "--timeout", "\(Self.timeout)"], timeout: 60)
        assertStallReport(run, contains: "rank 0: stalled: rank 1 did not reach the gradient all-reduce of step 5 (collective #")
        XCTAssertTrue(run.stderr.contains("within 3 s (rank 0 reached it)"), run.output)
        // Not before the deadline: the report comes from the watchdog, not from some error.
        XCTAssertGreaterThan(run.seconds, Self.timeout, run.output)
        print("stopped rank 1 of 2: job ended after \(String(format: "%.1f", run.seconds)) s")
    }

    func testStoppedRankZeroOfThreeIsNamedByTheOthers() throws {
        // Rank 0 cannot report; ranks 1 and 2 exchange positions and rank 1 reports. Rank 1
        // arrives 1 s late, so rank 2 reaches the deadline first and rank 1 answers its report
        // (having waited 2 s of 3): the lowest such rank still reports, exactly once.
        let run = try MPIRunner.run(ranks: 3, ["stall", "--rank", "0", "--step", "3", "--how", "stop",
                                               "--timeout", "\(Self.timeout)", "--late", "1", "--late-ms", "1000"], timeout: 60)
        assertStallReport(run, contains: "rank 1: stalled: rank 0 did not reach the gradient all-reduce of step 3 (collective #")
        XCTAssertTrue(run.stderr.contains("(ranks 1, 2 reached it)"), run.output)
        print("stopped rank 0 of 3: job ended after \(String(format: "%.1f", run.seconds)) s")
    }

    func testSleepingRankEndsJobAndTheWaitingRankUsesLittleCPU() throws {
        let run = try MPIRunner.run(ranks: 2, ["stall", "--rank", "1", "--step", "4", "--how", "sleep",
                                               "--timeout", "\(Self.timeout)", "--sample", "1.5"], timeout: 60)
        assertStallReport(run, contains: "rank 0: stalled: rank 1 did not reach the gradient all-reduce of step 4")
        // The sleeping rank sampled rank 0's CPU time from /proc while rank 0 waited. A blocking
        // MPI wait spins at ~100% of a core; the watchdog's wait sleeps between polls (measured
        // ~1-3%). The bound is generous so a loaded machine cannot make it flaky.
        let lines = run.stdout.split(separator: "\n").filter { $0.hasPrefix("CPU waiting rank 0: ") }
        XCTAssertEqual(lines.count, 1, "no CPU sample of the waiting rank:\n\(run.output)")
        if let line = lines.first, let percent = Double(line.dropFirst("CPU waiting rank 0: ".count).prefix { $0 != "%" }) {
            XCTAssertLessThan(percent, 30, "the waiting rank burned \(percent)% of a core")
            print("waiting rank 0 used \(percent)% of a core while rank 1 slept")
        } else {
            XCTFail("unreadable CPU sample: \(lines)")
        }
    }

    func testWithoutAStallTheStepsComplete() throws {
        // The same steps, the same short deadline, nobody stalls: no false alarm, correct sums.
        try MPIRunner.expectOK(ranks: 2, ["stall", "--how", "none", "--steps", "40", "--timeout", "\(Self.timeout)"], timeout: 60)
    }
}
