// The `kdtrain` command line parsed in-process (`KDTrain.parseAsRoot`), no binary spawned: every
// subcommand resolves to its command with the values given, bad arguments are refused by the
// parser, and the ablation help names the options it depends on.
import ArgumentParser
import KDTrainCLI
import XCTest

final class CommandLineParseTests: XCTestCase {
    /// The parsed command's type name and its reflection (which shows every parsed value).
    func parse(_ args: [String]) throws -> (name: String, dump: String) {
        let c = try KDTrain.parseAsRoot(args)
        return ("\(type(of: c))", String(describing: c))
    }

    func testEverySubcommandParses() throws {
        let cases: [(args: [String], command: String, shows: [String])] = [
            ([], "RunPipeline", ["runs/kdtrain"]),
            (["run", "--set", "optim.batch=32", "--set", "head.kind=cosface", "--run-dir", "r1", "--resume", "auto"],
             "RunPipeline", ["optim.batch=32", "head.kind=cosface", "r1", "auto"]),
            (["--config", "c.json", "--quiet"], "RunPipeline", ["c.json"]),
            (["train-teacher", "--run-dir", "r2"], "TrainTeacher", ["r2"]),
            (["distill", "--teacher", "t.safetensors", "--set", "loss.recipe=askd"], "Distill", ["t.safetensors", "loss.recipe=askd"]),
            (["average", "--checkpoints", "a.safetensors", "b.safetensors", "--output", "avg.safetensors", "--force"],
             "Average", ["a.safetensors", "b.safetensors", "avg.safetensors"]),
            (["evaluate", "--checkpoints", "x.safetensors", "--set", "eval.factors=[1,4]"], "Evaluate", ["x.safetensors", "eval.factors=[1,4]"]),
            (["embed", "--checkpoint", "ck.safetensors", "--data", "synthetic", "--output", "e.safetensors", "--factor", "4", "--flip", "none", "--pixels"],
             "Embed", ["ck.safetensors", "synthetic", "e.safetensors"]),
            (["export", "ck.safetensors", "-o", "m.onnx", "--fold-bn"], "Export", ["ck.safetensors", "m.onnx"]),
            (["ablation", "--seeds", "3", "--long", "--set", "teacher.checkpoint=t.safetensors"], "Ablation", ["teacher.checkpoint=t.safetensors"]),
            (["compare", "--seeds", "2"], "Compare", []),
            (["config", "--explain", "--set", "seed=7"], "ShowConfig", ["seed=7"]),
            (["config", "--recipes"], "ShowConfig", []),
            (["config", "--ranks", "4"], "ShowConfig", []),
            (["pack", "rec", "--folder", "faces", "--output", "out/train.rec", "--size", "112"], "Rec", ["faces", "out/train.rec"]),
            (["pack", "bin", "--pairs", "pairs:list.txt@root", "--output", "out/x.bin", "--lossless"], "Bin", ["pairs:list.txt@root", "out/x.bin"]),
            (["bench", "--preset", "small", "--steps", "3", "--json"], "Bench", []),
        ]
        for c in cases {
            let p = try parse(c.args)
            XCTAssertEqual(p.name, c.command, "\(c.args)")
            for s in c.shows { XCTAssert(p.dump.contains(s), "\(c.args): '\(s)' not in \(p.dump)") }
        }
    }

    func testBadArgumentsAreRefusedByTheParser() {
        let cases: [[String]] = [
            ["frobnicate"],
            ["run", "--bogus"],
            ["run", "--set"],
            ["ablation", "--seeds", "three"],
            ["config", "--ranks", "x"],
            ["pack", "rec", "--folder", "f", "--output", "out.zip"],
            ["pack", "rec", "--folder", "f", "--output", "o.rec", "--layout", "flat"],
            ["pack", "bin", "--pairs", "p", "--output", "o.bin", "--quality", "90", "--lossless"],
            ["bench", "--preset", "enormous"],
            ["bench", "--batch", "1"],
        ]
        for args in cases {
            XCTAssertThrowsError(try KDTrain.parseAsRoot(args), "\(args) parsed")
        }
    }

    func testAblationHelpNamesTheOptionsItUses() throws {
        let ablation = type(of: try KDTrain.parseAsRoot(["ablation"]))
        let help = KDTrain.helpMessage(for: ablation, columns: 100_000)
        for s in ["teacher.checkpoint", "seed", "S, S+1, ..., S+N-1", "loaded from", "--seeds"] {
            XCTAssert(help.contains(s), "'\(s)' missing from:\n\(help)")
        }
        let config = KDTrain.helpMessage(for: type(of: try KDTrain.parseAsRoot(["config"])), columns: 100_000)
        XCTAssert(config.contains("--explain"), config)
    }
}
