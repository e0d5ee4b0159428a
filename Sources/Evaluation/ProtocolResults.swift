// Report rows of the identification (TinyFace CMC) and open-set verification (SurvFace TAR@FAR) protocols,
// and their markdown tables: one table per data set, one row per model and degradation factor.

import Foundation

/// Closed-set identification numbers of one model on one set at one degradation factor. Fractions in [0, 1].
public struct IdentificationResult: Codable, Sendable, Equatable {
    public var model: String
    public var dataset: String
    /// Down-sampling factor of the probes (and of the gallery too with eval.degrade = both).
    public var degradationFactor: Int
    public var degradation: String
    /// Np, Ng (matched + distractors), the distractors, and the identities of the matched gallery.
    public var probes: Int
    public var galleryImages: Int
    public var distractors: Int
    public var galleryIdentities: Int
    /// CMC ranks and the CMC at each (`IdentificationProtocol`).
    public var ranks: [Int]
    public var cmc: [Double]
    public var protocolName: String = IdentificationProtocol.name

    public init(model: String, dataset: String, degradationFactor: Int, degradation: String, metrics m: IdentificationMetrics) {
        self.model = model; self.dataset = dataset; self.degradationFactor = degradationFactor; self.degradation = degradation
        probes = m.probes; galleryImages = m.galleryImages; distractors = m.distractors; galleryIdentities = m.galleryIdentities
        ranks = m.ranks; cmc = m.cmc
    }

    /// CMC at rank k, when k was measured.
    public func cmc(atRank k: Int) -> Double? { ranks.firstIndex(of: k).map { cmc[$0] } }
}

/// Open-set verification numbers of one model on one set at one degradation factor.
public struct OpenSetResult: Codable, Sendable, Equatable {
    public var model: String
    public var dataset: String
    /// Down-sampling factor of the second image of each pair (of both with eval.degrade = both).
    public var degradationFactor: Int
    public var degradation: String
    public var positives: Int
    public var negatives: Int
    /// TAR, measured FAR and threshold at each FAR target (`OpenSetProtocol`).
    public var points: [TARAtFAR]
    public var auc: Double
    public var protocolName: String = OpenSetProtocol.name

    public init(model: String, dataset: String, degradationFactor: Int, degradation: String, metrics m: OpenSetMetrics) {
        self.model = model; self.dataset = dataset; self.degradationFactor = degradationFactor; self.degradation = degradation
        positives = m.positives; negatives = m.negatives; points = m.points; auc = m.auc
    }
}

extension EvaluationReport {
    /// Headings of the protocol sections; `parseMarkdownTables` skips the tables under them.
    public static let identificationHeading = "Identification (CMC): "
    public static let openSetHeading = "Open-set verification (TAR@FAR): "

    /// The identification and open-set tables ("" when the report has neither): per data set, rows model x
    /// factor, cells in percent with 2 decimals.
    public func protocolTables() -> String {
        var out = ""
        let ident = identification ?? []
        for dataset in uniqueInOrder(ident.map(\.dataset)) {
            let rows = ident.filter { $0.dataset == dataset }
            let ranks = rows.first!.ranks
            let r0 = rows.first!
            out += "\n## \(Self.identificationHeading)\(dataset)\n\n"
            out += "CMC (%): probes whose first correct gallery image is within rank k; \(r0.probes) probes, \(r0.galleryImages) gallery images "
                + "(\(r0.galleryImages - r0.distractors) matched of \(r0.galleryIdentities) identities, \(r0.distractors) distractors); protocol: "
                + uniqueInOrder(rows.map(\.protocolName)).joined(separator: "; ") + ".\n\n"
            out += "| Model | Factor |" + ranks.map { " Rank-\($0) |" }.joined() + "\n"
            out += "|:---|---:|" + String(repeating: "---:|", count: ranks.count) + "\n"
            for r in sorted(rows) {
                out += "| " + escaped(r.model) + " | x\(r.degradationFactor) |"
                    + ranks.map { k in " " + (r.cmc(atRank: k).map(percent) ?? "–") + " |" }.joined() + "\n"
            }
        }
        let open = openSet ?? []
        for dataset in uniqueInOrder(open.map(\.dataset)) {
            let rows = open.filter { $0.dataset == dataset }
            let fars = rows.first!.points.map(\.farTarget)
            out += "\n## \(Self.openSetHeading)\(dataset)\n\n"
            out += "TAR (%) at each FAR over \(rows.first!.positives) positive and \(rows.first!.negatives) negative pairs (threshold: the smallest "
                + "whose FAR on the negatives is <= the target, accept score > threshold), and ROC AUC (%); protocol: "
                + uniqueInOrder(rows.map(\.protocolName)).joined(separator: "; ") + "."
            let unresolved = rows.first!.points.filter { $0.falseAcceptsAllowed == 0 }.map { farText($0.farTarget) }
            if !unresolved.isEmpty {
                out += " FAR \(unresolved.joined(separator: ", ")) is below 1/\(rows.first!.negatives), the resolution of the negative pairs: "
                    + "there the threshold is the largest negative score (no false accept allowed)."
            }
            out += "\n\n"
            out += "| Model | Factor |" + fars.map { " TAR@FAR=\(farText($0)) |" }.joined() + " AUC |\n"
            out += "|:---|---:|" + String(repeating: "---:|", count: fars.count + 1) + "\n"
            for r in sorted(rows) {
                out += "| " + escaped(r.model) + " | x\(r.degradationFactor) |"
                    + fars.map { f in " " + (r.points.first { $0.farTarget == f }.map { percent($0.tar) } ?? "–") + " |" }.joined()
                    + " " + percent(r.auc) + " |\n"
            }
        }
        return out
    }

    /// Rows by model (first appearance), then factor ascending.
    private func sorted<R>(_ rows: [R]) -> [R] where R: ProtocolRow {
        let order = uniqueInOrder(rows.map(\.model))
        return rows.enumerated().sorted { a, b in
            let (ma, mb) = (order.firstIndex(of: a.element.model)!, order.firstIndex(of: b.element.model)!)
            return (ma, a.element.degradationFactor, a.offset) < (mb, b.element.degradationFactor, b.offset)
        }.map(\.element)
    }
}

protocol ProtocolRow { var model: String { get }; var degradationFactor: Int { get } }
extension IdentificationResult: ProtocolRow {}
extension OpenSetResult: ProtocolRow {}

private func escaped(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

/// 0.3 -> "0.3", 0.001 -> "0.001", 1e-4 -> "0.0001".
func farText(_ f: Double) -> String {
    var s = String(format: "%.6f", f)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s
}
