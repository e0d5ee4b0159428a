// Resuming after a configuration change that removes the stored place in the epoch is refused
// with one line naming the checkpoint and optim.batch, not a trap in the sampler.
import Foundation
import XCTest
import TestSupport

final class ResumeChangeTests: XCTestCase {
    func testResumeWithALargerBatchIsRefusedNamingTheCheckpoint() throws {
        let kdtrain = try ProcessRunner.executable("kdtrain")
        let dir = try temporaryRunDirectory(self)
        // 192 images / batch 16 = 12 steps an epoch; half an epoch stops at step 6 of it.
        let first = try ProcessRunner.run(kdtrain, ranks: nil, ["train-teacher", "--run-dir", dir, "--set", "teacher.epochs=0.5"] + tinyRun, timeout: 120)
        XCTAssertEqual(first.status, 0, first.output)
        // Batch 64 leaves 3 steps an epoch: step 6 of an epoch no longer exists.
        let again = try ProcessRunner.run(kdtrain, ranks: nil, ["train-teacher", "--run-dir", dir, "--resume", "auto", "--set", "teacher.epochs=3"]
                                          + tinyRun + ["--set", "optim.batch=64"], timeout: 120)
        XCTAssertEqual(again.status, 1, again.output)
        XCTAssert(again.output.contains("step-00000006.safetensors: it stopped at step 6 of an epoch, but an epoch of this run has 3 steps"), again.output)
        XCTAssertFalse(again.output.contains("Fatal error"), again.output)
    }
}
