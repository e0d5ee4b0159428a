// `kdtrain embed` against `kdtrain evaluate`: the embeddings it writes, compared pairwise, give the
// distances and accuracies evaluate computes for the same checkpoint, data and options (bitwise for
// the separate views, to float32 rounding for the written flip sum); its pixels are the network
// input; bad options are one line and exit 1. Real faces: the ORL Database of Faces (AT&T
// Laboratories Cambridge, formerly the Olivetti Research Laboratory), read from ../shared/data.
import Evaluation
import FaceData
import Foundation
import Model
import Pipeline
import TestSupport
import XCTest

/// The verification set of `tinyRun`.
let tinyEval = "synthetic:pairs=100,verify-ids=40,size=32"

/// The ORL folder, or a skip when it is absent.
func orlFaces() throws -> String {
    let p = ProcessRunner.repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/data/orl_faces").path
    guard FileManager.default.fileExists(atPath: p) else { throw XCTSkip("ORL faces not present at \(p)") }
    return p
}

/// Tensors (name -> tensor) and metadata of a safetensors file.
func readTensors(_ path: String) throws -> ([String: NamedTensor], [String: String]) {
    let (ts, meta) = try SafeTensors.read(path: path)
    return (Dictionary(uniqueKeysWithValues: ts.map { ($0.name, $0) }), meta)
}

/// Rows of `t` (N, E) as N arrays.
func rows(_ t: NamedTensor) -> [[Float]] {
    let e = t.shape[1]
    return (0..<t.shape[0]).map { Array(t.values[($0 * e)..<(($0 + 1) * e)]) }
}

final class EmbedTests: XCTestCase {
    var kdtrain: String { get throws { try ProcessRunner.executable("kdtrain") } }

    /// Trains the tiny teacher for one epoch; returns its last checkpoint.
    func tinyTeacher(_ dir: String) throws -> String {
        let r = try ProcessRunner.run(try kdtrain, ranks: nil, ["train-teacher", "--run-dir", dir + "/run", "--quiet",
                                                                 "--set", "teacher.epochs=1"] + tinyRun, timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        return try XCTUnwrap(Checkpoint.list(in: dir + "/run/teacher").last, r.output)
    }

    /// `kdtrain evaluate` of one checkpoint with per-pair distances; returns its results.
    func evaluate(_ ck: String, runDir: String, data: String, extra: [String] = []) throws -> [EvaluationResult] {
        let r = try ProcessRunner.run(try kdtrain, ranks: nil, ["evaluate", "--run-dir", runDir, "--checkpoints", ck, "--quiet"] + tinyRun
                                      + ["--set", "data.eval=\(data)", "--set", "eval.pairDistances=true"] + extra, timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        return try EvaluationReport.readJSON(from: URL(fileURLWithPath: runDir + "/eval/evaluate.json")).results
    }

    func embed(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let r = try ProcessRunner.run(try kdtrain, ranks: nil, ["embed"] + args + ["--set", "data.threads=1"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.output, file: file, line: line)
        return r
    }

    /// The evaluation's numbers recomputed from embed's two views: bitwise the same distances and metrics.
    func assertReproduces(_ result: EvaluationResult, noflip: NamedTensor, mirror: NamedTensor, issame: [Bool],
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let E = noflip.shape[1]
        let unit = try VerificationProtocol.flipTestEmbeddings(noflip.values, flipped: mirror.values, dimension: E)
        let d = try VerificationProtocol.squaredDistances(embeddings: unit, dimension: E)
        XCTAssertEqual(d, result.pairDistances, "x\(result.degradationFactor): distances differ", file: file, line: line)
        let m = try VerificationProtocol.evaluate(embeddings: unit, dimension: E, issame: issame)
        XCTAssertEqual(m.accuracy.mean, result.accuracy, file: file, line: line)
        XCTAssertEqual(m.accuracy.foldAccuracies, result.foldAccuracies, file: file, line: line)
        XCTAssertEqual(m.accuracy.foldThresholds, result.foldThresholds, file: file, line: line)
        XCTAssertEqual(m.validationRate.valMean, result.tarAtFar, file: file, line: line)
        XCTAssertEqual(m.auc, result.auc, file: file, line: line)
    }

    func testEmbeddingsReproduceEvaluateDistancesAndAccuracy() throws {
        let dir = try temporaryRunDirectory(self)
        let ck = try tinyTeacher(dir)
        let results = try evaluate(ck, runDir: dir + "/eval", data: tinyEval, extra: ["--set", "eval.factors=[1,4]"])
        XCTAssertEqual(results.count, 2)
        let issame = try DataSource(parsing: tinyEval).pairSet().issame
        for r in results {
            XCTAssertEqual(r.pairDistances?.count, 100, "eval.pairDistances=true keeps every pair's distance")
            let out = dir + "/x\(r.degradationFactor).safetensors"
            try embed(["--checkpoint", ck, "--data", tinyEval, "--output", out, "--factor", "\(r.degradationFactor)", "--flip", "both"])
            let (t, meta) = try readTensors(out)
            XCTAssertEqual(t["embeddings"]?.shape, [200, 32])
            XCTAssertEqual(t["issame"]?.values, issame.map { $0 ? 1 : 0 })
            XCTAssertEqual(meta["factor"], "\(r.degradationFactor)")
            XCTAssertEqual(meta["source_kind"], "pairs")
            let names = try JSONDecoder().decode([String].self, from: Data(try XCTUnwrap(meta["names"]).utf8))
            XCTAssertEqual(names, (0..<200).map(String.init))
            try assertReproduces(r, noflip: try XCTUnwrap(t["embeddings_noflip"]), mirror: try XCTUnwrap(t["embeddings_mirror"]), issame: issame)
            // The written flip sum is the float32 sum of the views; its cosines give evaluate's distances
            // to float32 rounding, and the same accuracy.
            let sum = try XCTUnwrap(t["embeddings"])
            XCTAssertEqual(sum.values, zip(t["embeddings_noflip"]!.values, t["embeddings_mirror"]!.values).map { $0 + $1 })
            let s = rows(sum)
            var cosd = [Double]()
            for p in 0..<100 {
                let a = s[2 * p].map(Double.init), b = s[2 * p + 1].map(Double.init)
                let dot = zip(a, b).map { $0 * $1 }.reduce(0, +)
                let na = a.map { $0 * $0 }.reduce(0, +).squareRoot(), nb = b.map { $0 * $0 }.reduce(0, +).squareRoot()
                cosd.append(2 - 2 * dot / (na * nb))
            }
            for (x, y) in zip(cosd, r.pairDistances!) { XCTAssertEqual(x, y, accuracy: 1e-5) }
            let unitSum = s.flatMap { row -> [Double] in
                let d = row.map(Double.init); let n = d.map { $0 * $0 }.reduce(0, +).squareRoot(); return d.map { $0 / n }
            }
            XCTAssertEqual(try VerificationProtocol.evaluate(embeddings: unitSum, dimension: 32, issame: issame).accuracy.mean, r.accuracy)
        }

        // --flip sum --normalize writes exactly the evaluation's unit vectors (rounded to float32).
        let n4 = dir + "/n4.safetensors"
        try embed(["--checkpoint", ck, "--data", tinyEval, "--output", n4, "--factor", "4", "--normalize"])
        let both = try readTensors(dir + "/x4.safetensors").0
        let unit = try VerificationProtocol.flipTestEmbeddings(both["embeddings_noflip"]!.values, flipped: both["embeddings_mirror"]!.values, dimension: 32)
        let (nt, nmeta) = try readTensors(n4)
        XCTAssertEqual(nt["embeddings"]?.values, unit.map { Float($0) })
        XCTAssertNil(nt["embeddings_noflip"], "--flip sum writes only the sum")
        XCTAssertEqual(nmeta["normalized"], "true")

        // Without the flip test: --flip none against evaluate with eval.flip=false, bitwise.
        let noFlipEval = try evaluate(ck, runDir: dir + "/eval-noflip", data: tinyEval, extra: ["--set", "eval.factors=[2]", "--set", "eval.flip=false"])
        let none = dir + "/none.safetensors"
        try embed(["--checkpoint", ck, "--data", tinyEval, "--output", none, "--factor", "2", "--flip", "none"])
        let e = try XCTUnwrap(try readTensors(none).0["embeddings"])
        var u = e.values.map(Double.init)
        for r in 0..<200 {
            let n = (0..<32).map { u[r * 32 + $0] * u[r * 32 + $0] }.reduce(0, +).squareRoot()
            for j in 0..<32 { u[r * 32 + j] *= 1 / max(n, 1e-12) }
        }
        XCTAssertEqual(try VerificationProtocol.squaredDistances(embeddings: u, dimension: 32), noFlipEval[0].pairDistances)

        // Without eval.pairDistances the report keeps no distances (and stays as before).
        let plain = try ProcessRunner.run(try kdtrain, ranks: nil, ["evaluate", "--run-dir", dir + "/plain", "--checkpoints", ck, "--quiet"]
                                          + tinyRun + ["--set", "eval.factors=[1]"], timeout: 120)
        XCTAssertEqual(plain.status, 0, plain.output)
        let json = try String(contentsOfFile: dir + "/plain/eval/evaluate.json", encoding: .utf8)
        XCTAssertFalse(json.contains("pairDistances"), json)
    }

    /// ORL (real PGM faces, 92x112, resized to the tiny network's 32x32): the generated pairs
    /// reproduce evaluate bitwise; a whole folder is embedded with its names and labels, and the
    /// .npy files hold the same values.
    func testORLFolderAndPairsRoundTrip() throws {
        let orl = try orlFaces()
        let dir = try temporaryRunDirectory(self)
        let ck = try tinyTeacher(dir)
        let pairs = "folder:\(orl);pairs=200;seed=3"
        let r = try evaluate(ck, runDir: dir + "/eval", data: pairs, extra: ["--set", "eval.factors=[4]"])
        let out = dir + "/orl-pairs.safetensors"
        try embed(["--checkpoint", ck, "--data", pairs, "--output", out, "--factor", "4", "--flip", "both"])
        let (t, meta) = try readTensors(out)
        let issame = try XCTUnwrap(t["issame"]).values.map { $0 == 1 }
        XCTAssertEqual(issame, try DataSource(parsing: pairs).pairSet().issame)
        try assertReproduces(r[0], noflip: try XCTUnwrap(t["embeddings_noflip"]), mirror: try XCTUnwrap(t["embeddings_mirror"]), issame: issame)
        let names = try JSONDecoder().decode([String].self, from: Data(try XCTUnwrap(meta["names"]).utf8))
        XCTAssertEqual(names.count, 400)
        XCTAssert(names.allSatisfy { $0.hasPrefix("s") && $0.hasSuffix(".pgm") && !$0.hasPrefix("/") }, "\(names.prefix(4))")

        // Every image of the folder, with names (identity/file) and labels, at x2, plus .npy files.
        let all = dir + "/orl.safetensors"
        let run = try embed(["--checkpoint", ck, "--data", "folder:\(orl)", "--output", all, "--factor", "2", "--npy"])
        XCTAssert(run.stdout.contains("400 embeddings"), run.output)
        let (ft, fmeta) = try readTensors(all)
        XCTAssertEqual(ft["embeddings"]?.shape, [400, 32])
        XCTAssertEqual(fmeta["source_kind"], "images")
        XCTAssertEqual(fmeta["degraded_rows"], "all")
        let fnames = try JSONDecoder().decode([String].self, from: Data(try XCTUnwrap(fmeta["names"]).utf8))
        var expected = Set<String>()
        for id in 1...40 { for k in 1...10 { expected.insert("s\(id)/\(k).pgm") } }
        XCTAssertEqual(Set(fnames), expected)
        let labels = try XCTUnwrap(ft["labels"]).values.map { Int($0) }
        var labelOf = [String: Int]()
        for (n, l) in zip(fnames, labels) {
            let id = String(n.split(separator: "/")[0])
            if let known = labelOf[id] { XCTAssertEqual(known, l, "\(n): one identity, one label") } else { labelOf[id] = l }
        }
        XCTAssertEqual(Set(labelOf.values), Set(0..<40))
        // .npy: same bytes as the safetensors tensors; names as numpy unicode strings.
        let npy = try Data(contentsOf: URL(fileURLWithPath: dir + "/orl.embeddings.npy"))
        let header = String(decoding: npy.prefix(128), as: UTF8.self)
        XCTAssert(header.contains("'descr': '<f4'") && header.contains("'shape': (400, 32)"), header)
        let hlen = Int(npy[8]) | Int(npy[9]) << 8
        XCTAssertEqual((10 + hlen) % 64, 0)
        let values = npy.dropFirst(10 + hlen).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(values, ft["embeddings"]!.values)
        let lnpy = try Data(contentsOf: URL(fileURLWithPath: dir + "/orl.labels.npy"))
        XCTAssert(String(decoding: lnpy.prefix(128), as: UTF8.self).contains("'descr': '<i8', 'fortran_order': False, 'shape': (400,)"))
        let lh = Int(lnpy[8]) | Int(lnpy[9]) << 8
        XCTAssertEqual(lnpy.dropFirst(10 + lh).withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }.map(Int.init), labels)
        let nnpy = try Data(contentsOf: URL(fileURLWithPath: dir + "/orl.names.npy"))
        let nh = Int(nnpy[8]) | Int(nnpy[9]) << 8
        let width = fnames.map(\.unicodeScalars.count).max()!
        XCTAssert(String(decoding: nnpy.prefix(128), as: UTF8.self).contains("'descr': '<U\(width)'"))
        let scalars = nnpy.dropFirst(10 + nh).withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
        let decoded = (0..<400).map { i in String(String.UnicodeScalarView(scalars[(i * width)..<((i + 1) * width)].filter { $0 != 0 }.map { Unicode.Scalar($0)! })) }
        XCTAssertEqual(decoded, fnames)
    }

    /// --pixels writes the exact network input: the evaluation loader's degraded views, bitwise, and
    /// the network fed with them gives the written embeddings.
    func testPixelsAreTheNetworkInput() throws {
        let dir = try temporaryRunDirectory(self)
        let ck = try tinyTeacher(dir)
        let out = dir + "/px.safetensors"
        try embed(["--checkpoint", ck, "--data", tinyEval, "--output", out, "--factor", "4", "--flip", "both", "--pixels",
                   "--set", "eval.degrade=both"])
        let (t, meta) = try readTensors(out)
        let px = try XCTUnwrap(t["pixels"]), pxm = try XCTUnwrap(t["pixels_mirror"])
        XCTAssertEqual(px.shape, [200, 3, 32, 32])
        let loader = PairImageLoader(pairs: try DataSource(parsing: tinyEval).pairSet(), height: 32, width: 32)
        XCTAssertEqual(px.values, try loader.loadAll(factor: 4))
        XCTAssertEqual(pxm.values, try loader.loadAll(factor: 4, flip: true))
        XCTAssertEqual(meta["degraded_rows"], "all")
        let pre = try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(meta["preprocessing"]).utf8)) as! [String: Any]
        XCTAssertEqual(pre["resize"] as? String, "bilinear")
        XCTAssertEqual(pre["channels"] as? String, "RGB")
        XCTAssertEqual(pre["mean"] as? [Double], [0.5, 0.5, 0.5])

        // The network, loaded here from the checkpoint and fed the pixels in one batch.
        let c = try Checkpoint.read(ck)
        let m = FaceModel(config: c.identity.network, classes: c.identity.classes, margin: .softmax, seed: 0, trainable: false)
        try Checkpoint.load(c, into: m.store, identity: c.identity, momentum: false)
        for (pixels, name) in [(px, "embeddings_noflip"), (pxm, "embeddings_mirror")] {
            m.plan(batch: 200, needsGrad: false)
            pixels.values.withUnsafeBufferPointer { m.net.input.loadNCHW($0.baseAddress!) }
            m.forward(training: false)
            let got = Array(UnsafeBufferPointer(start: m.embeddingRows, count: 200 * 32))
            let want = try XCTUnwrap(t[name]).values
            let scale = want.map { abs($0) }.max()!
            for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: 1e-5 * scale, name) }
        }
    }

    /// Under mpirun -n 2 the images are sharded as evaluation shards them: embed reproduces a 2-rank
    /// evaluate bitwise; against one rank, pixels and names are identical and the embeddings agree to
    /// float32 rounding (other batches, other thread counts).
    func testTwoRanksShardLikeEvaluate() throws {
        let dir = try temporaryRunDirectory(self)
        let ck = try tinyTeacher(dir)
        let ev = try ProcessRunner.run(try kdtrain, ranks: 2, ["evaluate", "--run-dir", dir + "/eval", "--checkpoints", ck, "--quiet"] + tinyRun
                                       + ["--set", "eval.factors=[4]", "--set", "eval.pairDistances=true"], timeout: 120)
        XCTAssertEqual(ev.status, 0, ev.output)
        let result = try EvaluationReport.readJSON(from: URL(fileURLWithPath: dir + "/eval/eval/evaluate.json")).results[0]
        let args = ["embed", "--checkpoint", ck, "--data", tinyEval, "--factor", "4", "--flip", "both", "--pixels", "--set", "data.threads=1"]
        let two = try ProcessRunner.run(try kdtrain, ranks: 2, args + ["--output", dir + "/two.safetensors"], timeout: 120)
        XCTAssertEqual(two.status, 0, two.output)
        XCTAssertEqual(two.stdout.components(separatedBy: "embed: wrote").count, 2, "only rank 0 writes: \(two.stdout)")
        let (t2, m2) = try readTensors(dir + "/two.safetensors")
        let issame = try DataSource(parsing: tinyEval).pairSet().issame
        try assertReproduces(result, noflip: try XCTUnwrap(t2["embeddings_noflip"]), mirror: try XCTUnwrap(t2["embeddings_mirror"]), issame: issame)
        try embed(Array(args.dropFirst()) + ["--output", dir + "/one.safetensors"])
        let (t1, m1) = try readTensors(dir + "/one.safetensors")
        XCTAssertEqual(m1["names"], m2["names"])
        XCTAssertEqual(t1["pixels"]?.values, t2["pixels"]?.values)
        XCTAssertEqual(t1["pixels_mirror"]?.values, t2["pixels_mirror"]?.values)
        for name in ["embeddings", "embeddings_noflip", "embeddings_mirror"] {
            let a = try XCTUnwrap(t1[name]).values, b = try XCTUnwrap(t2[name]).values
            let scale = a.map { abs($0) }.max()!
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * scale, name) }
        }
    }

    /// Each mistake: exit 1, one line on stderr naming the option or file, nothing written.
    func testBadInputIsOneLineNamingTheOptionOrFile() throws {
        let dir = try temporaryRunDirectory(self)
        let ck = try tinyTeacher(dir)
        let out = dir + "/out.safetensors"
        let truncated = dir + "/truncated.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: ck))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        let ok = ["--checkpoint", ck, "--data", tinyEval, "--output", out]
        let cases: [([String], String)] = [
            (["--data", tinyEval, "--output", out], "--checkpoint"),
            (["--checkpoint", ck, "--output", out], "--data"),
            (["--checkpoint", ck, "--data", tinyEval], "--output"),
            (["--checkpoint", dir + "/missing.safetensors", "--data", tinyEval, "--output", out], dir + "/missing.safetensors"),
            (["--checkpoint", truncated, "--data", tinyEval, "--output", out], truncated),
            (["--checkpoint", ck, "--data", "bogus:x", "--output", out], "--data"),
            (["--checkpoint", ck, "--data", "rec:" + dir + "/none.rec", "--output", out], dir + "/none.rec"),
            (["--checkpoint", ck, "--data", "folder:" + dir + "/nofolder", "--output", out], dir + "/nofolder"),
            (ok + ["--factor", "0"], "--factor"),
            (ok + ["--factor", "1.5"], "--factor"),
            (ok + ["--factor", "65"], "--factor"),
            (ok + ["--flip", "mirror"], "--flip"),
            (["--checkpoint", ck, "--data", tinyEval, "--output", dir + "/out.npy"], "--output"),
            (["--checkpoint", ck, "--data", tinyEval, "--output", dir + "/no/such/dir/out.safetensors"], dir + "/no/such/dir"),
            (["--checkpoint", ck, "--data", tinyEval, "--output", dir], "--output"),
            (ok + ["--set", "eval.down=sideways"], "eval.down"),
            (ok + ["--set", "eval.bogus=1"], "eval.bogus"),
        ]
        for (args, named) in cases {
            let r = try ProcessRunner.run(try kdtrain, ranks: nil, ["embed"] + args, timeout: 60)
            XCTAssertEqual(r.status, 1, "\(args): \(r.output)")
            let lines = r.stderr.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            XCTAssertEqual(lines.count, 1, "\(args): \(r.stderr)")
            XCTAssert(r.stderr.contains(named), "\(args): the message does not name \(named): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(args) wrote \(out)")
        }
    }
}
