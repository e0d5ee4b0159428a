// Data sources are opened and checked before any training: a verification folder too small for
// identity-disjoint folds stops the job at once, not after the teacher and student are trained.
import Foundation
import XCTest
import TestSupport

final class DataCheckedFirstTests: XCTestCase {
    func testTooSmallVerificationFolderFailsBeforeTraining() throws {
        let kdtrain = try ProcessRunner.executable("kdtrain")
        let dir = try temporaryRunDirectory(self)
        let faces = dir + "/faces"
        for id in 0..<10 {
            try FileManager.default.createDirectory(atPath: "\(faces)/p\(id)", withIntermediateDirectories: true)
            for k in 0..<2 {
                var pgm = Array("P5 16 16 255\n".utf8)
                pgm += (0..<256).map { UInt8(($0 * (id + 3) + k * 17) % 256) }
                try Data(pgm).write(to: URL(fileURLWithPath: "\(faces)/p\(id)/\(k).pgm"))
            }
        }
        for cmd in [["run"], ["ablation"]] {
            let r = try ProcessRunner.run(kdtrain, ranks: nil, cmd + ["--run-dir", dir + "/run-\(cmd[0])"] + tinyRun
                                          + ["--set", "data.eval=folder:\(faces);pairs=20"], timeout: 120)
            XCTAssertEqual(r.status, 1, r.output)
            XCTAssertFalse(r.output.contains("teacher epoch"), "trained before checking the data:\n\(r.output)")
            XCTAssert(r.output.contains(faces), r.output)
        }
        let bogus = try ProcessRunner.run(kdtrain, ranks: nil, ["run", "--run-dir", dir + "/bogus"] + tinyRun + ["--set", "data.eval=bogus:x"], timeout: 60)
        XCTAssertEqual(bogus.status, 1, bogus.output)
        XCTAssertFalse(bogus.output.contains("teacher epoch"), bogus.output)
    }
}
