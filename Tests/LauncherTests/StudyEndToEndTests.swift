// The multi-seed studies end to end: `kdtrain ablation --seeds 2` under a real `mpirun -n 2`, and
// `kdtrain compare` on one rank, on tiny settings.
import Foundation
import XCTest
import Evaluation
import TestSupport

final class StudyEndToEndTests: XCTestCase {
    var kdtrain: String { get throws { try ProcessRunner.executable("kdtrain") } }
    let schedule = ["--set", "teacher.epochs=2", "--set", "student.epochs=1", "--set", "checkpoints.every=0",
                    "--set", "checkpoints.average=1", "--set", "loss.balanceEvery=3"]

    func rows(_ path: String) throws -> [EvaluationResult] {
        try EvaluationReport.readJSON(from: URL(fileURLWithPath: path)).results
    }

    func testAblationOverTwoSeedsOnTwoRanks() throws {
        let dir = try temporaryRunDirectory(self)
        let r = try ProcessRunner.run(try kdtrain, ranks: 2, ["ablation", "--seeds", "2", "--run-dir", dir] + schedule + tinyRun, timeout: 400)
        XCTAssertFalse(r.timedOut, r.output)
        XCTAssertEqual(r.status, 0, r.output)
        // Means over seeds: the teacher once, four students x four factors with their seed spread.
        let agg = try rows(dir + "/eval/ablation.json")
        XCTAssertEqual(agg.count, 20)
        let students = agg.filter { $0.model != "teacher (HR only)" }
        XCTAssertEqual(Set(students.map(\.model)).count, 4)
        XCTAssert(students.allSatisfy { $0.seeds == 2 && $0.seedStd != nil }, "\(students)")
        // Every seed's rows keep their seed and fold accuracies.
        let each = try rows(dir + "/eval/ablation-seeds.json")
        XCTAssertEqual(each.count, 4 + 2 * 16)
        XCTAssertEqual(Set(each.compactMap(\.seed)), [1, 2])
        XCTAssert(each.allSatisfy { $0.foldAccuracies?.count == 10 })
        for slug in ["basic", "kd", "att", "kd-att"] { for s in [1, 2] {
            XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/ablation/seed-\(s)/\(slug)").isEmpty, "\(slug) seed \(s)")
        } }
        let report = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        for s in ["paired t-test over seeds x folds", "(a) every distilled row", "(b) + logit KD + attention KD >= each alone",
                  "Loss balance", "attentionSimilarity", "eval/ablation-seeds.json", "seeds 1...2"] {
            XCTAssert(report.contains(s), "report.md lacks '\(s)':\n\(report)")
        }
        let svg = try String(contentsOfFile: dir + "/eval/ablation.svg", encoding: .utf8)
        XCTAssert(svg.contains("error-bar"))
        let metrics = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        XCTAssert(metrics.contains("\"event\":\"loss_balance\""))
        // Every student record names its variant and seed; each phase has a start and an end event.
        let records = metrics.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let studentRows = records.filter { $0["phase"] as? String == "student" && $0["loss"] != nil }
        XCTAssertFalse(studentRows.isEmpty)
        XCTAssert(studentRows.allSatisfy { $0["variant"] is String }, "a student row without its variant")
        XCTAssertEqual(Set(studentRows.compactMap { $0["variant"] as? String }),
                       Set(["basic", "kd", "att", "kd-att"].flatMap { v in [1, 2].map { "\(v) seed \($0)" } }))
        XCTAssertEqual(records.filter { $0["event"] as? String == "phase_start" }.count, 9)   // the teacher and 8 students
        XCTAssertEqual(records.filter { $0["event"] as? String == "phase_end" && $0["outcome"] as? String == "completed" }.count, 9)
        // A second ablation in the same run directory is refused, not written over the first.
        let again = try ProcessRunner.run(try kdtrain, ranks: nil, ["ablation", "--run-dir", dir] + schedule + tinyRun + ["--set", "teacher.checkpoint=" + (try FileManager.default.contentsOfDirectory(atPath: dir + "/teacher").sorted().map { dir + "/teacher/" + $0 }.last!)], timeout: 120)
        XCTAssertNotEqual(again.status, 0)
        XCTAssert(again.output.contains("already holds checkpoints"), again.output)
    }

    func testCompareRowsFromOneTeacher() throws {
        let dir = try temporaryRunDirectory(self)
        let r = try ProcessRunner.run(try kdtrain, ranks: nil, ["compare", "--run-dir", dir, "--set", "eval.factors=[1,8]"] + schedule + tinyRun, timeout: 300)
        XCTAssertEqual(r.status, 0, r.output)
        let agg = try rows(dir + "/eval/compare.json")
        XCTAssertEqual(Set(agg.map(\.model)), ["teacher (HR only)", "CosFace (no distillation)", "ArcFace (no distillation)",
                                               "AT (attention transfer)", "A-SKD", "paper (CE + logit KD + A-SKD)"])
        XCTAssertEqual(agg.count, 12)
        // The CosFace row really has a CosFace head.
        let ck = try FileManager.default.contentsOfDirectory(atPath: dir + "/compare/seed-1/cosface").filter { $0.hasSuffix(".safetensors") }
        XCTAssertFalse(ck.isEmpty)
        let metrics = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        XCTAssert(metrics.contains("attentionTransfer"), "the AT row measured its term")
        let report = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        let checkA = try XCTUnwrap(report.split(separator: "\n").first { $0.hasPrefix("- (a)") }, report)
        XCTAssert(checkA.contains("beats ArcFace (no distillation)") && !checkA.contains("CosFace"), String(checkA))
    }
}

final class StudyInterruptTests: XCTestCase {
    /// Ctrl-C (SIGINT) on one rank stops a study at the next safe point (a step boundary, or
    /// between students and evaluations) with exit 0, and --resume auto finishes it.
    func testSigintStopsAStudyAndResumeFinishesIt() throws {
        let kdtrain = try ProcessRunner.executable("kdtrain")
        let dir = try temporaryRunDirectory(self)
        let args = ["ablation", "--run-dir", dir, "--set", "teacher.epochs=2", "--set", "student.epochs=2",
                    "--set", "eval.factors=[1,4]"] + tinyRun
        let p = try ProcessRunner.launch(kdtrain, ranks: nil, args)
        XCTAssert(p.waitFor(timeout: 200) { p.currentOutput.contains("ablation: + logit KD, seed 1") }, p.currentOutput)
        p.signal(SIGINT)
        let r = p.finish(timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.stdout.contains("stop signal 2"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/report.md"), "the study finished before the signal")
        let resumed = try ProcessRunner.run(kdtrain, ranks: nil, args + ["--resume", "auto"], timeout: 300)
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssert(resumed.stdout.contains("finished earlier"), resumed.output)
        XCTAssert(FileManager.default.fileExists(atPath: dir + "/report.md"), resumed.output)
    }
}
