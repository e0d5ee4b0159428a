// Failure handling under real mpirun: one rank's error ends the whole job, non-zero, with that
// rank's message, while the other ranks wait in a collective; a replica divergence names the rank.

import XCTest

final class MPIFailureTests: XCTestCase {
    /// Bound on the time from start to the end of the aborted job (start ~1 s, the failing rank
    /// waits 0.3 s inside the loop; MPI_Abort takes the rest down within a second or two).
    static let bound = 20.0

    func assertAborted(_ run: HarnessRun, message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(run.timedOut, "the job hung instead of aborting: \(run.command)\n\(run.output)", file: file, line: line)
        XCTAssertNotEqual(run.status, 0, "the job exited 0 although a rank failed:\n\(run.output)", file: file, line: line)
        XCTAssertTrue(run.stderr.contains(message), "stderr lacks \"\(message)\":\n\(run.output)", file: file, line: line)
        XCTAssertLessThan(run.seconds, Self.bound, "abort took \(run.seconds) s", file: file, line: line)
    }

    func testThrowingRankAbortsTwoRankJobWithItsMessage() throws {
        let run = try MPIRunner.run(ranks: 2, ["fail", "--rank", "1", "--kind", "swift"], timeout: 60)
        assertAborted(run, message: "rank 1: cannot open /data/faces/train.rec: No such file or directory")
    }

    func testMPIErrorOnOneOfFourRanksAbortsWithMPIErrorString() throws {
        let run = try MPIRunner.run(ranks: 4, ["fail", "--rank", "2", "--kind", "truncate"], timeout: 60)
        assertAborted(run, message: "rank 2: MPI_Bcast failed (MPI error")
        XCTAssertTrue(run.stderr.contains("MPI_ERR_TRUNCATE"), "MPI's error string missing:\n\(run.output)")
    }

    func testReplicaDivergenceIsDetectedAndNamesTheRank() throws {
        let run = try MPIRunner.expectOK(ranks: 4, ["diverge", "--rank", "2"], timeout: 60)
        XCTAssertTrue(run.stdout.contains("replica divergence in parameters after step 7: rank 2 differs from rank 0"), run.output)
    }
}
