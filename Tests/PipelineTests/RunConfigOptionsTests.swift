// The configuration's typed choices and option catalogue, without spawning the binary: defaults,
// overrides, every choice's rejection with its suggestion, the unknown-key suggestion, a bound,
// the listing of every option (optional ones as null) and its explanation, and the JSON strings
// that config.json files and checkpoints keep.
import Foundation
import XCTest
import FaceData
import Pipeline

final class RunConfigOptionsTests: XCTestCase {
    func loadError(_ sets: [String], file: String? = nil) -> String? {
        do { _ = try RunConfig.load(file: file, overrides: sets); return nil } catch { return "\(error)" }
    }

    func testDefaultsAndOverridesOfChoices() throws {
        let d = RunConfig()
        XCTAssertEqual(d.data.resize, .bilinear); XCTAssertEqual(d.degrade.down, .bicubic); XCTAssertEqual(d.degrade.up, .bicubic)
        XCTAssertEqual(d.head.kind, .arcface); XCTAssertEqual(d.optim.schedule, .cosine); XCTAssertEqual(d.loss.recipe, .paper)
        XCTAssertEqual(d.loss.attention, .askd); XCTAssertEqual(d.loss.embeddingKind, .cosine)
        XCTAssertEqual(d.eval.down, .bicubic); XCTAssertEqual(d.eval.up, .bicubic); XCTAssertEqual(d.eval.degrade, .probe)
        XCTAssertNil(d.teacher.checkpoint); XCTAssertNil(d.student.checkpoint); XCTAssertNil(d.loss.stages)
        XCTAssertEqual(try RunConfig.load(file: nil, overrides: []), d)
        let c = try RunConfig.load(file: nil, overrides: [
            "data.resize=area", "degrade.down=nearest", "degrade.up=bilinear", "head.kind=softmax", "optim.schedule=multistep",
            "loss.attention=both", "loss.embeddingKind=normalized-l2", "eval.down=area", "eval.up=nearest", "eval.degrade=both",
        ])
        XCTAssertEqual(c.data.resize, .area); XCTAssertEqual(c.degrade.down, .nearest); XCTAssertEqual(c.degrade.up, .bilinear)
        XCTAssertEqual(c.head.kind, .softmax); XCTAssertEqual(c.marginKind, .softmax); XCTAssertEqual(c.optim.schedule, .multistep)
        XCTAssertEqual(c.loss.attention, .both); XCTAssertEqual(c.loss.embeddingKind, .normalizedL2)
        XCTAssertEqual(c.lossConfig(stageCount: 3).embeddingKind, .normalizedL2)
        XCTAssertEqual(c.eval.down, .area); XCTAssertEqual(c.eval.up, .nearest); XCTAssertEqual(c.eval.degrade, .both)
        XCTAssertEqual(try RunConfig.load(file: nil, overrides: ["loss.recipe=fskd"]).loss.recipe, .fskd)
        // The same from a file, and the file's value loses to --set.
        let path = NSTemporaryDirectory() + "kdtrain-choices-\(UUID().uuidString).json"
        try Data(#"{"head": {"kind": "cosface"}, "optim": {"schedule": "poly"}}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let f = try RunConfig.load(file: path, overrides: ["optim.schedule=constant"])
        XCTAssertEqual(f.head.kind, .cosface); XCTAssertEqual(f.optim.schedule, .constant)
    }

    func testEveryChoiceRejectsABadValueInOneLineWithTheAllowedValuesAndTheNearest() throws {
        let cases: [(key: String, bad: String, allowed: String, near: String?)] = [
            ("data.resize", "nearest", "area, bilinear, bicubic", nil),
            ("data.resize", "bilinaer", "area, bilinear, bicubic", "bilinear"),
            ("degrade.down", "bicubik", "area, bilinear, bicubic, nearest", "bicubic"),
            ("degrade.up", "aera", "area, bilinear, bicubic, nearest", "area"),
            ("eval.down", "nearst", "area, bilinear, bicubic, nearest", "nearest"),
            ("eval.up", "sideways", "area, bilinear, bicubic, nearest", nil),
            ("head.kind", "arcfce", "softmax, cosface, arcface", "arcface"),
            ("optim.schedule", "cosin", "cosine, multistep, poly, constant", "cosine"),
            ("loss.recipe", "hintn", "paper, askd, fskd, at, hinton, none", "hinton"),
            ("loss.attention", "bothh", "askd, at, both, none", "both"),
            ("loss.embeddingKind", "normalized-l1", "cosine, mse, normalized-l2", "normalized-l2"),
            ("eval.degrade", "probes", "probe, both", "probe"),
        ]
        for c in cases {
            let set = "\(c.key)=\(c.bad)"
            let e = loadError([set]) ?? ""
            let expected = "--set \(set): \(c.key): '\(c.bad)' is not one of \(c.allowed)" + (c.near.map { " (did you mean \($0)?)" } ?? "")
            XCTAssertEqual(e, expected)
        }
        // From a file: the file, the option, the value.
        let path = NSTemporaryDirectory() + "kdtrain-badchoice-\(UUID().uuidString).json"
        try Data(#"{"eval": {"degrade": "gallery"}}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(loadError([], file: path), "\(path): eval.degrade: 'gallery' is not one of probe, both")
        // --set takes a choice's text as it is; in a file, a value that is not a string is refused as one.
        XCTAssertEqual(loadError(["head.kind=[1]"]), "--set head.kind=[1]: head.kind: '[1]' is not one of softmax, cosface, arcface")
        try Data(#"{"head": {"kind": 1}}"#.utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(loadError([], file: path), "\(path): head.kind: expected one of softmax, cosface, arcface, got 1")
        // Every choice option of the catalogue is covered above.
        let choices = Set(RunConfig.options.filter { $0.takes.hasPrefix("one of ") }.map(\.key))
        XCTAssertEqual(choices, Set(cases.map(\.key)))
    }

    /// A value written as a JSON string (as config.json holds it) means its content, for choices and
    /// strings alike; unquoted text is taken as it is.
    func testQuotedOverrideValuesAreJSONStrings() throws {
        let c = try RunConfig.load(file: nil, overrides: ["loss.recipe=\"hinton\"", "head.kind=\"cosface\"", "data.train=\"synthetic:ids=20\""])
        XCTAssertEqual(c.loss.recipe.rawValue, "hinton")
        XCTAssertEqual(c.head.kind.rawValue, "cosface")
        XCTAssertEqual(c.data.train, "synthetic:ids=20")
        XCTAssertEqual(try RunConfig.load(file: nil, overrides: ["data.train=a\"b"]).data.train, "a\"b")
        XCTAssertNotNil(loadError(["loss.recipe=\"hintn\""]))
    }

    /// Ranges are [min, max] in JSON and a typed pair in Swift: two numbers or a one-line error naming
    /// the option; order and bounds are problems; config.json keeps the array form.
    func testRangesAreTwoNumbersInOrder() throws {
        let c = try RunConfig.load(file: nil, overrides: ["degrade.blurSigma=[0.25,2]", "degrade.jpegQuality=[40,80]"])
        XCTAssertEqual(c.degrade.blurSigma, ConfigRange<Float>(0.25, 2))
        XCTAssertEqual(c.degrade.jpegQuality.closed, 40...80)
        let tree = try JSONSerialization.jsonObject(with: Data(c.json.utf8)) as? [String: Any]
        XCTAssertEqual((tree?["degrade"] as? [String: Any])?["blurSigma"] as? [Double], [0.25, 2], c.json)
        for bad in ["degrade.blurSigma=[1,2,3]", "degrade.noiseSigma=[1]", "degrade.jpegQuality=[]"] {
            let e = loadError([bad]) ?? ""
            XCTAssert(e.contains(String(bad.split(separator: "=")[0])) && e.contains("[min, max]"), "\(bad): \(e)")
            XCTAssertFalse(e.contains("\n"), e)
        }
        XCTAssertNotNil(loadError(["degrade.jpegQuality=[30,\"x\"]"]))
        let reversed = try RunConfig.load(file: nil, overrides: ["degrade.blurSigma=[2,1]"])
        XCTAssert(reversed.problems(worldSize: 1).contains { $0.hasPrefix("degrade.blurSigma must be [min, max]") })
        XCTAssertNil(reversed.degrade.blurSigma.closed)
        XCTAssert(try RunConfig.load(file: nil, overrides: ["degrade.jpegQuality=[0,90]"]).problems(worldSize: 1)
                  .contains { $0.hasPrefix("degrade.jpegQuality") })
    }

    func testDecodingAChoiceDirectlyNamesTheValue() {
        let json = #"{"kind": "arcfase", "s": 32, "m": 0.5}"#
        XCTAssertThrowsError(try JSONDecoder().decode(RunConfig.Head.self, from: Data(json.utf8))) { e in
            guard case DecodingError.dataCorrupted(let c) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(c.debugDescription, "'arcfase' is not one of softmax, cosface, arcface (did you mean arcface?)")
            XCTAssertEqual(c.codingPath.map(\.stringValue), ["kind"])
        }
    }

    func testChoicesKeepTheirStringsInJSON() throws {
        var c = RunConfig()
        c.loss.embeddingKind = .normalizedL2; c.loss.attention = .none; c.loss.recipe = .none; c.eval.down = .nearest
        let tree = try JSONSerialization.jsonObject(with: Data(c.json.utf8)) as! [String: Any]
        let loss = tree["loss"] as! [String: Any], eval = tree["eval"] as! [String: Any], data = tree["data"] as! [String: Any]
        XCTAssertEqual(loss["embeddingKind"] as? String, "normalized-l2")
        XCTAssertEqual(loss["attention"] as? String, "none"); XCTAssertEqual(loss["recipe"] as? String, "none")
        XCTAssertEqual(eval["down"] as? String, "nearest"); XCTAssertEqual(eval["degrade"] as? String, "probe")
        XCTAssertEqual(data["resize"] as? String, "bilinear")
        XCTAssertEqual((tree["head"] as! [String: Any])["kind"] as? String, "arcface")
        XCTAssertEqual((tree["optim"] as! [String: Any])["schedule"] as? String, "cosine")
        XCTAssertEqual(try JSONDecoder().decode(RunConfig.self, from: Data(c.json.utf8)), c)
        // A configuration as config.json files held it before the choices were typed (strings,
        // optional keys absent) reads back.
        let old = #"""
        {"data": {"eval": "synthetic:pairs=600", "flip": true, "maxShift": 2, "prefetch": 2, "resize": "bicubic", "threads": 2, "train": "synthetic:ids=200,images=30"},
         "head": {"kind": "cosface", "m": 0.35, "s": 32}, "optim": {"schedule": "poly"}}
        """#
        let path = NSTemporaryDirectory() + "kdtrain-old-\(UUID().uuidString).json"
        try Data(old.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let o = try RunConfig.load(file: path, overrides: [])
        XCTAssertEqual(o.data.resize, .bicubic); XCTAssertEqual(o.head.kind, .cosface); XCTAssertEqual(o.optim.schedule, .poly)
        XCTAssertEqual(Preprocessing(config: o, inputSize: 56).resize, "bicubic")
    }

    func testRecipeNamesAndRecipesAgree() {
        XCTAssertEqual(LossRecipe.all.map(\.name), RecipeName.allowedValues)
        for n in RecipeName.allCases { XCTAssertEqual(LossRecipe.named[n]?.loss().recipe, n) }
    }

    func testABoundIsAProblemNamingTheOption() throws {
        let p = try RunConfig.load(file: nil, overrides: ["head.s=500"]).problems(worldSize: 1)
        XCTAssertEqual(p, ["head.s 500.0 must be in (0, 128]"])
        XCTAssertEqual(try RunConfig.load(file: nil, overrides: ["head.s=128"]).problems(worldSize: 1), [])
    }

    func testAnUnknownPresetSuggestsTheNearest() throws {
        let p = try RunConfig.load(file: nil, overrides: ["student.preset=smal"]).problems(worldSize: 1)
        XCTAssertEqual(p.count, 1, "\(p)")
        XCTAssert(p[0].hasPrefix("student.preset: unknown preset 'smal' (") && p[0].hasSuffix(" (did you mean small?)"), p[0])
    }

    func testUnknownKeysSuggestTheNearestOfAllKeys() {
        XCTAssertEqual(loadError(["teacher.checkpont=x"]), "--set teacher.checkpont=x: unknown option 'teacher.checkpont' (did you mean teacher.checkpoint?)")
        XCTAssertEqual(loadError(["student.checkpont=x"]), "--set student.checkpont=x: unknown option 'student.checkpont' (did you mean student.checkpoint?)")
        XCTAssertEqual(loadError(["loss.stgaes=[0]"]), "--set loss.stgaes=[0]: unknown option 'loss.stgaes' (did you mean loss.stages?)")
        XCTAssertEqual(loadError(["seeed=3"]), "--set seeed=3: unknown option 'seeed' (did you mean seed?)")
        XCTAssertEqual(loadError(["eval.resize=area"]), "--set eval.resize=area: unknown option 'eval.resize' (did you mean data.resize?)")
    }

    func testEveryOptionIsListedWithItsDefaultAndADescription() throws {
        let options = RunConfig.options
        let keys = options.map(\.key)
        XCTAssertEqual(keys, keys.sorted())
        for k in ["teacher.checkpoint", "student.checkpoint", "loss.stages", "eval.blur", "eval.identification", "eval.survface",
                  "seed", "logEvery", "head.kind", "loss.blocks", "guards.maxSkippedSteps"] {
            XCTAssert(keys.contains(k), k)
        }
        for o in options {
            XCTAssertFalse(o.summary.isEmpty, "\(o.key) has no description")
            XCTAssertFalse(o.summary.contains("\n"), o.key)
        }
        let byKey = Dictionary(uniqueKeysWithValues: options.map { ($0.key, $0) })
        XCTAssertEqual(byKey["teacher.checkpoint"]?.defaultJSON, "null")
        XCTAssertEqual(byKey["teacher.checkpoint"]?.takes, "a string or null")
        XCTAssertEqual(byKey["loss.stages"]?.defaultJSON, "null")
        XCTAssertEqual(byKey["head.kind"]?.defaultJSON, "\"arcface\"")
        XCTAssertEqual(byKey["head.kind"]?.takes, "one of softmax, cosface, arcface")
        XCTAssertEqual(byKey["optim.batch"]?.defaultJSON, "64")
        XCTAssertEqual(byKey["degrade.trainFactors"]?.defaultJSON, "[1.0,2.0,4.0,8.0]")
        XCTAssertEqual(byKey["seed"]?.defaultJSON, "1")

        // The listing has every option, unset optional ones as null, and reads back as a --config file.
        var c = RunConfig(); c.teacher.checkpoint = "t.safetensors"; c.head.kind = .cosface
        let tree = try JSONSerialization.jsonObject(with: Data(c.fullJSON.utf8)) as! [String: Any]
        var listed: [String] = []
        func walk(_ t: [String: Any], _ prefix: String) {
            for (k, v) in t {
                let full = prefix.isEmpty ? k : prefix + "." + k
                if let sub = v as? [String: Any] { walk(sub, full) } else { listed.append(full) }
            }
        }
        walk(tree, "")
        XCTAssertEqual(listed.sorted(), keys)
        XCTAssert((tree["student"] as? [String: Any])?["checkpoint"] is NSNull)
        XCTAssert((tree["loss"] as? [String: Any])?["stages"] is NSNull)
        let path = NSTemporaryDirectory() + "kdtrain-listing-\(UUID().uuidString).json"
        try Data(c.fullJSON.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try RunConfig.load(file: path, overrides: []), c)
    }

    func testExplanationHasOneLinePerOptionWithDefaultAndSetValue() throws {
        let c = try RunConfig.load(file: nil, overrides: ["teacher.checkpoint=t.safetensors", "optim.batch=32"])
        let lines = c.explanation().split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, RunConfig.options.count)
        XCTAssert(lines.contains("teacher.checkpoint = null [set: \"t.safetensors\"]  (a string or null) Use this teacher checkpoint instead of training one (null = train it)."), "\(lines)")
        XCTAssert(lines.contains { $0.hasPrefix("optim.batch = 64 [set: 32]  (an integer) Global batch") }, "\(lines)")
        XCTAssert(lines.contains { $0.hasPrefix("loss.stages = null  (an array of integers or null) Stages distilled") }, "\(lines)")
        XCTAssert(lines.contains { $0.hasPrefix("head.kind = \"arcface\"  (one of softmax, cosface, arcface) ") }, "\(lines)")
        XCTAssert(lines.contains { $0.hasPrefix("seed = 1  (a non-negative integer) ") }, "\(lines)")
    }
}
