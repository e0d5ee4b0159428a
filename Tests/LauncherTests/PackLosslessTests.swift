// `kdtrain pack bin --lossless`: a verification set shared as a .bin evaluates exactly like its
// source (PNG keeps every pixel); the JPEG default does not.
import Evaluation
import FaceData
import Foundation
import Model
import Pipeline
import TestSupport
import XCTest

final class PackLosslessTests: XCTestCase {
    var kdtrain: String { get throws { try ProcessRunner.executable("kdtrain") } }

    func testLosslessBinEvaluatesExactlyLikeItsSource() throws {
        let dir = try temporaryRunDirectory(self)
        let t = try ProcessRunner.run(try kdtrain, ranks: nil, ["train-teacher", "--run-dir", dir + "/run", "--quiet", "--set", "teacher.epochs=1"] + tinyRun, timeout: 120)
        XCTAssertEqual(t.status, 0, t.output)
        let ck = try XCTUnwrap(Checkpoint.list(in: dir + "/run/teacher").last)
        for (name, extra) in [("png", ["--lossless"]), ("jpeg", [])] {
            let r = try ProcessRunner.run(try kdtrain, ranks: nil, ["pack", "bin", "--pairs", tinyEval, "--output", "\(dir)/\(name).bin"] + extra, timeout: 60)
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssert(r.stdout.contains(name == "png" ? "PNG (lossless)" : "JPEG quality 95"), r.output)
        }
        // Pixel for pixel the source's images, stored as PNG.
        let source = try DataSource(parsing: tinyEval).pairSet()
        let png = try BinPairSet(path: dir + "/png.bin")
        XCTAssertEqual(png.issame, source.issame)
        for j in 0..<(2 * source.pairCount) {
            XCTAssertEqual(Array(png.encoded[j].prefix(4)), [0x89, 0x50, 0x4E, 0x47], "image \(j) is not PNG")
            XCTAssertEqual(try png.image(j), try source.image(j), "image \(j)")
        }
        func results(_ data: String, _ run: String) throws -> [EvaluationResult] {
            let r = try ProcessRunner.run(try kdtrain, ranks: nil, ["evaluate", "--run-dir", "\(dir)/\(run)", "--checkpoints", ck, "--quiet"] + tinyRun
                                          + ["--set", "data.eval=\(data)", "--set", "eval.factors=[1,4]", "--set", "eval.pairDistances=true"], timeout: 120)
            XCTAssertEqual(r.status, 0, r.output)
            return try EvaluationReport.readJSON(from: URL(fileURLWithPath: "\(dir)/\(run)/eval/evaluate.json")).results
        }
        let a = try results(tinyEval, "e-source"), b = try results("bin:\(dir)/png.bin", "e-png"), c = try results("bin:\(dir)/jpeg.bin", "e-jpeg")
        XCTAssertEqual(a.count, 2)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.pairDistances, y.pairDistances, "x\(x.degradationFactor)")
            XCTAssertEqual(x.accuracy, y.accuracy)
            XCTAssertEqual(x.foldAccuracies, y.foldAccuracies)
            XCTAssertEqual(x.foldThresholds, y.foldThresholds)
            XCTAssertEqual(x.auc, y.auc)
        }
        // JPEG at quality 95 moves the distances (which is why --lossless exists).
        XCTAssertNotEqual(a[0].pairDistances, c[0].pairDistances)
        // --quality is JPEG's: refused with --lossless, naming it.
        let both = try ProcessRunner.run(try kdtrain, ranks: nil, ["pack", "bin", "--pairs", tinyEval, "--output", dir + "/x.bin", "--lossless", "--quality", "90"], timeout: 60)
        XCTAssertNotEqual(both.status, 0)
        XCTAssert(both.stderr.contains("--quality"), both.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.bin"))
    }
}
