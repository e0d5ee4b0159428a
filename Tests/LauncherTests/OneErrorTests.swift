// An error that every rank meets alike (a bad option, a bad data source, a usage error) is printed
// once, without OpenMPI's MPI_ABORT banner, and a job refused over its input leaves no run
// directory behind (but never removes one that existed before it).
import Foundation
import XCTest
import TestSupport

final class OneErrorTests: XCTestCase {
    func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    func testBadOptionUnderTwoRanksIsPrintedOnceWithoutAbort() throws {
        let kdtrain = try ProcessRunner.executable("kdtrain")
        let dir = try temporaryRunDirectory(self) + "/run"
        let r = try ProcessRunner.run(kdtrain, ranks: 2, ["train-teacher", "--run-dir", dir] + tinyRun + ["--set", "optim.batch=7"], timeout: 60)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertEqual(count("optim.batch 7 is not divisible", in: r.output), 1, r.output)
        XCTAssertFalse(r.output.contains("MPI_ABORT was invoked"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "a refused job created \(dir)")
    }

    func testMissingTrainingFolderUnderTwoRanksIsPrintedOnceAndLeavesNoRunDirectory() throws {
        let kdtrain = try ProcessRunner.executable("kdtrain")
        let dir = try temporaryRunDirectory(self) + "/run"
        let r = try ProcessRunner.run(kdtrain, ranks: 2, ["run", "--run-dir", dir] + tinyRun + ["--set", "data.train=folder:/nonexistent/faces"], timeout: 60)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertEqual(count("/nonexistent/faces: no such folder", in: r.output), 1, r.output)
        XCTAssertFalse(r.output.contains("MPI_ABORT was invoked"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "a job refused over its data left \(dir)")
    }

    func testUsageErrorUnderTwoRanksIsPrintedOnce() throws {
        let kdtrain = try ProcessRunner.executable("kdtrain")
        let r = try ProcessRunner.run(kdtrain, ranks: 2, ["run", "--no-such-option"], timeout: 60)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertEqual(count("Unknown option '--no-such-option'", in: r.output), 1, r.output)
    }

    /// A strict folder with a truncated image: one line naming the image; the fresh run directory is
    /// removed, while a run directory that existed before the job keeps what it held.
    func testFailedStrictRunRemovesOnlyTheDirectoryItCreated() throws {
        let kdtrain = try ProcessRunner.executable("kdtrain")
        let base = try temporaryRunDirectory(self)
        let faces = base + "/faces"
        for id in 0..<3 {
            try FileManager.default.createDirectory(atPath: "\(faces)/p\(id)", withIntermediateDirectories: true)
            for k in 0..<2 {
                var pgm = Array("P5 16 16 255\n".utf8)
                pgm += (0..<256).map { UInt8(($0 * (id + 3) + k * 17) % 256) }
                try Data(pgm).write(to: URL(fileURLWithPath: "\(faces)/p\(id)/\(k).pgm"))
            }
        }
        let bad = "\(faces)/p1/2.pgm"
        try Data("P5 16 16 255\n\u{1}\u{2}".utf8).write(to: URL(fileURLWithPath: bad))
        let fresh = base + "/fresh"
        let r = try ProcessRunner.run(kdtrain, ranks: nil, ["run", "--run-dir", fresh] + tinyRun + ["--set", "data.train=folder:\(faces);strict"], timeout: 60)
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertEqual(count(bad, in: r.output), 1, r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh), "the failed strict run left \(fresh)")

        let existing = base + "/existing"
        try FileManager.default.createDirectory(atPath: existing, withIntermediateDirectories: true)
        try Data("notes".utf8).write(to: URL(fileURLWithPath: existing + "/notes.txt"))
        let again = try ProcessRunner.run(kdtrain, ranks: nil, ["run", "--run-dir", existing] + tinyRun + ["--set", "data.train=folder:\(faces);strict"], timeout: 60)
        XCTAssertEqual(again.status, 1, again.output)
        XCTAssertEqual(FileManager.default.contents(atPath: existing + "/notes.txt"), Data("notes".utf8), "an existing run directory lost its files")
    }
}
