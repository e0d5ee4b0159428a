// The option catalogue: every option of RunConfig by its dotted key, with its type (read from the
// struct with Mirror, so a new field is listed without further code), its default and a one-line
// description; what `kdtrain config` and `kdtrain config --explain` print; and the nearest-key
// suggestion for an unknown option. A new RunConfig field needs one line in `descriptions`
// (a test holds the two to the same keys).
import Foundation

/// One option of the run configuration.
public struct ConfigOption: Sendable, Equatable {
    /// Dotted key, as `--set` takes it (e.g. "teacher.checkpoint").
    public let key: String
    /// What the option takes ("an integer", "one of cosine, mse, normalized-l2", ...).
    public let takes: String
    /// The default as JSON ("null" for an optional option without one).
    public let defaultJSON: String
    public let summary: String
}

extension RunConfig {
    /// One line per option, by dotted key.
    static let descriptions: [String: String] = [
        "seed": "Seed of initialization, sampling and augmentation; studies train seeds seed, seed+1, ... (--seeds).",
        "logEvery": "Log a progress line every N steps (rank 0).",
        "data.train": "Training source: synthetic[:...], folder:PATH, rec:PATH.",
        "data.eval": "Verification pairs: synthetic[:...], folder:PATH, bin:PATH, pairs:LIST@ROOT.",
        "data.threads": "Decode/augment threads per rank.",
        "data.prefetch": "Batches prepared ahead of the trainer.",
        "data.resize": "Kernel bringing source images to the network input size.",
        "data.flip": "Random horizontal flip in training.",
        "data.maxShift": "Random shift in pixels (both axes), same for both views.",
        "degrade.trainFactors": "Training picks one down-sampling factor per sample from this set (1 = no degradation).",
        "degrade.down": "Down-sampling kernel of the training degradation.",
        "degrade.up": "Up-sampling kernel of the training degradation.",
        "degrade.blurProbability": "Probability of a Gaussian blur in training.",
        "degrade.blurSigma": "Blur sigma range [min, max] in pixels at full size.",
        "degrade.noiseProbability": "Probability of additive Gaussian noise in training.",
        "degrade.noiseSigma": "Noise sigma range [min, max] on the 0-255 scale.",
        "degrade.jpegProbability": "Probability of JPEG re-compression in training.",
        "degrade.jpegQuality": "JPEG quality range [min, max] within 1...100.",
        "teacher.preset": "Teacher network preset.",
        "teacher.checkpoint": "Use this teacher checkpoint instead of training one (null = train it).",
        "teacher.epochs": "Teacher training epochs (fractions allowed).",
        "teacher.lr": "Teacher base learning rate.",
        "student.preset": "Student network preset.",
        "student.checkpoint": "Initialize the student from this checkpoint (null = random initialization).",
        "student.epochs": "Student training epochs (fractions allowed).",
        "student.lr": "Student base learning rate.",
        "head.kind": "Classification head.",
        "head.s": "Scale of the cosface/arcface logits.",
        "head.m": "Margin of the cosface/arcface head.",
        "optim.batch": "Global batch (all ranks, all micro-batches); must divide by ranks x optim.accumulate.",
        "optim.accumulate": "Micro-batches per optimizer step (gradient accumulation).",
        "optim.momentum": "SGD momentum.",
        "optim.weightDecay": "SGD weight decay.",
        "optim.nesterov": "Nesterov momentum.",
        "optim.decayExempt": "Exempt batch-norm, PReLU and bias parameters from weight decay.",
        "optim.warmupSteps": "Linear learning-rate warm-up steps.",
        "optim.schedule": "Learning-rate decay after warm-up.",
        "optim.milestones": "multistep: milestones as fractions of training (0..1).",
        "optim.gamma": "multistep: factor applied at each milestone.",
        "optim.power": "poly: exponent of the polynomial decay.",
        "optim.floor": "Final learning rate as a fraction of the base (cosine, poly).",
        "optim.clipNorm": "Clip gradients to this global norm (0 = off).",
        "loss.recipe": "Loss recipe the other loss keys start from (kdtrain config --recipes); keys given explicitly win.",
        "loss.recognition": "Weight of the recognition (classification) loss.",
        "loss.kd": "Weight of Hinton logit distillation.",
        "loss.temperature": "Temperature of logit distillation.",
        "loss.attention": "Attention-map distillation: askd (CBAM map similarity), at (attention transfer on stage outputs), both, none.",
        "loss.attentionWeight": "Weight of each A-SKD map term.",
        "loss.atWeight": "Weight of attention transfer per stage (attention at or both).",
        "loss.stages": "Stages distilled (null = all).",
        "loss.blocks": "Blocks whose CBAM maps A-SKD compares: every, last, or a list stage.block,... (e.g. 0.0,2.1).",
        "loss.channelMaps": "Compare the CBAM channel maps.",
        "loss.spatialMaps": "Compare the CBAM spatial maps.",
        "loss.beforeSigmoid": "Compare CBAM maps before the sigmoid (as A-SKD's hook does).",
        "loss.meanOverMaps": "Mean over maps (true) or their sum (false, as A-SKD's loss_sum).",
        "loss.embedding": "Weight of embedding distillation against the teacher's embedding.",
        "loss.embeddingKind": "Distance of embedding distillation.",
        "loss.balanceEvery": "Measure each loss term's gradient norm on the student every N steps (0 = never).",
        "checkpoints.every": "Write a checkpoint every N optimizer steps (0 = only at the end).",
        "checkpoints.keep": "Keep the last K checkpoints of each phase.",
        "checkpoints.average": "Average the student's last K checkpoints (1 = no averaging).",
        "checkpoints.bnBatches": "Batches (per rank) re-estimating batch-norm statistics of the averaged model.",
        "dist.bucketMB": "Size of the gradient all-reduce buckets in MiB.",
        "dist.firstBucketKB": "Size of the first (last layers') gradient bucket in KiB.",
        "dist.overlap": "Overlap the gradient all-reduce with backward (false = one blocking all-reduce).",
        "dist.syncBN": "All-reduce batch-norm statistics across ranks in forward and backward.",
        "dist.checkEvery": "Compare parameter checksums across ranks every N steps (and before every checkpoint).",
        "dist.stallTimeout": "Seconds a rank may wait in one collective before the job ends as stalled, naming the ranks that did not arrive (0 = wait forever).",
        "eval.factors": "Degradation factors evaluated (each a column xN).",
        "eval.batch": "Evaluation batch per rank.",
        "eval.flip": "Flip test: add the embedding of the mirrored image.",
        "eval.down": "Down-sampling kernel of the evaluation degradation.",
        "eval.up": "Up-sampling kernel of the evaluation degradation.",
        "eval.degrade": "Which images of each pair are degraded: probe (the second, as the paper) or both (as A-SKD's code).",
        "eval.blur": "Blur [sigmaX, sigmaY] after up-sampling at factors > 1 (null = none).",
        "eval.blurKernel": "Size of the evaluation blur kernel (odd).",
        "eval.pairDistances": "Keep every pair's squared L2 distance in eval/results.json.",
        "eval.identification": "Closed-set identification (CMC): tinyface:ROOT or folders:PROBE,MATCH[,DISTRACTOR] (null = off).",
        "eval.survface": "Open-set verification (TAR@FAR): POSITIVE_LIST,NEGATIVE_LIST@ROOT (null = off).",
        "guards.maxSkippedSteps": "Stop when more than this many steps had non-finite loss or gradients.",
    ]

    /// The shape of every option (optional ones included), from the default configuration.
    static var shape: [String: JSONShape] {
        guard case .object(let known) = JSONShape(sample: RunConfig()) else { preconditionFailure("RunConfig is a struct") }
        return known
    }

    /// Every option's dotted key with its shape, sorted by key; sections are not listed.
    static func leafShapes() -> [(key: String, shape: JSONShape)] {
        var out: [(String, JSONShape)] = []
        func walk(_ fields: [String: JSONShape], _ prefix: String) {
            for (k, s) in fields {
                let full = prefix.isEmpty ? k : prefix + "." + k
                if case .object(let sub) = s { walk(sub, full) } else { out.append((full, s)) }
            }
        }
        walk(shape, "")
        return out.sorted { $0.0 < $1.0 }
    }

    /// Every dotted key, sections included ("teacher", "teacher.checkpoint", ...).
    static func allKeys() -> [String] {
        var out: [String] = []
        func walk(_ fields: [String: JSONShape], _ prefix: String) {
            for (k, s) in fields {
                let full = prefix.isEmpty ? k : prefix + "." + k
                out.append(full)
                if case .object(let sub) = s { walk(sub, full) }
            }
        }
        walk(shape, "")
        return out.sorted()
    }

    /// This configuration as a JSON tree with every option present: optional options that are not
    /// set are null.
    func fullTree() -> [String: Any] {
        var tree = try! JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as! [String: Any]
        func fill(_ t: inout [String: Any], _ fields: [String: JSONShape]) {
            for (k, s) in fields {
                if case .object(let sub) = s {
                    var inner = t[k] as? [String: Any] ?? [:]
                    fill(&inner, sub)
                    t[k] = inner
                } else if t[k] == nil {
                    t[k] = NSNull()
                }
            }
        }
        fill(&tree, Self.shape)
        return tree
    }

    /// Pretty, sorted-key JSON of every option, unset optional ones as null (what `kdtrain config`
    /// prints; it reads back as a `--config` file to the same configuration).
    public var fullJSON: String {
        let data = try! JSONSerialization.data(withJSONObject: fullTree(), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// Every option with what it takes, its default and its description, sorted by key.
    public static var options: [ConfigOption] {
        let defaults = RunConfig().fullTree()
        return leafShapes().map { key, shape in
            var v: Any? = defaults
            for part in key.split(separator: ".") { v = (v as? [String: Any])?[String(part)] }
            return ConfigOption(key: key, takes: shape.expected, defaultJSON: renderJSON(v ?? NSNull(), shape: shape),
                                summary: descriptions[key] ?? "")
        }
    }

    /// `kdtrain config --explain`: one line per option, "key = default  (takes) description"; with
    /// the value of this configuration where it differs from the default.
    public func explanation() -> String {
        let current = fullTree(), shapes = Dictionary(uniqueKeysWithValues: Self.leafShapes().map { ($0.key, $0.shape) })
        return Self.options.map { o in
            var v: Any? = current
            for part in o.key.split(separator: ".") { v = (v as? [String: Any])?[String(part)] }
            let now = renderJSON(v ?? NSNull(), shape: shapes[o.key] ?? .any)
            let set = now == o.defaultJSON ? "" : " [set: \(now)]"
            return "\(o.key) = \(o.defaultJSON)\(set)  (\(o.takes)) \(o.summary)"
        }.joined(separator: "\n")
    }

    /// " (did you mean X?)" for an unknown dotted key `full`, over every key of every section: a
    /// key scores its edit distance to `full`, or the distance of its last part to the last part
    /// given (plus one when a section was given: the section is wrong then), so `teacher.checkpont`
    /// -> teacher.checkpoint, `checkpont` -> student.checkpoint or teacher.checkpoint,
    /// `optim.temperature` -> loss.temperature. Nothing within max(2, |full| / 3): the keys of the
    /// section the key was given in (`local`, under `prefix`).
    static func keySuggestion(_ full: String, local: [String], prefix: String) -> String {
        let full = String(full.prefix(200))
        let parts = full.split(separator: ".", omittingEmptySubsequences: false)
        let last = String(parts.last ?? ""), sectioned = parts.count > 1
        let scored = allKeys().map { key -> (String, Int) in
            let keyLast = String(key.split(separator: ".").last ?? "")
            return (key, min(EditDistance.distance(full, key), EditDistance.distance(last, keyLast) + (sectioned ? 1 : 0)))
        }
        if let best = scored.map(\.1).min(), best <= max(2, full.count / 3) {
            return " (did you mean \(scored.filter { $0.1 == best }.map(\.0).sorted().joined(separator: " or "))?)"
        }
        let known = local.sorted().map { prefix.isEmpty ? $0 : prefix + "." + $0 }
        return " (known: \(known.joined(separator: ", ")))"
    }
}
