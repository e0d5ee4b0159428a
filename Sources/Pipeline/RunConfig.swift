// The run configuration: every option of a kdtrain run, as one Codable value. It is read from a
// JSON file (`--config`), overridden on the command line (`--set section.key=value`), validated
// as a whole before any work starts (one line per mistake), and written into the run directory.
// The options that take one of a few words are typed (ConfigChoice.swift); the catalogue of
// options with their descriptions, and the unknown-key suggestion, are in ConfigOptions.swift.
import FaceData
import Foundation
import KDCore
import Model

public struct RunConfig: Codable, Equatable, Sendable {
    public struct Data: Codable, Equatable, Sendable {
        /// Training source (see README "Data"): synthetic[:...], folder:PATH, rec:PATH. The default
        /// is sized so that the whole job takes under 10 minutes on 2 cores.
        public var train = "synthetic:ids=200,images=30"
        /// Verification pairs: synthetic[:...], folder:PATH, bin:PATH, pairs:LIST@ROOT.
        public var eval = "synthetic:pairs=600"
        /// Decode/augment threads per rank.
        public var threads = 2
        /// Batches prepared ahead of the trainer.
        public var prefetch = 2
        /// Kernel bringing source images to the network input size: area, bilinear, bicubic.
        public var resize = InputResize.bilinear
        public var flip = true
        /// Random shift in pixels (both axes), same for both views.
        public var maxShift = 2
    }
    public struct Degrade: Codable, Equatable, Sendable {
        /// Training picks one factor per sample from this set (1 = no degradation).
        public var trainFactors: [Float] = [1, 2, 4, 8]
        /// Down-sampling kernel (area, bilinear, bicubic, nearest); up-sampling is bicubic.
        public var down = ResizeKernel.bicubic
        public var up = ResizeKernel.bicubic
        /// Optional extra degradations, each applied with its probability: Gaussian blur (sigma in
        /// pixels at full size), additive Gaussian noise (sigma on the 0-255 scale), JPEG re-compression.
        public var blurProbability: Float = 0
        public var blurSigma = ConfigRange<Float>(0.5, 1.5)
        public var noiseProbability: Float = 0
        public var noiseSigma = ConfigRange<Float>(1, 5)
        public var jpegProbability: Float = 0
        public var jpegQuality = ConfigRange<Int>(30, 90)
    }
    public struct Net: Codable, Equatable, Sendable {
        public var preset: String
        /// Use this checkpoint instead of training (teacher) / to initialize (student).
        public var checkpoint: String? = nil
        public var epochs: Float
        public var lr: Float
        public init(preset: String, epochs: Float, lr: Float) { self.preset = preset; self.epochs = epochs; self.lr = lr }
    }
    public struct Head: Codable, Equatable, Sendable {
        /// softmax, cosface or arcface.
        public var kind = HeadKind.arcface
        public var s: Float = 32
        public var m: Float = 0.5
    }
    public struct Optim: Codable, Equatable, Sendable {
        /// Global batch (all ranks together, all micro-batches); must divide by ranks x accumulate.
        public var batch = 64
        /// Micro-batches per optimizer step (gradient accumulation).
        public var accumulate = 1
        public var momentum: Float = 0.9
        public var weightDecay: Float = 5e-4
        public var nesterov = false
        /// Exempt batch-norm, PReLU and bias parameters from weight decay.
        public var decayExempt = true
        public var warmupSteps = 50
        /// cosine, multistep, poly, constant.
        public var schedule = ScheduleKind.cosine
        /// For multistep: milestones as fractions of training (0..1) and the factor.
        public var milestones: [Float] = [0.6, 0.85]
        public var gamma: Float = 0.1
        public var power: Float = 2
        /// Final LR as a fraction of the base LR (cosine, poly).
        public var floor: Float = 0.01
        /// Clip gradients to this global norm (0 = off).
        public var clipNorm: Float = 0
    }
    /// The combined loss. The defaults are the `paper` recipe (LossRecipes.swift): recognition +
    /// Hinton KD + A-SKD attention similarity as the A-SKD code computes it. `loss.recipe=NAME`
    /// sets every key below to that recipe's cited values; keys given explicitly still win.
    public struct Loss: Codable, Equatable, Sendable {
        /// The recipe the other keys start from: paper, askd, fskd, at, hinton, none.
        public var recipe = RecipeName.paper
        public var recognition: Float = 1
        public var kd: Float = 1
        public var temperature: Float = 4
        /// Attention-map distillation: askd (attention similarity on CBAM maps), at (attention
        /// transfer on stage outputs), both, none.
        public var attention = AttentionKind.askd
        /// Weight of each A-SKD map term (A-SKD: distill_attn_param = 5, every term).
        public var attentionWeight: Float = 5
        /// Weight of attention transfer per stage when attention is "at" or "both" (Zagoruyko: beta/2 = 500).
        public var atWeight: Float = 500
        /// Stages distilled (default: all).
        public var stages: [Int]? = nil
        /// Blocks whose CBAM maps A-SKD compares: "every" block of the chosen stages, the "last" of
        /// each, or a list of student blocks "stage.block,..." (e.g. "0.0,2.1").
        public var blocks = "every"
        public var channelMaps = true
        public var spatialMaps = true
        /// Compare CBAM maps before the sigmoid (A-SKD's hook returns the pre-sigmoid maps).
        public var beforeSigmoid = true
        /// Mean over maps (true) or their sum (false, as A-SKD's loss_sum).
        public var meanOverMaps = false
        public var embedding: Float = 0
        /// cosine, mse, normalized-l2.
        public var embeddingKind = EmbeddingKind.cosine
        /// Measure each term's gradient norm on the student every N steps (0 = never).
        public var balanceEvery = 50
    }
    public struct Checkpoints: Codable, Equatable, Sendable {
        /// Write a checkpoint every N optimizer steps (0 = only at the end).
        public var every = 50
        /// Keep the last K checkpoints of each phase.
        public var keep = 4
        /// Average the student's last K checkpoints (1 = no averaging).
        public var average = 3
        /// Batches used to re-estimate batch-norm statistics of the averaged model (per rank).
        public var bnBatches = 8
    }
    public struct DistOptions: Codable, Equatable, Sendable {
        public var bucketMB: Float = 4
        public var firstBucketKB: Float = 256
        public var overlap = true
        public var syncBN = false
        /// Compare parameter checksums across ranks every N steps (and before every checkpoint).
        public var checkEvery = 100
        /// Seconds a rank may wait in one collective before the job ends as stalled, naming the
        /// ranks that did not arrive (0 = wait forever). Above the longest stretch one rank works
        /// alone while the others wait (rank 0 writing a checkpoint or a report).
        public var stallTimeout: Double = 600
    }
    public struct Eval: Codable, Equatable, Sendable {
        public var factors: [Float] = [1, 2, 4, 8]
        public var batch = 64
        public var flip = true
        public var down = ResizeKernel.bicubic
        public var up = ResizeKernel.bicubic
        /// Which images of each pair are degraded: "probe" (the second image of each pair, as the
        /// paper degrades probes) or "both" (as A-SKD's evaluation code does).
        public var degrade = DegradedImages.probe
        /// Optional blur after up-sampling at factors > 1: [sigmaX, sigmaY] of a Gaussian of size
        /// `blurKernel`, reflect padding (A-SKD: [0.1, 2.0], 5). null = none.
        public var blur: [Float]? = nil
        public var blurKernel = 5
        /// Keep the squared L2 distance of every pair in eval/results.json (`pairDistances`, P values
        /// per model and factor) as well as the per-fold accuracies and thresholds.
        public var pairDistances = false
        /// Closed-set identification, CMC rank-1/5/20 (TinyFace): "tinyface:ROOT" (ROOT/Probe,
        /// ROOT/Gallery_Match, ROOT/Gallery_Distractor) or "folders:PROBE,MATCH[,DISTRACTOR]"; null = off.
        public var identification: String? = nil
        /// Open-set verification, TAR@FAR 0.3/0.1/0.01/0.001 (QMUL-SurvFace):
        /// "POSITIVE_LIST,NEGATIVE_LIST@ROOT" (lines "PATH1 PATH2" relative to ROOT); null = off.
        public var survface: String? = nil
    }
    public struct Guard: Codable, Equatable, Sendable {
        /// Stop when more than this many steps had non-finite loss or gradients.
        public var maxSkippedSteps = 20
    }

    public var seed: UInt64 = 1
    public var data = Data()
    public var degrade = Degrade()
    public var teacher = Net(preset: "small-teacher", epochs: 2, lr: 0.1)
    public var student = Net(preset: "small", epochs: 2, lr: 0.1)
    public var head = Head()
    public var optim = Optim()
    public var loss = Loss()
    public var checkpoints = Checkpoints()
    public var dist = DistOptions()
    public var eval = Eval()
    public var guards = Guard()
    /// Log a progress line every N steps (rank 0).
    public var logEvery = 20

    public init() {}

    // MARK: reading, overriding, validating

    /// The configuration as a JSON object (sorted keys, pretty).
    public var json: String {
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try! enc.encode(self), as: UTF8.self)
    }

    /// Builds a configuration from an optional JSON file and `section.key=value` overrides. Unknown
    /// keys, wrong types and unparsable values are errors naming the key.
    public static func load(file: String?, overrides: [String]) throws -> RunConfig {
        // Each mistake is one line, whatever the file or option held (see KDCore.oneLine).
        do { return try loadUnchecked(file: file, overrides: overrides) } catch let e as ConfigError { throw ConfigError(oneLine(e.description)) }
    }

    static func loadUnchecked(file: String?, overrides: [String]) throws -> RunConfig {
        var tree = try JSONSerialization.jsonObject(with: JSONEncoder().encode(try LossRecipe.defaults(file: file, overrides: overrides))) as! [String: Any]
        // Every option with its type, optional ones (absent from the encoded defaults) included.
        let known = Self.shape
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ConfigError("\(file): cannot read the file") }
            guard let obj = try? JSONSerialization.jsonObject(with: data), let user = obj as? [String: Any] else {
                throw ConfigError("\(file): not a JSON object")
            }
            try merge(user, into: &tree, known: known, path: "", source: file)
        }
        for o in overrides {
            guard let eq = o.firstIndex(of: "="), eq != o.startIndex else { throw ConfigError("--set \(o): expected section.key=value") }
            let key = String(o[..<eq]), raw = String(o[o.index(after: eq)...])
            let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !parts.contains(where: \.isEmpty) else { throw ConfigError("--set \(o): empty key in '\(key)'") }
            // A string or choice option takes the text as it is (`--set head.kind=arcface`, `--set data.train=1`),
            // or, written as a JSON string (`--set loss.recipe='"hinton"'`, as config.json has it), its content.
            var shape: JSONShape? = .object(known)
            for part in parts { if case .object(let f)? = shape { shape = f[part] } else { shape = nil } }
            let text = raw.count >= 2 && raw.hasPrefix("\"") && raw.hasSuffix("\"")
                ? ((try? JSONSerialization.jsonObject(with: Foundation.Data(raw.utf8), options: [.fragmentsAllowed])) as? String ?? raw) : raw
            let value: Any
            switch shape {
            case .string?, .choice?: value = text
            case .optional(.string)?: value = raw == "null" ? NSNull() : text
            default: value = (try? JSONSerialization.jsonObject(with: Foundation.Data(raw.utf8), options: [.fragmentsAllowed])) ?? raw
            }
            var nested: Any = value
            for part in parts.reversed() { nested = [part: nested] }
            try merge(nested as! [String: Any], into: &tree, known: known, path: "", source: "--set \(o)")
        }
        do {
            let data = try JSONSerialization.data(withJSONObject: tree)
            return try JSONDecoder().decode(RunConfig.self, from: data)
        } catch let e as DecodingError {
            // `merge` checked every value's type already; this is a last resort.
            throw ConfigError("configuration: \(describeDecodingError(e))")
        }
    }

    static func merge(_ user: [String: Any], into tree: inout [String: Any], known: [String: JSONShape], path: String, source: String) throws {
        for (k, v) in user.sorted(by: { $0.key < $1.key }) {
            let full = path.isEmpty ? k : path + "." + k
            guard let shape = known[k] else {
                throw ConfigError("\(source): unknown option '\(full)'" + keySuggestion(full, local: Array(known.keys), prefix: path))
            }
            if case .object(let sub) = shape {
                guard let u = v as? [String: Any] else {
                    throw ConfigError("\(source): '\(full)' is a section, not a value; set its options (\(sub.keys.sorted().map { full + "." + $0 }.prefix(3).joined(separator: ", ")), ...)")
                }
                var t = tree[k] as? [String: Any] ?? [:]
                try merge(u, into: &t, known: sub, path: full, source: source)
                tree[k] = t
            } else {
                if let problem = shape.problem(v, path: full) { throw ConfigError("\(source): \(problem)") }
                tree[k] = v
            }
        }
    }

    /// Every problem, one line each; empty when the configuration is usable. `worldSize` is the
    /// number of ranks the run has.
    public func problems(worldSize: Int) -> [String] {
        var p: [String] = []
        func need(_ ok: Bool, _ m: String) { if !ok { p.append(m) } }
        // Upper bounds: far above any sensible value, low enough that no Float -> Int conversion,
        // step arithmetic or buffer size derived from an option can overflow or exhaust memory.
        let maxThreads = 256, maxPrefetch = 64, maxShift = 64, maxFactor: Float = 64, maxBlurSigma: Float = 32
        let maxEpochs: Float = 100_000, maxHeadScale: Float = 128
        let maxBatch = 65_536, maxAccumulate = 1_024, maxSteps = 1_000_000_000, maxKeep = 1_000
        let maxBucketMB: Float = 4_096, maxFirstBucketKB: Float = 1_048_576, maxStallTimeout = 604_800.0
        need(data.threads >= 1 && data.threads <= maxThreads, "data.threads \(data.threads) must be in 1...\(maxThreads)")
        need(data.prefetch >= 1 && data.prefetch <= maxPrefetch, "data.prefetch \(data.prefetch) must be in 1...\(maxPrefetch)")
        need(data.maxShift >= 0 && data.maxShift <= maxShift, "data.maxShift \(data.maxShift) must be in 0...\(maxShift)")
        need(!degrade.trainFactors.isEmpty && degrade.trainFactors.allSatisfy { $0 >= 1 && $0 <= maxFactor },
             "degrade.trainFactors must be factors in 1...\(Int(maxFactor))")
        for (name, prob) in [("blurProbability", degrade.blurProbability), ("noiseProbability", degrade.noiseProbability),
                             ("jpegProbability", degrade.jpegProbability)] {
            need(prob >= 0 && prob <= 1, "degrade.\(name) must be in [0, 1]")
        }
        need(degrade.blurSigma.isOrdered(within: 0...maxBlurSigma) && degrade.blurSigma.lower > 0,
             "degrade.blurSigma must be [min, max] with 0 < min <= max <= \(Int(maxBlurSigma))")
        need(degrade.noiseSigma.isOrdered(within: 0...255), "degrade.noiseSigma must be [min, max] with 0 <= min <= max <= 255")
        need(degrade.jpegQuality.isOrdered(within: 1...100), "degrade.jpegQuality must be [min, max] within 1...100")
        for (name, net) in [("teacher", teacher), ("student", student)] {
            if let c = NetworkConfig.presets[net.preset] { p += c.problems(prefix: "\(name).preset \(net.preset)") }
            else {
                let near = EditDistance.nearest(net.preset, among: Array(NetworkConfig.presets.keys))
                p.append("\(name).preset: unknown preset '\(net.preset)' (\(NetworkConfig.presets.keys.sorted().joined(separator: ", ")))"
                         + (near.isEmpty ? "" : " (did you mean \(near.joined(separator: " or "))?)"))
            }
            need(net.epochs > 0 && net.epochs <= maxEpochs, "\(name).epochs \(net.epochs) must be in (0, \(Int(maxEpochs))]")
            need(net.lr > 0, "\(name).lr must be > 0")
        }
        need(head.s > 0 && head.s <= maxHeadScale, "head.s \(head.s) must be in (0, \(Int(maxHeadScale))]")
        need(head.m >= 0 && head.m < 1.5, "head.m must be in [0, 1.5)")
        need(optim.batch >= 2 && optim.batch <= maxBatch, "optim.batch \(optim.batch) must be in 2...\(maxBatch)")
        need(optim.accumulate >= 1 && optim.accumulate <= maxAccumulate, "optim.accumulate \(optim.accumulate) must be in 1...\(maxAccumulate)")
        if optim.accumulate < 1 || optim.accumulate > maxAccumulate || worldSize < 1 || worldSize > maxBatch {
            // Reported above (or an impossible world); the products below could overflow.
        } else if optim.batch % max(1, worldSize * optim.accumulate) != 0 {
            p.append("optim.batch \(optim.batch) is not divisible by ranks (\(worldSize)) x optim.accumulate (\(optim.accumulate))")
        } else if optim.batch / max(1, worldSize * optim.accumulate) < 2 {
            p.append("optim.batch \(optim.batch) leaves fewer than 2 samples per rank and micro-batch (batch norm needs 2)")
        }
        need(optim.momentum >= 0 && optim.momentum < 1, "optim.momentum must be in [0, 1)")
        need(!optim.nesterov || optim.momentum > 0, "optim.nesterov needs optim.momentum > 0")
        need(optim.weightDecay >= 0, "optim.weightDecay must be >= 0")
        need(optim.warmupSteps >= 0 && optim.warmupSteps <= maxSteps, "optim.warmupSteps \(optim.warmupSteps) must be in 0...\(maxSteps)")
        need(optim.milestones.allSatisfy { $0 > 0 && $0 < 1 }, "optim.milestones must be fractions in (0, 1)")
        need(optim.gamma > 0 && optim.gamma <= 1_000, "optim.gamma \(optim.gamma) must be in (0, 1000]")
        need(optim.power > 0 && optim.power <= 100, "optim.power \(optim.power) must be in (0, 100]")
        need(optim.floor >= 0 && optim.floor <= 1, "optim.floor must be in [0, 1]")
        need(optim.clipNorm >= 0 && optim.clipNorm.isFinite, "optim.clipNorm must be >= 0")
        need(optim.weightDecay <= 1, "optim.weightDecay \(optim.weightDecay) must be <= 1")
        need(loss.recognition >= 0 && loss.kd >= 0 && loss.attentionWeight >= 0 && loss.atWeight >= 0 && loss.embedding >= 0,
             "loss weights must be >= 0")
        need(loss.temperature >= 0.1 && loss.temperature <= 100, "loss.temperature \(loss.temperature) must be in 0.1...100")
        need(blockSelection != nil, "loss.blocks: '\(loss.blocks)' is not every, last or a list of stage.block (e.g. 0.0,2.1)")
        need(loss.balanceEvery >= 0, "loss.balanceEvery must be >= 0")
        need(checkpoints.every >= 0 && checkpoints.every <= maxSteps, "checkpoints.every \(checkpoints.every) must be in 0...\(maxSteps)")
        need(checkpoints.keep >= 1 && checkpoints.keep <= maxKeep, "checkpoints.keep \(checkpoints.keep) must be in 1...\(maxKeep)")
        need(checkpoints.average >= 1, "checkpoints.average must be >= 1")
        need(checkpoints.average <= checkpoints.keep, "checkpoints.average (\(checkpoints.average)) cannot exceed checkpoints.keep (\(checkpoints.keep))")
        need(checkpoints.bnBatches >= 0 && checkpoints.bnBatches <= 100_000, "checkpoints.bnBatches \(checkpoints.bnBatches) must be in 0...100000")
        need(dist.bucketMB > 0 && dist.bucketMB <= maxBucketMB, "dist.bucketMB \(dist.bucketMB) must be in (0, \(Int(maxBucketMB))]")
        need(dist.firstBucketKB > 0 && dist.firstBucketKB <= maxFirstBucketKB, "dist.firstBucketKB \(dist.firstBucketKB) must be in (0, \(Int(maxFirstBucketKB))]")
        need(dist.checkEvery >= 1 && dist.checkEvery <= maxSteps, "dist.checkEvery \(dist.checkEvery) must be in 1...\(maxSteps)")
        need(dist.stallTimeout == 0 || (dist.stallTimeout >= 1 && dist.stallTimeout <= maxStallTimeout),
             "dist.stallTimeout \(dist.stallTimeout) must be 0 (off) or seconds in 1...\(Int(maxStallTimeout))")
        need(!eval.factors.isEmpty && eval.factors.allSatisfy { $0 >= 1 && $0 <= maxFactor && $0 == $0.rounded() },
             "eval.factors must be whole factors in 1...\(Int(maxFactor)) (each is a column xN)")
        need(eval.batch >= 1 && eval.batch <= maxBatch, "eval.batch \(eval.batch) must be in 1...\(maxBatch)")
        need(guards.maxSkippedSteps >= 0 && guards.maxSkippedSteps <= maxSteps, "guards.maxSkippedSteps \(guards.maxSkippedSteps) must be in 0...\(maxSteps)")
        need(logEvery >= 1 && logEvery <= maxSteps, "logEvery \(logEvery) must be in 1...\(maxSteps)")
        if let b = eval.blur { need(b.count == 2 && b.allSatisfy { $0 > 0 && $0 <= 100 }, "eval.blur must be [sigmaX, sigmaY] with 0 < sigma <= 100, or null") }
        need(eval.blurKernel >= 1 && eval.blurKernel <= 31 && eval.blurKernel % 2 == 1, "eval.blurKernel must be odd, 1...31")
        p += eval.protocolProblems
        if let s = NetworkConfig.presets[student.preset], let t = NetworkConfig.presets[teacher.preset] {
            need(s.inputSize == t.inputSize, "teacher.preset \(teacher.preset) and student.preset \(student.preset) have different input sizes (\(t.inputSize) vs \(s.inputSize))")
            if p.isEmpty {
                p += DistillationStep.compatibilityProblems(student: s, teacher: t, studentClasses: 2, teacherClasses: 2,
                                                            loss: lossConfig(stageCount: s.depths.count)).map { "loss: " + $0 }
            }
        }
        for src in [("data.train", data.train), ("data.eval", data.eval)] where src.1.isEmpty {
            p.append("\(src.0) must not be empty")
        }
        return p.map(oneLine)
    }

    /// `loss.blocks` parsed; nil when it is not "every", "last" or a list of "stage.block".
    public var blockSelection: BlockSelection? {
        switch loss.blocks {
        case "every": return .every
        case "last": return .last
        default:
            let refs = loss.blocks.split(separator: ",").map { BlockRef(parsing: $0.drop(while: { $0 == " " })) }
            guard !refs.isEmpty, refs.allSatisfy({ $0 != nil }) else { return nil }
            return .listed(refs.map { $0! })
        }
    }

    public var marginKind: MarginKind {
        switch head.kind {
        case .softmax: return .softmax
        case .cosface: return .cosFace(s: head.s, m: head.m)
        case .arcface: return .arcFace(s: head.s, m: head.m)
        }
    }
}

/// A configuration mistake: one line naming the option or file.
public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
