// Named loss recipes: one option (`loss.recipe=NAME`) that sets every key of the combined loss to
// the values of the work it names, with the source of each value. A recipe is applied to the
// defaults before the configuration file and `--set` overrides, so keys given explicitly win.
//
// What the cited code does (read from the public repositories):
// - A-SKD (Shin et al., ECCV 2022; gist-ailab/teaching-where-to-look): a forward hook on every
//   block's `attention_target` collects the CBAM channel map and spatial map *before* the sigmoid
//   (CAModule/SAModule return `attn_out = x` ahead of `self.sigmoid`); DistillLoss sums, over all
//   2 x blocks maps, mean over the batch of (1 - cosine) of the flattened per-sample maps, each
//   multiplied by `distill_attn_param` = 5; train_student.py adds it to the CE loss (no logit KD).
// - F-SKD (same repository): the same loss on the embedding (`feature_target`), weight 80.
// - Attention transfer (Zagoruyko & Komodakis; szagoruyko/attention-transfer): at(x) =
//   normalize(mean_c x^2), at_loss = mean((at_s - at_t)^2) per group output, total
//   beta / 2 * sum over groups with beta = 1e3, i.e. 500 per group.
// - Hinton et al. 2015: KL(softmax(z_t/T) || softmax(z_s/T)) * T^2 next to the CE loss; T = 4.
// - The paper: CE + lambda * Hinton KD + attention-map KD (its weights are open): Hinton's term with
//   lambda = 1, T = 4, and the attention term exactly as A-SKD's code computes it.
import Foundation

public struct LossRecipe: Sendable {
    public let id: RecipeName
    public var name: String { id.rawValue }
    public let summary: String
    public let source: String
    let apply: @Sendable (inout RunConfig.Loss) -> Void

    /// Every recipe, in the order `kdtrain config --recipes` lists them.
    public static let all: [LossRecipe] = [
        LossRecipe(id: .paper, summary: "CE + Hinton KD (weight 1, T 4) + A-SKD on every block's CBAM maps before the sigmoid, sum of maps, weight 5 each",
                   source: "paper Fig. 3-4 (CE + label knowledge + attention knowledge); attention term as gist-ailab/teaching-where-to-look utility/distill_loss.py, hook.py, model/backbone.py; KD as Hinton et al. 2015") { l in
            askd(&l); l.kd = 1; l.temperature = 4
        },
        LossRecipe(id: .askd, summary: "CE + A-SKD on every block's CBAM channel and spatial maps before the sigmoid, 1 - cos per sample, batch mean, sum of maps, weight 5 each; no logit KD",
                   source: "Shin et al. ECCV 2022; train_student.py (loss_ce + loss_attn_distill, distill_attn_param = 5)") { l in
            askd(&l)
        },
        LossRecipe(id: .fskd, summary: "CE + (1 - cos) of the embedding against the teacher's, weight 80; no logit or attention KD",
                   source: "F-SKD in gist-ailab/teaching-where-to-look (feature_target on the network output, distill_param 80)") { l in
            none(&l); l.embedding = 80; l.embeddingKind = .cosine
        },
        LossRecipe(id: .at, summary: "CE + attention transfer on each stage's output, mean((at_s - at_t)^2), weight beta/2 = 500 per stage; no logit KD",
                   source: "Zagoruyko & Komodakis 2017; szagoruyko/attention-transfer utils.at_loss, beta = 1e3") { l in
            none(&l); l.attention = .at; l.atWeight = 500
        },
        LossRecipe(id: .hinton, summary: "CE + Hinton KD on the margin-free logits, weight 1, T 4; no attention KD",
                   source: "Hinton et al. 2015 (soft term scaled by T^2)") { l in
            none(&l); l.kd = 1; l.temperature = 4
        },
        LossRecipe(id: .none, summary: "CE only (BasicNet)", source: "the paper's Table 1 first row") { l in
            none(&l)
        },
    ]

    /// The recipe of each `loss.recipe` value (RecipeName has one case per recipe of `all`).
    public static let named: [RecipeName: LossRecipe] = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })

    /// The loss with every key at this recipe's value.
    public func loss() -> RunConfig.Loss {
        var l = RunConfig.Loss()
        apply(&l)
        l.recipe = id
        return l
    }

    private static func none(_ l: inout RunConfig.Loss) {
        l.recognition = 1; l.kd = 0; l.temperature = 4; l.attention = .none; l.attentionWeight = 5; l.atWeight = 500
        l.stages = nil; l.blocks = "every"; l.channelMaps = true; l.spatialMaps = true; l.beforeSigmoid = true
        l.meanOverMaps = false; l.embedding = 0; l.embeddingKind = .cosine
    }

    private static func askd(_ l: inout RunConfig.Loss) {
        none(&l); l.attention = .askd; l.attentionWeight = 5
    }

    /// The default configuration with the loss of the recipe named in `file` or `overrides` (the
    /// last `loss.recipe` wins); plain defaults when none is named or the name is unknown (then
    /// reading the configuration refuses it).
    static func defaults(file: String?, overrides: [String]) throws -> RunConfig {
        var name: String?
        if let file, let data = FileManager.default.contents(atPath: file),
           let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let loss = obj["loss"] as? [String: Any], let r = loss["recipe"] as? String {
            name = r
        }
        for o in overrides where o.hasPrefix("loss.recipe=") {
            var v = String(o.dropFirst("loss.recipe=".count))
            if v.count >= 2 && v.hasPrefix("\"") && v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
            name = v
        }
        var c = RunConfig()
        if let name, let id = RecipeName(rawValue: name), let r = named[id] { c.loss = r.loss() }
        return c
    }

    /// The loss keys this configuration sets differently from its recipe.
    public static func overriddenKeys(_ loss: RunConfig.Loss) -> [String] {
        guard let r = named[loss.recipe] else { return [] }
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        func fields(_ l: RunConfig.Loss) -> [String: String] {
            guard let o = try? JSONSerialization.jsonObject(with: enc.encode(l)) as? [String: Any] else { return [:] }
            return o.mapValues { v in
                (try? JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys]))
                    .map { String(decoding: $0, as: UTF8.self) } ?? "\(v)"
            }
        }
        let a = fields(r.loss()), b = fields(loss)
        return Set(a.keys).union(b.keys).sorted().filter { a[$0] != b[$0] }.map { "loss." + $0 }
    }
}
