// End to end: `kdtrain evaluate` and `kdtrain run` with closed-set identification (eval.identification,
// TinyFace layout) and open-set verification (eval.survface, SurvFace pair lists), on a TinyFace-shaped
// folder of real faces and on synthetic faces written to disk; bad inputs are one line and exit 1.
// Real faces: the ORL Database of Faces (AT&T Laboratories Cambridge, formerly the Olivetti Research
// Laboratory), read from ../shared/data through symbolic links in a temporary folder, never copied here.
import Evaluation
import FaceData
import Foundation
import Model
import Pipeline
import TestSupport
import XCTest

final class ProtocolEndToEndTests: XCTestCase {
    var kdtrain: String { get throws { try ProcessRunner.executable("kdtrain") } }

    /// A TinyFace-shaped Testing_Set of ORL faces: identities 1...8 (ORL s1...s8); Probe/i_1.pgm is ORL image 1
    /// of person i and Gallery_Match holds that same image (i_1.pgm) plus image 2 (i_2.pgm); Gallery_Distractor
    /// holds images 1...3 of ORL s31...s34 named 1_k.pgm ... (named like identity 1: distractors must match
    /// nothing whatever their names). Returns the root.
    func orlTinyFace(_ orl: String, in dir: String) throws -> String {
        let fm = FileManager.default, root = dir + "/Testing_Set"
        for sub in ["Probe", "Gallery_Match", "Gallery_Distractor"] { try fm.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true) }
        for i in 1...8 {
            try fm.createSymbolicLink(atPath: "\(root)/Probe/\(i)_1.pgm", withDestinationPath: "\(orl)/s\(i)/1.pgm")
            for k in 1...2 { try fm.createSymbolicLink(atPath: "\(root)/Gallery_Match/\(i)_\(k).pgm", withDestinationPath: "\(orl)/s\(i)/\(k).pgm") }
        }
        var n = 0
        for p in 31...34 { for k in 1...3 { n += 1; try fm.createSymbolicLink(atPath: "\(root)/Gallery_Distractor/1_\(100 + n).pgm", withDestinationPath: "\(orl)/s\(p)/\(k).pgm") } }
        return root
    }

    func run(_ args: [String], timeout: Double = 180) throws -> ProcessResult {
        try ProcessRunner.run(try kdtrain, ranks: nil, args, timeout: timeout)
    }

    func testORLIdentificationAndOpenSetThroughEvaluate() throws {
        let orl = try orlFaces()
        let dir = try temporaryRunDirectory(self)
        let t = try run(["train-teacher", "--run-dir", dir + "/run", "--quiet", "--set", "teacher.epochs=1"] + tinyRun)
        XCTAssertEqual(t.status, 0, t.output)
        let ck = try XCTUnwrap(Checkpoint.list(in: dir + "/run/teacher").last, t.output)
        let tiny = try orlTinyFace(orl, in: dir)
        // SurvFace-style lists over the ORL root: 8 positives of an image with itself (cosine 1 at x1), 16
        // negatives (image 1 of person i with images 1 and 2 of person i + 1).
        let pos = (1...8).map { "s\($0)/1.pgm s\($0)/1.pgm" }
        let neg = (1...8).flatMap { i in (1...2).map { "s\(i)/1.pgm s\(i + 1)/\($0).pgm" } }
        try Data((["# positives"] + pos).joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir + "/pos.txt"))
        try Data(neg.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir + "/neg.txt"))
        let factors = [1, 4]
        let r = try run(["evaluate", "--run-dir", dir + "/eval", "--checkpoints", ck, "--quiet"] + tinyRun
                        + ["--set", "eval.factors=[1,4]", "--set", "eval.identification=tinyface:\(tiny)",
                           "--set", "eval.survface=\(dir)/pos.txt,\(dir)/neg.txt@\(orl)"])
        XCTAssertEqual(r.status, 0, r.output)
        let report = try EvaluationReport.readJSON(from: URL(fileURLWithPath: dir + "/eval/eval/evaluate.json"))
        XCTAssertEqual(report.results.count, 2, "verification still runs")
        let ident = try XCTUnwrap(report.identification)
        XCTAssertEqual(ident.map(\.degradationFactor), factors)
        for row in ident {
            XCTAssertEqual(row.dataset, "TinyFace")
            XCTAssertEqual([row.probes, row.galleryImages, row.distractors, row.galleryIdentities], [8, 28, 12, 8])
            XCTAssertEqual(row.ranks, [1, 5, 20])
            XCTAssert(row.cmc == row.cmc.sorted() && row.cmc.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(row.cmc)")
        }
        // At x1 every probe has its own undegraded copy in the gallery (cosine 1): rank 1 for all.
        XCTAssertEqual(ident[0].cmc, [1, 1, 1])
        XCTAssert(ident[1].degradation.contains("probes only"), ident[1].degradation)
        let open = try XCTUnwrap(report.openSet)
        XCTAssertEqual(open.map(\.degradationFactor), factors)
        XCTAssertEqual(open[0].positives, 8)
        XCTAssertEqual(open[0].negatives, 16)
        XCTAssertEqual(open[0].points.map(\.farTarget), [0.3, 0.1, 0.01, 0.001])
        // x1: the positives (cosine 1) are above every negative: TAR 1 at every FAR and AUC 1.
        XCTAssertEqual(open[0].points.map(\.tar), [1, 1, 1, 1])
        XCTAssertEqual(open[0].auc, 1)
        // Every FAR measured is within its target.
        for row in open { for p in row.points { XCTAssertLessThanOrEqual(p.far, p.farTarget) } }

        // The same pairs through `kdtrain embed` (pairs:LIST@ROOT, positives first): the TAR@FAR recomputed from its
        // two views equals evaluate's, bitwise, at both factors.
        try Data((pos.map { $0 + " 1" } + neg.map { $0 + " 0" }).joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir + "/all.txt"))
        for row in open {
            let out = dir + "/x\(row.degradationFactor).safetensors"
            let e = try run(["embed", "--checkpoint", ck, "--data", "pairs:\(dir)/all.txt@\(orl)", "--output", out,
                             "--factor", "\(row.degradationFactor)", "--flip", "both", "--set", "data.threads=1"])
            XCTAssertEqual(e.status, 0, e.output)
            let (ts, _) = try readTensors(out)
            let a = try XCTUnwrap(ts["embeddings_noflip"]), b = try XCTUnwrap(ts["embeddings_mirror"])
            let unit = try VerificationProtocol.flipTestEmbeddings(a.values, flipped: b.values, dimension: a.shape[1])
            let scores = try OpenSetProtocol.cosineScores(embeddings: unit, dimension: a.shape[1])
            let m = try OpenSetProtocol.evaluate(positive: Array(scores[0..<8]), negative: Array(scores[8...]))
            XCTAssertEqual(m.points, row.points, "x\(row.degradationFactor)")
            XCTAssertEqual(m.auc, row.auc)
        }

        // The markdown has both tables, one row per model and factor.
        let md = try String(contentsOfFile: dir + "/eval/eval/evaluate.md", encoding: .utf8)
        XCTAssert(md.contains("## Identification (CMC): TinyFace"), md)
        XCTAssert(md.contains("## Open-set verification (TAR@FAR): SurvFace"), md)
        let name = URL(fileURLWithPath: ck).lastPathComponent
        XCTAssert(md.contains("| \(name) | x1 | 100.00 | 100.00 | 100.00 |"), md)
        XCTAssert(md.contains("| \(name) | x1 | 100.00 | 100.00 | 100.00 | 100.00 | 100.00 |"), md)

        // With eval.degrade=both the gallery is degraded too: at x1 nothing changes; the description says so.
        let both = try run(["evaluate", "--run-dir", dir + "/both", "--checkpoints", ck, "--quiet"] + tinyRun
                           + ["--set", "eval.factors=[1,4]", "--set", "eval.degrade=both", "--set", "eval.identification=tinyface:\(tiny)"])
        XCTAssertEqual(both.status, 0, both.output)
        let bothIdent = try XCTUnwrap(try EvaluationReport.readJSON(from: URL(fileURLWithPath: dir + "/both/eval/evaluate.json")).identification)
        XCTAssertEqual(bothIdent[0].cmc, ident[0].cmc)
        XCTAssert(bothIdent[1].degradation.contains("probes and gallery"), bothIdent[1].degradation)

        // An unreadable probe image: one line naming it, exit 1.
        try Data("P5\n92 112\n255\nshort".utf8).write(to: URL(fileURLWithPath: tiny + "/Probe/9_1.pgm"))
        try FileManager.default.createSymbolicLink(atPath: tiny + "/Gallery_Match/9_1.pgm", withDestinationPath: "\(orl)/s9/1.pgm")
        let bad = try run(["evaluate", "--run-dir", dir + "/bad", "--checkpoints", ck, "--quiet"] + tinyRun
                          + ["--set", "eval.factors=[1]", "--set", "eval.identification=tinyface:\(tiny)"])
        XCTAssertEqual(bad.status, 1, bad.output)
        let lines = bad.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, bad.stderr)
        XCTAssert(bad.stderr.contains("\(tiny)/Probe/9_1.pgm"), bad.stderr)
    }

    /// Bad inputs stop `evaluate` before any checkpoint is read (the checkpoint here does not exist): one line
    /// naming the folder, file or list line, exit 1.
    func testBadInputsAreOneLineBeforeCheckpoints() throws {
        let dir = try temporaryRunDirectory(self)
        func refused(_ sets: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let r = try run(["evaluate", "--run-dir", dir + "/run", "--checkpoints", dir + "/missing.safetensors", "--quiet"] + tinyRun
                            + sets.flatMap { ["--set", $0] }, timeout: 60)
            XCTAssertEqual(r.status, 1, r.output, file: file, line: line)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr, file: file, line: line)
            XCTAssert(r.stderr.contains(expected), "'\(r.stderr)' lacks '\(expected)'", file: file, line: line)
        }
        try refused(["eval.identification=tinyface:\(dir)/nowhere"], "\(dir)/nowhere/Probe: no such folder (the probe folder)")
        try refused(["eval.identification=\(dir)"], "invalid option: eval.identification '\(dir)': expected tinyface:ROOT")
        try refused(["eval.survface=\(dir)/p.txt"], "invalid option: eval.survface '\(dir)/p.txt': expected POSITIVE_LIST,NEGATIVE_LIST@IMAGE_ROOT")
        let img = dir + "/img"
        try FileManager.default.createDirectory(atPath: img + "/Probe", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: img + "/Gallery_Match", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: img + "/Gallery_Distractor", withIntermediateDirectories: true)
        try refused(["eval.identification=tinyface:\(img)"], "\(img)/Probe: no probe images")
        let face = try ImageCodec.encodePNG(SyntheticFaces(SyntheticConfig(width: 32, height: 32)).render(key: 1, variation: 0))
        try Data(face).write(to: URL(fileURLWithPath: img + "/Probe/5_1.png"))
        try Data(face).write(to: URL(fileURLWithPath: img + "/Gallery_Match/6_1.png"))
        try refused(["eval.identification=tinyface:\(img)"], "\(img)/Probe/5_1.png: probe identity '5' has no image in the gallery match folder")
        try Data("Probe/5_1.png Gallery_Match/6_1.png\nProbe/5_1.png\n".utf8).write(to: URL(fileURLWithPath: dir + "/p.txt"))
        try refused(["eval.survface=\(dir)/p.txt,\(dir)/p.txt@\(img)"], "\(dir)/p.txt:2: expected two image paths")
    }

    /// Synthetic faces written to disk, through the whole pipeline: both protocols land in eval/results.json
    /// (one row per model and factor), eval/results.md and report.md.
    func testSyntheticThroughRunReport() throws {
        let dir = try temporaryRunDirectory(self)
        let faces = SyntheticFaces(SyntheticConfig(width: 32, height: 32))
        func put(_ path: String, _ id: Int, _ v: Int) throws {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(try ImageCodec.encodePNG(faces.render(key: SyntheticFaces.verificationKey(id), variation: UInt64(v)))).write(to: URL(fileURLWithPath: path))
        }
        let root = dir + "/tf"
        for id in 0..<6 {
            try put("\(root)/Probe/\(id)_0.png", id, 0)
            for v in 1...2 { try put("\(root)/Gallery_Match/\(id)_\(v).png", id, v) }
        }
        for id in 6..<10 { try put("\(root)/Gallery_Distractor/\(id)_0.png", id, 0) }
        var pos: [String] = [], neg: [String] = []
        for id in 0..<6 { pos.append("Gallery_Match/\(id)_1.png Gallery_Match/\(id)_2.png"); neg.append("Gallery_Match/\(id)_1.png Gallery_Match/\((id + 1) % 6)_2.png") }
        try Data(pos.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir + "/pos.txt"))
        try Data(neg.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir + "/neg.txt"))
        let r = try run(["run", "--run-dir", dir + "/run", "--quiet", "--set", "teacher.epochs=1", "--set", "student.epochs=1"] + tinyRun
                        + ["--set", "eval.factors=[1,2]", "--set", "eval.identification=folders:\(root)/Probe,\(root)/Gallery_Match,\(root)/Gallery_Distractor",
                           "--set", "eval.survface=\(dir)/pos.txt,\(dir)/neg.txt@\(root)"], timeout: 300)
        XCTAssertEqual(r.status, 0, r.output)
        let report = try EvaluationReport.readJSON(from: URL(fileURLWithPath: dir + "/run/eval/results.json"))
        let models = ["teacher (tiny-teacher)", "student, last", "student, averaged last 2"]
        let ident = try XCTUnwrap(report.identification), open = try XCTUnwrap(report.openSet)
        XCTAssertEqual(ident.map(\.model), models.flatMap { [$0, $0] })
        XCTAssertEqual(ident.map(\.degradationFactor), [1, 2, 1, 2, 1, 2])
        XCTAssertEqual(open.map(\.model), ident.map(\.model))
        XCTAssertEqual(ident[0].dataset, "tf")
        for row in ident { XCTAssertEqual([row.probes, row.galleryImages, row.distractors], [6, 16, 4]) }
        for row in open { XCTAssertEqual([row.positives, row.negatives], [6, 6]); XCTAssert((0...1).contains(row.auc)) }
        let md = try String(contentsOfFile: dir + "/run/report.md", encoding: .utf8)
        XCTAssert(md.contains("## Verification set: synthetic"), md)
        XCTAssert(md.contains("## Identification (CMC): tf"), md)
        XCTAssert(md.contains("## Open-set verification (TAR@FAR): SurvFace"), md)
        XCTAssertFalse(md.contains("Verification set: Identification"), md)
        for m in models { XCTAssert(md.contains("| \(m) | x2 |"), "\(m) missing: \(md)") }
        let results = try String(contentsOfFile: dir + "/run/eval/results.md", encoding: .utf8)
        XCTAssert(results.contains("## Identification (CMC): tf"), results)
        // The verification cells still parse from the run's tables.
        XCTAssertEqual(try EvaluationReport.parseMarkdownTables(results).count, 6)
    }
}
