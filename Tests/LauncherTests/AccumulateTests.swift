// Gradient accumulation under a real `mpirun -n 2` with the overlapped all-reduce: the 1/k of the
// micro-batch mean is applied after the all-reduce completes. Scaling the gradients before it (as
// kdtrain once did, while buckets of the last micro-batch were in flight in MPI) made the replicas
// diverge within a few steps; the replica check every step catches any such race.
import Foundation
import XCTest
import Model
import Pipeline
import TestSupport

final class AccumulateTests: XCTestCase {
    func testTwoRanksWithTwoMicroBatchesStayIdentical() throws {
        let kdtrain = try ProcessRunner.executable("kdtrain")
        let base = try temporaryRunDirectory(self)
        let args = tinyRun + ["--set", "teacher.epochs=1", "--set", "student.epochs=1", "--set", "optim.accumulate=2",
                              "--set", "dist.checkEvery=1", "--set", "dist.overlap=true"]
        let two = try ProcessRunner.run(kdtrain, ranks: 2, ["run", "--run-dir", base + "/two"] + args, timeout: 300)
        XCTAssertFalse(two.output.contains("replica divergence"), two.output)   // (once, by rank 0, if it ever happens)
        XCTAssertEqual(two.status, 0, two.output)
        // The same job on one rank (the same global batch: 2 micro-batches of 8 images instead of 2 of
        // 4 on each rank) also ends with finite weights.
        let one = try ProcessRunner.run(kdtrain, ranks: nil, ["run", "--run-dir", base + "/one"] + args, timeout: 300)
        XCTAssertEqual(one.status, 0, one.output)
        for dir in [base + "/two", base + "/one"] {
            let last = Checkpoint.list(in: dir + "/student").last!
            XCTAssert(try parameters(last).values.allSatisfy { $0.allSatisfy(\.isFinite) }, last)
        }
    }
}
