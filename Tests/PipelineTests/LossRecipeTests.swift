// Loss recipes and the options of issue 9, at the configuration level (no binary spawned).
import Foundation
import XCTest
import Model
import Pipeline

final class LossRecipeTests: XCTestCase {
    func testDefaultsAreThePaperRecipe() throws {
        XCTAssertEqual(RunConfig().loss, LossRecipe.named[.paper]!.loss())
        let l = RunConfig().lossConfig(stageCount: 3)
        XCTAssertEqual(l.kd, 1); XCTAssertEqual(l.temperature, 4)
        XCTAssertEqual(l.attentionSimilarity, 5); XCTAssertEqual(l.attentionTransfer, 0)
        XCTAssertEqual(l.attention, AttentionDistillConfig(stages: [0, 1, 2], blocks: .every, channel: true, spatial: true,
                                                           beforeSigmoid: true, meanOverMaps: false))
        XCTAssertEqual(try RunConfig.load(file: nil, overrides: []), RunConfig())
    }

    func testEachRecipeSetsItsCitedValues() throws {
        let askd = try RunConfig.load(file: nil, overrides: ["loss.recipe=askd"]).lossConfig(stageCount: 3)
        XCTAssertEqual(askd.kd, 0); XCTAssertEqual(askd.attentionSimilarity, 5); XCTAssertEqual(askd.attention.blocks, .every)
        XCTAssertTrue(askd.attention.beforeSigmoid); XCTAssertFalse(askd.attention.meanOverMaps)
        let at = try RunConfig.load(file: nil, overrides: ["loss.recipe=at"]).lossConfig(stageCount: 3)
        XCTAssertEqual(at.attentionTransfer, 500); XCTAssertEqual(at.attentionSimilarity, 0); XCTAssertEqual(at.kd, 0)
        let fskd = try RunConfig.load(file: nil, overrides: ["loss.recipe=fskd"]).lossConfig(stageCount: 3)
        XCTAssertEqual(fskd.embedding, 80); XCTAssertEqual(fskd.embeddingKind, .cosine); XCTAssertEqual(fskd.kd, 0)
        let hinton = try RunConfig.load(file: nil, overrides: ["loss.recipe=hinton"]).lossConfig(stageCount: 3)
        XCTAssertEqual(hinton.kd, 1); XCTAssertEqual(hinton.attentionSimilarity, 0); XCTAssertEqual(hinton.attentionTransfer, 0)
        XCTAssertFalse(try RunConfig.load(file: nil, overrides: ["loss.recipe=none"]).lossConfig(stageCount: 3).needsTeacher)
    }

    func testExplicitKeysWinOverTheRecipeInAnyOrder() throws {
        for o in [["loss.attentionWeight=2", "loss.recipe=askd"], ["loss.recipe=askd", "loss.attentionWeight=2"]] {
            let c = try RunConfig.load(file: nil, overrides: o)
            XCTAssertEqual(c.loss.recipe, .askd); XCTAssertEqual(c.loss.attentionWeight, 2); XCTAssertEqual(c.loss.kd, 0)
            XCTAssertEqual(LossRecipe.overriddenKeys(c.loss), ["loss.attentionWeight"])
        }
        // A recipe named in the file, a key from --set.
        let f = NSTemporaryDirectory() + "kdtrain-recipe-\(UUID().uuidString).json"
        try Data(#"{"loss": {"recipe": "at", "kd": 0.5}}"#.utf8).write(to: URL(fileURLWithPath: f))
        defer { try? FileManager.default.removeItem(atPath: f) }
        let c = try RunConfig.load(file: f, overrides: ["loss.atWeight=250"])
        XCTAssertEqual(c.loss.attention, .at); XCTAssertEqual(c.loss.kd, 0.5); XCTAssertEqual(c.loss.atWeight, 250)
        XCTAssertEqual(LossRecipe.overriddenKeys(c.loss), ["loss.atWeight", "loss.kd"])
    }

    func testBadRecipeBlocksAndEvalOptionsAreNamed() throws {
        func problems(_ o: [String]) throws -> [String] { try RunConfig.load(file: nil, overrides: o).problems(worldSize: 1) }
        func loadError(_ o: [String]) -> String { do { _ = try RunConfig.load(file: nil, overrides: o); return "" } catch { return "\(error)" } }
        XCTAssertEqual(loadError(["loss.recipe=askdd"]), "--set loss.recipe=askdd: loss.recipe: 'askdd' is not one of paper, askd, fskd, at, hinton, none (did you mean askd?)")
        XCTAssert(try problems(["loss.blocks=first"]).contains("loss.blocks: 'first' is not every, last or a list of stage.block (e.g. 0.0,2.1)"))
        // A list that reads as a number stays a string; a block the student lacks is named.
        XCTAssert(try problems(["loss.blocks=0.1"]).contains("loss: attention: block 0.1 does not exist in the student (depths [1, 1, 1])"))
        XCTAssertEqual(try RunConfig.load(file: nil, overrides: ["loss.blocks=0.0,2.0"]).blockSelection,
                       .listed([BlockRef(stage: 0, block: 0), BlockRef(stage: 2, block: 0)]))
        XCTAssertEqual(try problems(["loss.blocks=0.0,2.0"]), [])
        XCTAssertEqual(try problems(["loss.blocks=last"]), [])
        XCTAssertEqual(loadError(["eval.degrade=gallery"]), "--set eval.degrade=gallery: eval.degrade: 'gallery' is not one of probe, both")
        XCTAssert(try problems(["eval.blur=[0.1]"]).contains("eval.blur must be [sigmaX, sigmaY] with 0 < sigma <= 100, or null"))
        XCTAssert(try problems(["eval.blurKernel=4"]).contains("eval.blurKernel must be odd, 1...31"))
        XCTAssertEqual(try problems(["eval.blur=[0.1,2]", "eval.down=nearest", "eval.up=nearest", "eval.degrade=both"]), [])
        XCTAssert(try problems(["loss.balanceEvery=-1"]).contains("loss.balanceEvery must be >= 0"))
        XCTAssert(try problems(["loss.temperature=1e-9"]).contains("loss.temperature 1e-09 must be in 0.1...100"))
    }

    func testEvaluationProtocolSentence() throws {
        XCTAssertEqual(Run.evaluationProtocol(RunConfig()),
                       "The probe (second) image of each pair is down-sampled by the factor with bicubic and up-sampled with bicubic; flip test.")
        let c = try RunConfig.load(file: nil, overrides: ["eval.blur=[0.1,2]", "eval.down=nearest", "eval.up=nearest", "eval.degrade=both"])
        XCTAssertEqual(Run.evaluationProtocol(c),
                       "Both images of each pair are down-sampled by the factor with nearest and up-sampled with nearest, then blurred by a 5x5 Gaussian (sigma x 0.1, y 2.0); flip test.")
    }
}

final class CheckpointRetentionTests: XCTestCase {
    func testStopCheckpointsGoOnceALaterOneExists() {
        // Uninterrupted: grid 50, 100, 150 and the final 186; keep 4.
        XCTAssertEqual(Checkpoint.toDelete(steps: [50, 100, 150, 186], every: 50, keep: 4), [])
        // A stop at 130 while 50, 100 exist: kept while it is the newest (the resume point) ...
        XCTAssertEqual(Checkpoint.toDelete(steps: [50, 100, 130], every: 50, keep: 4), [])
        // ... and dropped when the resumed run writes 150, so the last 3 are again 100, 150, 186.
        XCTAssertEqual(Checkpoint.toDelete(steps: [50, 100, 130, 150], every: 50, keep: 4), [130])
        XCTAssertEqual(Checkpoint.toDelete(steps: [50, 100, 150, 186], every: 50, keep: 3), [50])
        // Two stops and keep 2.
        XCTAssertEqual(Checkpoint.toDelete(steps: [40, 50, 77, 100], every: 50, keep: 2), [40, 77])
        // every = 0 (only the final one): everything older goes.
        XCTAssertEqual(Checkpoint.toDelete(steps: [13, 29], every: 0, keep: 4), [13])
        XCTAssertEqual(Checkpoint.step(ofFile: "/x/step-00000150.safetensors"), 150)
        XCTAssertNil(Checkpoint.step(ofFile: "/x/averaged.safetensors"))
    }
}
