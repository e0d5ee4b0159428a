// Run configuration hardening: wrong types and huge values named, stall timeout bounds, unknown keys.
import Foundation
import XCTest
import Pipeline

/// Options are untrusted: a wrong type names the option and the expected type, a huge value is
/// one `problems` line (never a trap in a later Float -> Int conversion or product), and an
/// unknown key suggests the nearest known one.
final class RunConfigHardeningTests: XCTestCase {
    func loadError(_ sets: [String], file: String? = nil) -> String? {
        do { _ = try RunConfig.load(file: file, overrides: sets); return nil } catch { return "\(error)" }
    }

    func problems(_ sets: [String], worldSize: Int = 1) throws -> [String] {
        try RunConfig.load(file: nil, overrides: sets).problems(worldSize: worldSize)
    }

    func testWrongTypesNameTheOptionAndTheExpectedType() throws {
        let cases: [(String, [String])] = [
            ("optim.batch=16.5", ["optim.batch", "expected an integer", "16.5"]),
            ("optim.batch=1e30", ["optim.batch", "expected an integer"]),
            ("optim.batch=true", ["optim.batch", "expected an integer", "true"]),
            ("seed=-1", ["seed", "expected a non-negative integer", "-1"]),
            ("seed=0.5", ["seed", "expected a non-negative integer"]),
            ("teacher.epochs=abc", ["teacher.epochs", "expected a number", "'abc'"]),
            ("teacher.epochs=1e300", ["teacher.epochs", "expected a number"]),
            ("data.flip=1", ["data.flip", "expected true or false"]),
            ("eval.factors=2", ["eval.factors", "expected an array of numbers"]),
            ("eval.factors=[1,\"x\"]", ["eval.factors[1]", "expected a number"]),
            ("degrade.jpegQuality=[30,90.5]", ["degrade.jpegQuality[1]", "expected an integer"]),
            ("loss.stages=[0.5]", ["loss.stages[0]", "expected an integer"]),
            ("optim=3", ["'optim' is a section"]),
        ]
        for (set, mentions) in cases {
            guard let e = loadError([set]) else { XCTFail("\(set) accepted"); continue }
            XCTAssert(e.hasPrefix("--set \(set): "), "does not name the --set: \(e)")
            XCTAssertFalse(e.contains("\n"), e)
            XCTAssertFalse(e.contains("not valid JSON"), e)
            for m in mentions { XCTAssert(e.contains(m), "'\(m)' missing from: \(e)") }
        }
        // The same from a configuration file names the file.
        let path = NSTemporaryDirectory() + "kdtrain-cfg-\(UUID().uuidString).json"
        try Data(#"{"optim": {"batch": 16.5}}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let e = loadError([], file: path) ?? ""
        XCTAssert(e.hasPrefix(path + ": ") && e.contains("optim.batch: expected an integer, got 16.5"), e)
        // Values of the right type still load, string options take the text as it is, null clears an optional.
        let c = try RunConfig.load(file: nil, overrides: ["optim.batch=32", "seed=18446744073709551615", "teacher.epochs=3",
                                                         "head.kind=cosface", "data.train=synthetic:ids=10",
                                                         "teacher.checkpoint=a.safetensors", "student.checkpoint=null",
                                                         "loss.stages=[0,1]"])
        XCTAssertEqual(c.optim.batch, 32); XCTAssertEqual(c.seed, .max); XCTAssertEqual(c.teacher.epochs, 3)
        XCTAssertEqual(c.head.kind, .cosface); XCTAssertEqual(c.teacher.checkpoint, "a.safetensors")
        XCTAssertNil(c.student.checkpoint); XCTAssertEqual(c.loss.stages, [0, 1])
    }

    func testHugeValuesAreProblemsNotTraps() throws {
        let cases: [(String, String)] = [
            ("teacher.epochs=1e30", "teacher.epochs"), ("student.epochs=1e30", "student.epochs"),
            ("dist.bucketMB=1e30", "dist.bucketMB"), ("dist.firstBucketKB=1e30", "dist.firstBucketKB"),
            ("eval.factors=[1e30]", "eval.factors"), ("eval.factors=[1000]", "eval.factors"), ("eval.factors=[1.5]", "eval.factors"),
            ("degrade.trainFactors=[1e30]", "degrade.trainFactors"), ("degrade.blurSigma=[1,1e30]", "degrade.blurSigma"),
            ("degrade.noiseSigma=[1,1e30]", "degrade.noiseSigma"),
            ("data.prefetch=1000000", "data.prefetch"), ("data.threads=1000000", "data.threads"),
            ("data.maxShift=9223372036854775807", "data.maxShift"), ("head.s=1e30", "head.s"),
            ("optim.warmupSteps=9223372036854775807", "optim.warmupSteps"), ("optim.batch=9223372036854775807", "optim.batch"),
            ("optim.power=0", "optim.power"), ("optim.gamma=1e30", "optim.gamma"),
            ("logEvery=9223372036854775807", "logEvery"), ("checkpoints.every=9223372036854775807", "checkpoints.every"),
            ("checkpoints.keep=9223372036854775807", "checkpoints.keep"), ("checkpoints.bnBatches=9223372036854775807", "checkpoints.bnBatches"),
            ("dist.checkEvery=9223372036854775807", "dist.checkEvery"), ("eval.batch=9223372036854775807", "eval.batch"),
            ("guards.maxSkippedSteps=9223372036854775807", "guards.maxSkippedSteps"),
        ]
        for (set, option) in cases {
            let p = try problems([set])
            XCTAssert(p.contains { $0.hasPrefix(option) }, "\(set): \(p)")
        }
        // Before the bound, ranks x accumulate overflowed (a trap) with two ranks.
        let p = try problems(["optim.accumulate=9223372036854775807"], worldSize: 2)
        XCTAssert(p.contains { $0.hasPrefix("optim.accumulate") }, "\(p)")
        XCTAssertEqual(try problems([]), [])
        XCTAssertEqual(try problems(["teacher.epochs=100000", "dist.bucketMB=4096", "eval.factors=[1,64]", "data.prefetch=64", "head.s=64"]), [])
    }

    func testStallTimeoutIsZeroOrBoundedSeconds() throws {
        for bad in ["dist.stallTimeout=-1", "dist.stallTimeout=0.5", "dist.stallTimeout=1e30", "dist.stallTimeout=604801"] {
            let p = try problems([bad])
            XCTAssertEqual(p.count, 1, "\(bad): \(p)")
            XCTAssert(p.first?.hasPrefix("dist.stallTimeout") == true && p.first?.contains("0 (off) or seconds in 1...604800") == true,
                      "\(bad): \(p)")
        }
        XCTAssert((loadError(["dist.stallTimeout=soon"]) ?? "").contains("dist.stallTimeout"))
        for good in ["dist.stallTimeout=0", "dist.stallTimeout=1", "dist.stallTimeout=3", "dist.stallTimeout=604800"] {
            XCTAssertEqual(try problems([good]), [], good)
        }
        XCTAssertEqual(RunConfig().dist.stallTimeout, 600)
    }

    func testUnknownKeySuggestsTheNearestKnownOneOptionalKeysIncluded() {
        let e = loadError(["teacher.checkpont=x"]) ?? ""
        XCTAssertEqual(e, "--set teacher.checkpont=x: unknown option 'teacher.checkpont' (did you mean teacher.checkpoint?)")
        XCTAssert((loadError(["loss.stage=[0]"]) ?? "").contains("did you mean loss.stages?"))
        XCTAssert((loadError(["optim.bacth=8"]) ?? "").contains("did you mean optim.batch?"))
        XCTAssert((loadError(["teacher.epoch=2"]) ?? "").contains("did you mean teacher.epochs?"))
        // Every key of every section is considered: a key in the wrong section, or without one.
        XCTAssert((loadError(["checkpont=x"]) ?? "").contains("did you mean student.checkpoint or teacher.checkpoint?"))
        XCTAssert((loadError(["optim.temperature=2"]) ?? "").contains("did you mean loss.temperature?"))
        // Nothing close: the known keys of that section, optional ones among them.
        let far = loadError(["teacher.zzzzzzzzzz=1"]) ?? ""
        XCTAssert(far.contains("known: teacher.checkpoint, teacher.epochs, teacher.lr, teacher.preset"), far)
    }
}
