// A study over one run directory: one teacher (trained once, or loaded), then every variant's
// student for every seed, each evaluated right after training (so no more than one student is
// in memory), and the report over seeds:
//
//   RUN/<name>/seed-<s>/<slug>/step-*.safetensors   each student's checkpoints
//   RUN/eval/<name>.json, <name>.md, <name>.svg      rows aggregated over seeds (chart with seed spread)
//   RUN/eval/<name>-seeds.json                       every per-seed row, with its fold accuracies
//   RUN/report.md
import CStop
import Evaluation
import FaceData
import Model
import Foundation
import KDCore

/// One student of a study: its label in tables, its folder name and its configuration.
public struct StudyVariant {
    public var label: String, slug: String, config: RunConfig
    public init(label: String, slug: String, config: RunConfig) { self.label = label; self.slug = slug; self.config = config }
}

extension Run {
    /// Runs the study. Returns false when a stop signal interrupted it (resume with --resume auto).
    /// - Parameters: combined: indices into `variants` of the row with both kinds of knowledge and
    ///   of the rows with each alone (for the "both >= each" check); the baseline is variants[0];
    ///   distilled: the rows the shape checks hold to the baseline (default: all but the baseline).
    func study(name: String, heading: String, variants: [StudyVariant], seeds: Int, notes: [String],
               combined: (both: Int, parts: [Int])?, distilled: [Int]? = nil) throws -> Bool {
        guard seeds >= 1 && seeds <= 100 else { throw ConfigError("--seeds \(seeds): must be in 1...100") }
        let t0 = Date()
        let root = dir + "/" + name
        try comm.agree {
            if case .path(let p) = resume {
                throw ConfigError("\(name) --resume \(p): a study has one student per variant and seed; continue it with --resume auto")
            }
            if resume == .none, comm.isRoot,
               let found = FileManager.default.enumerator(atPath: root)?.first(where: { ($0 as? String)?.hasSuffix(".safetensors") == true }) {
                throw ConfigError("\(root): already holds checkpoints (\(found)) of an earlier \(name); use --resume auto to continue it, or another --run-dir")
            }
        }
        try checkDataSources()
        guard let teacher = try teacher() else { return false }
        let (pairs, dataset) = try pairSet()
        let ev = try Evaluator(comm: comm, config: cfg, pairs: pairs, datasetName: dataset)
        ev.progress = { [log] in log.say($0) }
        log.say("\(name): evaluating the teacher")
        var rows = try ev.evaluate(teacher, name: "teacher (HR only)")
        var balances: [(String, LossBalance)] = []
        for k in 0..<seeds {
            let seed = cfg.seed &+ UInt64(k)
            for v in variants {
                var c = v.config
                c.seed = seed
                if try stopRequested(before: "\(v.label), seed \(seed)") { return false }
                log.say("\(name): \(v.label), seed \(seed) (\(k + 1)/\(seeds))")
                guard let s = try student(teacher: teacher, phaseDir: "\(root)/seed-\(seed)/\(v.slug)", config: c,
                                          variant: "\(v.slug) seed \(seed)") else { return false }
                if !lastBalance.isEmpty && !balances.contains(where: { $0.0 == v.label }) { balances.append((v.label, lastBalance)) }
                if try stopRequested(before: "evaluating \(v.label), seed \(seed)") { return false }
                log.say("\(name): evaluating \(v.label), seed \(seed)")
                for var r in try ev.evaluate(s, name: v.label) {
                    r.seed = seed
                    rows.append(r)
                    log.record(["event": "evaluation", "study": name, "model": v.label, "seed": Int(seed), "factor": r.degradationFactor,
                                "accuracy": r.accuracy, "std": r.accuracyStd])
                }
            }
        }
        guard comm.isRoot else { return true }
        let labels = ["teacher (HR only)"] + variants.map(\.label)
        let summary = StudySummary(rows: rows, models: labels)
        let aggregated = EvaluationReport(title: "kdtrain \(name)", results: summary.aggregated())
        let base = URL(fileURLWithPath: layout.eval)
        try aggregated.writeJSON(to: base.appendingPathComponent(name + ".json"))
        try EvaluationReport(title: "kdtrain \(name), every seed", results: rows).writeJSON(to: base.appendingPathComponent(name + "-seeds.json"))
        try aggregated.writeSVG(dataset: dataset, to: base.appendingPathComponent(name + ".svg"))
        let comb = combined.map { (both: variants[$0.both].label, parts: $0.parts.map { variants[$0].label }) }
        let kdRows = distilled.map { $0.map { variants[$0].label } } ?? Array(variants.dropFirst().map(\.label))
        let tables = summary.markdown(baseline: variants[0].label, combined: comb, kdRows: kdRows)
        var balanceMD = ""
        for (label, b) in balances { balanceMD += "\n" + b.markdown(label: label) }
        try AtomicFile.write(Data(("# kdtrain \(name)\n" + tables + (balanceMD.isEmpty ? "" : "\n## Loss balance (first seed; mean over measurements)\n" + balanceMD)).utf8),
                             to: layout.evalFile("\(name).md"))
        log.say(tables)
        var md = "# \(heading)\n\n"
        md += "kdtrain \(kdtrainVersion), \(comm.size) rank(s), OpenBLAS core \(Compute.blasCore), \(Compute.threads) thread(s) per rank; wall time \(Int(Date().timeIntervalSince(t0))) s.\n\n"
        md += "Training data: `\(cfg.data.train)`; verification pairs: `\(cfg.data.eval)`; teacher `\(cfg.teacher.preset)` "
        md += cfg.teacher.checkpoint.map { "(loaded from `\($0)`)" } ?? "(\(cfg.teacher.epochs) epochs)"
        md += ", students `\(cfg.student.preset)`, \(cfg.student.epochs) epochs, global batch \(cfg.optim.batch), head \(cfg.marginKind); seeds \(cfg.seed)...\(cfg.seed &+ UInt64(seeds - 1)).\n\n"
        md += Run.evaluationProtocol(cfg) + "\n"
        md += tables
        if !balanceMD.isEmpty { md += "\n## Loss balance (first seed; mean over measurements every \(cfg.loss.balanceEvery) steps)\n" + balanceMD }
        md += "\n## Notes\n\n"
        for n in notes { md += "- \(n)\n" }
        md += "\nFiles: `config.json`, `metrics.jsonl`, `\(name)/seed-*/*/` (student checkpoints), `eval/\(name).json` (means over seeds), `eval/\(name)-seeds.json` (every seed, with fold accuracies), `eval/\(name).md`, `eval/\(name).svg`" + (cfg.teacher.checkpoint == nil ? ", `teacher/`" : "") + ".\n"
        try AtomicFile.write(Data(md.utf8), to: layout.report)
        log.say("report: \(dir)/report.md")
        return true
    }

    /// One sentence on how verification images are degraded.
    public static func evaluationProtocol(_ c: RunConfig) -> String {
        var s = c.eval.degrade == .probe ? "The probe (second) image of each pair is" : "Both images of each pair are"
        s += " down-sampled by the factor with \(c.eval.down) and up-sampled with \(c.eval.up)"
        if let b = c.eval.blur { s += ", then blurred by a \(c.eval.blurKernel)x\(c.eval.blurKernel) Gaussian (sigma x \(b[0]), y \(b[1]))" }
        return s + (c.eval.flip ? "; flip test." : ".")
    }
}

extension Run {
    /// The paper's Table 1 from one teacher: the student without distillation, with logit KD,
    /// with attention KD, with both; each over `seeds` seeds and evaluated at every factor.
    public func ablation(seeds: Int = 1) throws -> Bool {
        func variant(_ label: String, _ slug: String, kd: Bool, att: Bool) -> StudyVariant {
            var c = cfg
            if !kd { c.loss.kd = 0 }
            if !att { c.loss.attention = .none }
            if kd && c.loss.kd == 0 { c.loss.kd = 1 }
            if att && c.loss.attention == .none { c.loss.attention = .askd }
            return StudyVariant(label: label, slug: slug, config: c)
        }
        let variants = [variant("BasicNet (no distillation)", "basic", kd: false, att: false),
                        variant("+ logit KD", "kd", kd: true, att: false),
                        variant("+ attention KD", "att", kd: false, att: true),
                        variant("+ logit KD + attention KD", "kd-att", kd: true, att: true)]
        let att = variants[2].config.loss
        return try study(name: "ablation", heading: "kdtrain ablation (paper Table 1 shape)", variants: variants, seeds: seeds,
                         notes: ["Logit KD: T = \(variants[1].config.loss.temperature), weight \(variants[1].config.loss.kd); attention KD: \(Run.describeAttention(att)).",
                                 "Loss recipe: \(cfg.loss.recipe)" + { let o = LossRecipe.overriddenKeys(cfg.loss); return o.isEmpty ? "." : ", with \(o.joined(separator: ", ")) set explicitly." }()],
                         combined: (both: 3, parts: [1, 2]))
    }

    /// The comparison rows of the paper's Tables 3-4 from one teacher: CosFace and ArcFace students
    /// without distillation, attention transfer, A-SKD, and the paper's method, each with its
    /// recipe's cited values; same data, schedule and seeds.
    public func compare(seeds: Int = 1) throws -> Bool {
        func variant(_ label: String, _ slug: String, recipe: RecipeName, head: HeadKind? = nil) -> StudyVariant {
            var c = cfg
            let keep = c.loss.balanceEvery
            c.loss = LossRecipe.named[recipe]!.loss(); c.loss.balanceEvery = keep
            if let head {
                c.head.kind = head
                if head == .cosface { c.head.m = 0.35 } else if head == .arcface { c.head.m = 0.5 }
            }
            return StudyVariant(label: label, slug: slug, config: c)
        }
        // The baseline is the undistilled ArcFace student (the distilled rows use head.kind, ArcFace by default).
        let variants = [variant("ArcFace (no distillation)", "arcface", recipe: .none, head: .arcface),
                        variant("CosFace (no distillation)", "cosface", recipe: .none, head: .cosface),
                        variant("AT (attention transfer)", "at", recipe: .at),
                        variant("A-SKD", "askd", recipe: .askd),
                        variant("paper (CE + logit KD + A-SKD)", "paper", recipe: .paper)]
        return try study(name: "compare", heading: "kdtrain compare (paper Tables 3-4 shape)", variants: variants, seeds: seeds,
                         notes: LossRecipe.all.filter { [.none, .at, .askd, .paper].contains($0.id) }.map { "Recipe \($0.name): \($0.summary) (\($0.source))." }
                            + ["CosFace uses m = 0.35 (Wang et al.), ArcFace m = 0.5 (Deng et al.), both s = \(cfg.head.s); the distilled students use head.kind = \(cfg.head.kind)."],
                         combined: nil, distilled: [2, 3, 4])
    }

    static func describeAttention(_ l: RunConfig.Loss) -> String {
        switch l.attention {
        case .none: return "none"
        case .at: return "attention transfer on stage outputs, weight \(l.atWeight) per stage"
        case .askd, .both:
            var s = "A-SKD on \(l.blocks) block(s) of stages \(l.stages.map { "\($0)" } ?? "all"), "
            s += [l.channelMaps ? "channel" : nil, l.spatialMaps ? "spatial" : nil].compactMap { $0 }.joined(separator: " + ")
            s += " maps \(l.beforeSigmoid ? "before" : "after") the sigmoid, \(l.meanOverMaps ? "mean" : "sum") over maps, weight \(l.attentionWeight)"
            if l.attention == .both { s += "; plus attention transfer, weight \(l.atWeight) per stage" }
            return s
        }
    }
}
