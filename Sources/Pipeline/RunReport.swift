// Evaluation of a run's models (verification, and identification and open-set verification when
// configured) into RUN/eval, and RUN/report.md.
import CStop
import Dist
import Evaluation
import FaceData
import Foundation
import Model
import KDCore

extension Run {
    /// Evaluates models and writes eval/results.json, results.md, accuracy.svg (rank 0): verification,
    /// and identification (eval.identification) and open-set verification (eval.survface) when set.
    @discardableResult
    public func evaluate(_ models: [(String, FaceModel)], title: String, prefix: String = "results") throws -> EvaluationReport? {
        let (pairs, name) = try pairSet()
        let ev = try Evaluator(comm: comm, config: cfg, pairs: pairs, datasetName: name)
        ev.progress = { [log] in log.say($0) }
        var results: [EvaluationResult] = []
        for (label, m) in models {
            let r = try ev.evaluate(m, name: label)
            results += r
            for x in r { log.record(["event": "evaluation", "model": label, "factor": x.degradationFactor, "accuracy": x.accuracy,
                                     "std": x.accuracyStd, "tar_at_far": x.tarAtFar, "auc": x.auc, "threshold": x.threshold]) }
        }
        var identification: [IdentificationResult]? = nil, openSet: [OpenSetResult]? = nil
        if let set = try identificationSet() {
            let ev = try IdentificationEvaluator(comm: comm, config: cfg, set: set,
                                                 datasetName: RunConfig.Eval.identificationName(cfg.eval.identification!))
            var rows: [IdentificationResult] = []
            for (label, m) in models {
                let r = try ev.evaluate(m, name: label)
                rows += r
                for x in r { log.record(["event": "identification", "model": label, "factor": x.degradationFactor,
                                         "ranks": x.ranks, "cmc": x.cmc]) }
            }
            identification = rows
        }
        if let pairs = try openSetPairs() {
            let ev = try Evaluator(comm: comm, config: cfg, pairs: pairs, datasetName: "SurvFace")
            var rows: [OpenSetResult] = []
            for (label, m) in models {
                let r = try ev.openSet(m, name: label)
                rows += r
                for x in r { log.record(["event": "open-set verification", "model": label, "factor": x.degradationFactor,
                                         "far": x.points.map(\.farTarget), "tar": x.points.map(\.tar), "auc": x.auc]) }
            }
            openSet = rows
        }
        guard comm.isRoot else { return nil }
        let report = EvaluationReport(title: title, results: results, identification: identification, openSet: openSet)
        let base = URL(fileURLWithPath: layout.eval)
        try report.writeJSON(to: base.appendingPathComponent(prefix + ".json"))
        try report.writeMarkdown(to: base.appendingPathComponent(prefix + ".md"))
        try report.writeSVG(dataset: name, to: base.appendingPathComponent(prefix == "results" ? "accuracy.svg" : prefix + ".svg"))
        log.say(report.markdownTables())
        return report
    }

    /// Writes RUN/report.md: what ran, the results table, where the files are.
    public func writeReport(_ report: EvaluationReport?, heading: String, notes: [String]) throws {
        guard comm.isRoot, let report else { return }
        var md = "# \(heading)\n\n"
        md += "kdtrain \(kdtrainVersion), \(comm.size) rank(s), OpenBLAS core \(Compute.blasCore), \(Compute.threads) thread(s) per rank.\n\n"
        md += "Training data: `\(cfg.data.train)`; verification pairs: `\(cfg.data.eval)`; teacher `\(cfg.teacher.preset)`, student `\(cfg.student.preset)`, head \(cfg.marginKind).\n\n"
        md += Run.evaluationProtocol(cfg) + "\n"
        // The report's own title line is this file's heading already.
        md += report.verificationTables().split(separator: "\n", omittingEmptySubsequences: false).dropFirst()
            .joined(separator: "\n").replacingOccurrences(of: "\n## ", with: "\n## Verification set: ") + "\n"
        if let s = cfg.eval.identification {
            md += "\nIdentification: `\(s)`; probes degraded at each factor, the gallery "
                + (cfg.eval.degrade == .both ? "(matched and distractors) degraded by the same factor" : "kept at x1") + ".\n"
        }
        if let s = cfg.eval.survface {
            md += "\nOpen-set verification: `\(s)`; pairs degraded as in verification.\n"
        }
        md += report.protocolTables()
        for n in notes { md += "- \(n)\n" }
        md += "\nFiles: `config.json`, `metrics.jsonl`, `teacher/`, `student/`, `eval/results.json`, `eval/results.md`, `eval/accuracy.svg`.\n"
        try AtomicFile.write(Data(md.utf8), to: layout.report)
    }
}
