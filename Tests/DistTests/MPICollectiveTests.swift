// Collectives under real mpirun: odd sizes, empty buffers and empty gather contributions,
// broadcast from the first and last rank, metric reductions, evaluation gather order, and the
// bucketed overlapped reducer against one blocking all-reduce of the whole buffer (bitwise on
// exactly representable data and on 2 ranks, within 4e-7 on random data on 4 ranks; 176
// configurations of buffer size, bucket sizes, overlap, micro-batches and layer boundaries).

import XCTest

final class MPICollectiveTests: XCTestCase {
    func testSingletonWorldOfOneUsesSameCodePath() throws {
        let run = try MPIRunner.expectOK(ranks: nil, ["collectives"], timeout: 60)
        XCTAssertTrue(run.stdout.contains("OK info size=1 localSize=1"), run.output)
        XCTAssertTrue(run.stdout.contains("OK reducer configurations="), run.output)
    }

    func testCollectivesAndReducerTwoRanks() throws {
        let run = try MPIRunner.expectOK(ranks: 2, ["collectives"], timeout: 90)
        XCTAssertTrue(run.stdout.contains("OK info size=2 localSize=2"), run.output)
        XCTAssertTrue(run.stdout.contains("threads=1,1"), "2 ranks on one node should get cores/2 threads each (2 cores here): \(run.output)")
        XCTAssertTrue(run.stdout.contains("OK reducer configurations="), run.output)
    }

    func testCollectivesAndReducerFourRanksOversubscribed() throws {
        let run = try MPIRunner.expectOK(ranks: 4, ["collectives"], timeout: 120)
        XCTAssertTrue(run.stdout.contains("OK info size=4 localSize=4"), run.output)
        XCTAssertTrue(run.stdout.contains("OK reducer configurations="), run.output)
    }

    func testOpenBLASThreadsOverrideReachesRanks() throws {
        // OPENBLAS_NUM_THREADS set by the user wins over cores / local ranks.
        setenv("OPENBLAS_NUM_THREADS", "3", 1)
        defer { unsetenv("OPENBLAS_NUM_THREADS") }
        let run = try MPIRunner.expectOK(ranks: 2, ["info"], timeout: 60)
        XCTAssertTrue(run.stdout.contains("threads=3,3"), run.output)
    }
}
