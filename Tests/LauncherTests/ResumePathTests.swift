// `--resume PATH`: the phase that wrote PATH (its `phase` metadata) resumes from it, bitwise as
// if it had never stopped; the other phase continues as with `--resume auto`, so `run` loads a
// finished teacher instead of retraining it over its checkpoints; a checkpoint of the wrong
// phase, and PATH for a study, are refused with one line.
import Foundation
import XCTest
import Model
import Pipeline
import TestSupport

final class ResumePathTests: XCTestCase {
    var kdtrain: String { get throws { try ProcessRunner.executable("kdtrain") } }

    /// train-teacher --resume PATH (an intermediate teacher checkpoint of another run directory)
    /// ends with the same teacher as the run that wrote PATH.
    func testTrainTeacherResumesFromPathBitwise() throws {
        let base = try temporaryRunDirectory(self)
        let a = base + "/a", b = base + "/b"
        let first = try ProcessRunner.run(try kdtrain, ranks: nil, ["train-teacher", "--run-dir", a, "--set", "teacher.epochs=2"] + tinyRun, timeout: 300)
        XCTAssertEqual(first.status, 0, first.output)
        let steps = Checkpoint.list(in: a + "/teacher")
        XCTAssertGreaterThanOrEqual(steps.count, 2, "\(steps)")
        let middle = steps[steps.count - 2], last = steps.last!
        let resumed = try ProcessRunner.run(try kdtrain, ranks: nil, ["train-teacher", "--run-dir", b, "--resume", middle, "--set", "teacher.epochs=2"] + tinyRun, timeout: 300)
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssert(resumed.output.contains("resuming at step \(Checkpoint.step(ofFile: middle)!)"), resumed.output)
        let mine = b + "/teacher/" + URL(fileURLWithPath: last).lastPathComponent
        XCTAssertEqual(try parameters(mine), try parameters(last), "the resumed teacher differs from the uninterrupted one")
    }

    /// run --resume PATH with an intermediate student checkpoint: the finished teacher is loaded, not
    /// retrained (its checkpoints stay byte for byte), and the student ends as it did the first time.
    func testRunResumeStudentPathKeepsTheTeacher() throws {
        let dir = try temporaryRunDirectory(self) + "/run"
        let args = ["--run-dir", dir, "--set", "teacher.epochs=1", "--set", "student.epochs=1"] + tinyRun
        let first = try ProcessRunner.run(try kdtrain, ranks: nil, ["run"] + args, timeout: 300)
        XCTAssertEqual(first.status, 0, first.output)
        let teacherFiles = Checkpoint.list(in: dir + "/teacher")
        let teacherBytes = try teacherFiles.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let students = Checkpoint.list(in: dir + "/student")
        XCTAssertGreaterThanOrEqual(students.count, 2, "\(students)")
        let finalStudent = try parameters(students.last!)
        let again = try ProcessRunner.run(try kdtrain, ranks: nil, ["run", "--resume", students[students.count - 2]] + args, timeout: 300)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssert(again.output.contains("teacher: finished earlier"), again.output)
        XCTAssertFalse(again.output.contains("teacher epoch"), "the teacher was retrained:\n\(again.output)")
        XCTAssertEqual(Checkpoint.list(in: dir + "/teacher"), teacherFiles)
        XCTAssertEqual(try teacherFiles.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }, teacherBytes, "teacher checkpoints were rewritten")
        XCTAssertEqual(try parameters(Checkpoint.list(in: dir + "/student").last!), finalStudent)

        // A checkpoint of the other phase, and PATH for a study: one line each, exit 1.
        let wrongTeacher = try ProcessRunner.run(try kdtrain, ranks: nil, ["train-teacher", "--run-dir", dir, "--resume", students[0]] + tinyRun, timeout: 60)
        XCTAssertEqual(wrongTeacher.status, 1, wrongTeacher.output)
        XCTAssert(wrongTeacher.stderr.contains("that is a student checkpoint; train-teacher resumes a teacher checkpoint"), wrongTeacher.output)
        let wrongStudent = try ProcessRunner.run(try kdtrain, ranks: nil, ["distill", "--run-dir", dir, "--resume", teacherFiles[0]] + tinyRun, timeout: 60)
        XCTAssertEqual(wrongStudent.status, 1, wrongStudent.output)
        XCTAssert(wrongStudent.stderr.contains("that is a teacher checkpoint; distill resumes a student checkpoint"), wrongStudent.output)
        let study = try ProcessRunner.run(try kdtrain, ranks: nil, ["ablation", "--run-dir", dir, "--resume", students[0]] + tinyRun, timeout: 60)
        XCTAssertEqual(study.status, 1, study.output)
        XCTAssert(study.stderr.contains("continue it with --resume auto"), study.output)
        XCTAssertEqual(try teacherFiles.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }, teacherBytes, "a refused command touched the teacher")
    }

    /// A distillation from a loaded teacher says so in config.json (teacher.epochs there is a default).
    func testConfigRecordsALoadedTeacher() throws {
        let base = try temporaryRunDirectory(self)
        let t = try ProcessRunner.run(try kdtrain, ranks: nil, ["train-teacher", "--run-dir", base + "/t", "--set", "teacher.epochs=0.5"] + tinyRun, timeout: 120)
        XCTAssertEqual(t.status, 0, t.output)
        let teacher = Checkpoint.list(in: base + "/t/teacher").last!
        let d = try ProcessRunner.run(try kdtrain, ranks: nil, ["distill", "--run-dir", base + "/d", "--teacher", teacher, "--set", "student.epochs=0.5"] + tinyRun, timeout: 120)
        XCTAssertEqual(d.status, 0, d.output)
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + "/d/config.json"))) as? [String: Any]
        let loaded = meta?["teacher_loaded"] as? [String: Any]
        XCTAssertEqual(loaded?["checkpoint"] as? String, teacher, "\(meta ?? [:])")
        let plain = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + "/t/config.json"))) as? [String: Any]
        XCTAssertNil(plain?["teacher_loaded"])
    }
}
