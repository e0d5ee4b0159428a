// A multi-seed study (kdtrain ablation / compare): per-seed verification rows of several models,
// aggregated over seeds, compared against a baseline over seeds x folds, and written as the
// tables and shape checks of the report.
import Foundation

public struct StudySummary: Sendable {
    /// Per-seed rows (`seed` set) and rows of models trained once (the teacher, `seed` nil).
    public let rows: [EvaluationResult]
    /// Model labels in report order.
    public let models: [String]

    public init(rows: [EvaluationResult], models: [String]) { self.rows = rows; self.models = models }

    public var datasets: [String] { uniqueInOrder(rows.map(\.dataset)) }
    public func factors(_ dataset: String) -> [Int] { Array(Set(rows.filter { $0.dataset == dataset }.map(\.degradationFactor))).sorted() }

    func cell(_ dataset: String, _ model: String, _ factor: Int) -> [EvaluationResult] {
        rows.filter { $0.dataset == dataset && $0.model == model && $0.degradationFactor == factor }
            .sorted { ($0.seed ?? 0) < ($1.seed ?? 0) }
    }

    /// One row per (data set, model, factor): accuracy = mean over seeds, accuracyStd = mean fold
    /// std, seedStd = sample std over seeds, seeds = their number.
    public func aggregated() -> [EvaluationResult] {
        var out: [EvaluationResult] = []
        for d in datasets {
            for m in models {
                for f in factors(d) {
                    let c = cell(d, m, f)
                    guard var r = c.first else { continue }
                    let acc = SeedStatistics.meanStd(c.map(\.accuracy))
                    r.accuracy = acc.mean
                    r.accuracyStd = c.map(\.accuracyStd).reduce(0, +) / Double(c.count)
                    r.tarAtFar = c.map(\.tarAtFar).reduce(0, +) / Double(c.count)
                    r.auc = c.map(\.auc).reduce(0, +) / Double(c.count)
                    r.threshold = c.map(\.threshold).reduce(0, +) / Double(c.count)
                    r.seeds = c.count; r.seedStd = c.count > 1 ? acc.std : nil
                    r.seed = nil; r.foldAccuracies = nil; r.foldThresholds = nil; r.pairDistances = nil
                    out.append(r)
                }
            }
        }
        return out
    }

    /// `model` against `baseline` at one factor, paired over seeds x folds.
    public struct Comparison: Sendable, Equatable {
        public var factor: Int
        public var paired: SeedStatistics.Paired?
        /// Seeds where `model`'s mean accuracy beats the baseline's, of `seeds` paired seeds.
        public var wins: Int, seeds: Int
        /// Mean difference in accuracy points.
        public var points: Double
    }

    public func compare(_ model: String, against baseline: String, dataset: String) -> [Comparison] {
        factors(dataset).compactMap { f in
            let a = cell(dataset, model, f), b = cell(dataset, baseline, f)
            let seeds = Set(a.compactMap(\.seed)).intersection(b.compactMap(\.seed)).sorted()
            guard !seeds.isEmpty else { return nil }
            var x: [Double] = [], y: [Double] = [], wins = 0, diff = 0.0
            for s in seeds {
                let ra = a.first { $0.seed == s }!, rb = b.first { $0.seed == s }!
                if ra.accuracy > rb.accuracy { wins += 1 }
                diff += ra.accuracy - rb.accuracy
                if let fa = ra.foldAccuracies, let fb = rb.foldAccuracies, fa.count == fb.count { x += fa; y += fb }
            }
            return Comparison(factor: f, paired: SeedStatistics.pairedTTest(x, y), wins: wins, seeds: seeds.count,
                              points: diff / Double(seeds.count) * 100)
        }
    }

    static func cellText(_ c: Comparison) -> String {
        var s = String(format: "%+.2f", c.points)
        if let p = c.paired?.p { s += p < 0.001 ? " (p < 0.001" : String(format: " (p %.3f", p) } else { s += " (p –" }
        return s + ", \(c.wins)/\(c.seeds) seeds)"
    }

    /// The accuracy table (mean ± seed std, fold std in brackets), the paired differences against
    /// `baseline`, the combined-versus-parts table and the paper's shape checks.
    public func markdown(baseline: String?, combined: (both: String, parts: [String])?, kdRows: [String]) -> String {
        var md = ""
        let agg = aggregated()
        for d in datasets {
            let fs = factors(d)
            let seeds = agg.compactMap(\.seeds).max() ?? 1
            md += "\n## \(d)\n\n"
            md += seeds > 1
                ? "Verification accuracy (%): mean ± std over \(seeds) seeds, and in brackets the mean 10-fold std.\n\n"
                : "Verification accuracy (%): mean ± std over the 10 folds (one seed).\n\n"
            md += "| Model |" + fs.map { " x\($0) |" }.joined() + "\n|:---|" + String(repeating: "---:|", count: fs.count) + "\n"
            for m in models {
                md += "| \(m.replacingOccurrences(of: "|", with: "\\|")) |"
                for f in fs {
                    guard let r = agg.first(where: { $0.dataset == d && $0.model == m && $0.degradationFactor == f }) else { md += " – |"; continue }
                    if let sd = r.seedStd { md += " \(percent(r.accuracy)) ± \(percent(sd)) (\(percent(r.accuracyStd))) |" }
                    else { md += " \(percent(r.accuracy)) ± \(percent(r.accuracyStd)) |" }
                }
                md += "\n"
            }
            guard let baseline else { continue }
            md += "\nDifference against \(baseline) (accuracy points, mean over seeds; two-sided paired t-test over seeds x folds; seeds where the row is better):\n\n"
            md += "| Model |" + fs.map { " x\($0) |" }.joined() + "\n|:---|" + String(repeating: "---:|", count: fs.count) + "\n"
            for m in models where m != baseline {
                let cs = compare(m, against: baseline, dataset: d)
                guard !cs.isEmpty else { continue }
                md += "| \(m) |" + fs.map { f in cs.first { $0.factor == f }.map { " \(StudySummary.cellText($0)) |" } ?? " – |" }.joined() + "\n"
            }
            if let combined {
                md += "\nBoth kinds of knowledge against each alone:\n\n"
                md += "| Comparison |" + fs.map { " x\($0) |" }.joined() + "\n|:---|" + String(repeating: "---:|", count: fs.count) + "\n"
                for part in combined.parts {
                    let cs = compare(combined.both, against: part, dataset: d)
                    md += "| \(combined.both) vs \(part) |" + fs.map { f in cs.first { $0.factor == f }.map { " \(StudySummary.cellText($0)) |" } ?? " – |" }.joined() + "\n"
                }
            }
            md += "\n" + shapeChecks(dataset: d, baseline: baseline, combined: combined, kdRows: kdRows).map { "- \($0)\n" }.joined()
        }
        return md
    }

    /// The paper's shape, checked on the means over seeds: (a) each KD row beats the baseline at
    /// x4 and x8 by >= 5 points; (b) both kinds >= each alone at x4 and x8; (c) x1 within 1 point of
    /// the baseline or better.
    public func shapeChecks(dataset d: String, baseline: String, combined: (both: String, parts: [String])?, kdRows: [String]) -> [String] {
        let agg = aggregated()
        func acc(_ m: String, _ f: Int) -> Double? { agg.first { $0.dataset == d && $0.model == m && $0.degradationFactor == f }?.accuracy }
        var out: [String] = []
        let low = [4, 8].filter { f in factors(d).contains(f) }
        func verdict(_ ok: Bool) -> String { ok ? "holds" : "does NOT hold" }
        if !kdRows.isEmpty, !low.isEmpty {
            var ok = true, parts: [String] = []
            for m in kdRows { for f in low {
                guard let a = acc(m, f), let b = acc(baseline, f) else { continue }
                ok = ok && a - b >= 0.05; parts.append("\(m) x\(f) \(String(format: "%+.1f", (a - b) * 100))")
            } }
            out.append("(a) every distilled row beats \(baseline) by >= 5 points at x4 and x8: \(verdict(ok)) (\(parts.joined(separator: "; ")))")
        }
        if let combined, !low.isEmpty {
            var ok = true, parts: [String] = []
            for p in combined.parts { for f in low {
                guard let a = acc(combined.both, f), let b = acc(p, f) else { continue }
                ok = ok && a >= b; parts.append("vs \(p) x\(f) \(String(format: "%+.1f", (a - b) * 100))")
            } }
            out.append("(b) \(combined.both) >= each alone at x4 and x8: \(verdict(ok)) (\(parts.joined(separator: "; ")))")
        }
        if factors(d).contains(1), !kdRows.isEmpty {
            var ok = true, parts: [String] = []
            for m in kdRows {
                guard let a = acc(m, 1), let b = acc(baseline, 1) else { continue }
                ok = ok && a - b >= -0.01; parts.append("\(m) \(String(format: "%+.1f", (a - b) * 100))")
            }
            out.append("(c) x1 within 1 point of \(baseline) or better: \(verdict(ok)) (\(parts.joined(separator: "; ")))")
        }
        return out
    }
}
