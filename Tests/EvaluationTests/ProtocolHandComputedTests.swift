// Closed-set identification (CMC) and open-set TAR@FAR on tiny constructed sets whose answers are worked out
// by hand in the comments; the report tables and JSON of both.
import Evaluation
import Foundation
import XCTest

final class IdentificationHandComputedTests: XCTestCase {
    /// Gallery labels [0, 1, 1, 2, distractor]; three probes of identities 0, 1, 2.
    ///   probe 0: scores [0.9, 0.95, 0.2, 0.1, 0.5]: its only correct image scores 0.9; one wrong image (g1, 0.95)
    ///            is at or above it: rank 2.
    ///   probe 1: scores [0.3, 0.4, 0.8, 0.1, 0.8]: best correct 0.8 (g2; g1's 0.4 does not matter); the distractor
    ///            ties at 0.8 and ties count against the probe: rank 2.
    ///   probe 2: scores [0.1, 0.2, 0.3, 0.7, 0.6]: best correct 0.7, no wrong image >= 0.7: rank 1.
    /// CMC: rank-1 = 1/3, rank-2 = 3/3, rank-5 = 1 (every rank <= 5 = Ng).
    func testRanksFromScoresWithTieAgainstTheProbe() throws {
        let d = IdentificationProtocol.distractorLabel
        let scores: [Double] = [0.9, 0.95, 0.2, 0.1, 0.5,
                                0.3, 0.4, 0.8, 0.1, 0.8,
                                0.1, 0.2, 0.3, 0.7, 0.6]
        let ranks = try IdentificationProtocol.firstCorrectRanks(scores: scores, probeLabels: [0, 1, 2], galleryLabels: [0, 1, 1, 2, d])
        XCTAssertEqual(ranks, [2, 2, 1])
        XCTAssertEqual(IdentificationProtocol.cmc(ranks: ranks, at: [1, 2, 5]), [1.0 / 3, 1, 1])
    }

    /// Unit embeddings in 2-D at angles (degrees): gallery g0 identity 0 at 0, g1 identity 1 at 90, g2 identity 1
    /// at 180, g3 a distractor at 30, g4 a distractor at 60. Probes: p0 identity 0 at 40, p1 identity 1 at 100,
    /// p2 identity 0 at 200.
    ///   p0 (40): cos to g0 = cos 40 = 0.766; g3 (10 apart) 0.985 and g4 (20 apart) 0.940 are above, g1 (50 apart,
    ///            0.643) and g2 (140 apart) below: rank 3.
    ///   p1 (100): correct g1 10 apart (0.985) beats every wrong image (g4 40 apart, 0.766): rank 1.
    ///   p2 (200): correct g0 is 160 apart (cos -0.940); wrong: g2 20 apart (identity 1, 0.940), g1 110 apart
    ///            (-0.342), g4 140 apart (-0.766) are above it, g3 170 apart (-0.985) below: rank 4.
    /// CMC at 1, 5, 20 (TinyFace's ranks): 1/3, 1, 1; at 2: 1/3, at 3: 2/3, at 4: 1.
    func testRanksFromEmbeddingsWithDistractors() throws {
        func at(_ deg: Double) -> [Double] { [cos(deg * .pi / 180), sin(deg * .pi / 180)] }
        let d = IdentificationProtocol.distractorLabel
        let gallery = [0.0, 90, 180, 30, 60].flatMap(at), probes = [40.0, 100, 200].flatMap(at)
        let m = try IdentificationProtocol.evaluate(probes: probes, probeLabels: [0, 1, 0], gallery: gallery,
                                                    galleryLabels: [0, 1, 1, d, d], dimension: 2)
        XCTAssertEqual(m.probeRanks, [3, 1, 4])
        XCTAssertEqual(m.ranks, [1, 5, 20])
        XCTAssertEqual(m.cmc, [1.0 / 3, 1, 1])
        XCTAssertEqual(IdentificationProtocol.cmc(ranks: m.probeRanks, at: [2, 3, 4]), [1.0 / 3, 2.0 / 3, 1])
        XCTAssertEqual(m.probes, 3)
        XCTAssertEqual(m.galleryImages, 5)
        XCTAssertEqual(m.distractors, 2)
        XCTAssertEqual(m.galleryIdentities, 2)
    }

    /// More probes than one score block (64), random embeddings: the blocked path gives the ranks of the
    /// whole score matrix.
    func testBlockedEvaluationEqualsWholeMatrix() throws {
        var state: UInt64 = 7
        func next() -> Double { state = state &* 6364136223846793005 &+ 1442695040888963407; return Double(state >> 11) / Double(1 << 53) - 0.5 }
        let e = 3, np = 150, ng = 40
        let probes = (0..<(np * e)).map { _ in next() }, gallery = (0..<(ng * e)).map { _ in next() }
        let gl = (0..<ng).map { $0 < 30 ? $0 % 10 : IdentificationProtocol.distractorLabel }, pl = (0..<np).map { $0 % 10 }
        var scores = [Double](repeating: 0, count: np * ng)
        probes.withUnsafeBufferPointer { p in gallery.withUnsafeBufferPointer { g in scores.withUnsafeMutableBufferPointer { s in
            IdentificationProtocol.loopScores(p.baseAddress!, np, g.baseAddress!, ng, e, s.baseAddress!)
        } } }
        let whole = try IdentificationProtocol.firstCorrectRanks(scores: scores, probeLabels: pl, galleryLabels: gl)
        let m = try IdentificationProtocol.evaluate(probes: probes, probeLabels: pl, gallery: gallery, galleryLabels: gl, dimension: e)
        XCTAssertEqual(m.probeRanks, whole)
        XCTAssert(Set(whole).count > 3, "ranks should vary: \(whole)")
    }

    func testBadInputsThrowOneLine() {
        let d = IdentificationProtocol.distractorLabel
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        XCTAssert(message { _ = try IdentificationProtocol.firstCorrectRanks(scores: [1, 2], probeLabels: [0], galleryLabels: [1, d]) }
            .contains("probe 0 (identity 0) has no image of its identity"))
        XCTAssert(message { _ = try IdentificationProtocol.firstCorrectRanks(scores: [], probeLabels: [], galleryLabels: [0]) }
            .contains("no probes"))
        XCTAssert(message { _ = try IdentificationProtocol.firstCorrectRanks(scores: [1], probeLabels: [0], galleryLabels: [0, 0]) }
            .contains("1 scores for 1 probes x 2 gallery images"))
        XCTAssert(message { _ = try IdentificationProtocol.evaluate(probes: [.nan, 0], probeLabels: [0], gallery: [1, 0], galleryLabels: [0], dimension: 2) }
            .contains("non-finite probe"))
        XCTAssert(message { _ = try IdentificationProtocol.evaluate(probes: [1, 0], probeLabels: [0], gallery: [1, 0], galleryLabels: [0], dimension: 2, ranks: [0]) }
            .contains("must be >= 1"))
    }
}

final class OpenSetHandComputedTests: XCTestCase {
    /// Negatives [0.9, 0.8, 0.8, 0.1] (Pn = 4, sorted descending n(1..4) = 0.9, 0.8, 0.8, 0.1), positives
    /// [0.95, 0.85, 0.8, 0.5]; accept when score > t; k = max{k : k/4 <= f}; t = n(k+1).
    ///   f = 0.1:  k = 0, t = n(1) = 0.9: no negative > 0.9 (FAR 0); positives > 0.9: 0.95 (TAR 1/4).
    ///   f = 0.3:  k = 1, t = n(2) = 0.8: negatives > 0.8: 0.9 (FAR 1/4); positives: 0.95, 0.85 (TAR 2/4; the
    ///             positive at 0.8 ties t and is rejected).
    ///   f = 0.5:  k = 2, t = n(3) = 0.8 again: the two negatives at 0.8 tie, accepting one would accept both
    ///             (FAR 3/4 > 0.5), so FAR stays 1/4 < f; TAR 2/4.
    ///   f = 0.75: k = 3, t = n(4) = 0.1: FAR 3/4, TAR 4/4.
    /// AUC: of the 16 (positive, negative) comparisons 0.95 wins 4, 0.85 wins 3, 0.8 wins 1 and ties 2 (1 in
    /// all), 0.5 wins 1: (4 + 3 + 2 + 1) / 16 = 0.625.
    func testThresholdsTiesAndAUC() throws {
        let neg = [0.9, 0.8, 0.8, 0.1], pos = [0.95, 0.85, 0.8, 0.5]
        let m = try OpenSetProtocol.evaluate(positive: pos, negative: neg, farTargets: [0.1, 0.3, 0.5, 0.75])
        XCTAssertEqual(m.points.map(\.falseAcceptsAllowed), [0, 1, 2, 3])
        XCTAssertEqual(m.points.map(\.threshold), [0.9, 0.8, 0.8, 0.1])
        XCTAssertEqual(m.points.map(\.far), [0, 0.25, 0.25, 0.75])
        XCTAssertEqual(m.points.map(\.tar), [0.25, 0.5, 0.5, 1])
        XCTAssertEqual(m.auc, 0.625)
        XCTAssertEqual(m.positives, 4)
        XCTAssertEqual(m.negatives, 4)
    }

    /// Negatives 0.01, 0.02, ..., 1.00 (100 distinct); f = 0.29: 0.29 * 100 is 28.999999999999996 in Double, but
    /// 29 / 100 <= 0.29 holds, so k = 29 and t = n(30) = 0.71 (29 negatives above it: FAR exactly 0.29).
    /// Positives 0.70, 0.71, 0.72: only 0.72 > 0.71, TAR 1/3. The standard targets over the same negatives:
    /// 0.3 -> k 30, t = n(31) = 0.70 (TAR 2/3); 0.1 -> t = n(11) = 0.90; 0.01 -> t = n(2) = 0.99;
    /// 0.001 -> k 0, t = n(1) = 1.00 (below the list's resolution 1/100; FAR 0).
    func testTargetResolutionInDoubleArithmetic() throws {
        let neg = (1...100).map { Double($0) / 100 }, pos = [0.70, 0.71, 0.72]
        let p = try OpenSetProtocol.tarAtFar(positive: pos, negative: neg, farTarget: 0.29)
        XCTAssertEqual(p.falseAcceptsAllowed, 29)
        XCTAssertEqual(p.threshold, 0.71)
        XCTAssertEqual(p.far, 0.29)
        XCTAssertEqual(p.tar, 1.0 / 3)
        let m = try OpenSetProtocol.evaluate(positive: pos, negative: neg)
        XCTAssertEqual(m.points.map(\.farTarget), [0.3, 0.1, 0.01, 0.001])
        XCTAssertEqual(m.points.map(\.falseAcceptsAllowed), [30, 10, 1, 0])
        XCTAssertEqual(m.points.map(\.threshold), [0.70, 0.90, 0.99, 1.00])
        XCTAssertEqual(m.points.map(\.tar), [2.0 / 3, 0, 0, 0])
        XCTAssertEqual(m.points.map(\.far), [0.3, 0.1, 0.01, 0])
    }

    /// Pair i = rows 2i, 2i+1: (1, 0)·(0.6, 0.8) = 0.6 and (0, 1)·(0, -1) = -1.
    func testCosineScoresOfPairRows() throws {
        XCTAssertEqual(try OpenSetProtocol.cosineScores(embeddings: [1, 0, 0.6, 0.8, 0, 1, 0, -1], dimension: 2), [0.6, -1])
    }

    func testBadInputsThrow() {
        func message(_ body: () throws -> Void) -> String { do { try body(); return "" } catch { return "\(error)" } }
        XCTAssert(message { _ = try OpenSetProtocol.tarAtFar(positive: [1], negative: [0], farTarget: 1) }.contains("must lie in (0, 1)"))
        XCTAssert(message { _ = try OpenSetProtocol.tarAtFar(positive: [1], negative: [0], farTarget: 0) }.contains("must lie in (0, 1)"))
        XCTAssert(message { _ = try OpenSetProtocol.evaluate(positive: [], negative: [0]) }.contains("no positive pairs"))
        XCTAssert(message { _ = try OpenSetProtocol.evaluate(positive: [1], negative: []) }.contains("no negative pairs"))
        XCTAssert(message { _ = try OpenSetProtocol.evaluate(positive: [1], negative: [.nan]) }.contains("negative pair 0"))
        XCTAssert(message { _ = try OpenSetProtocol.cosineScores(embeddings: [1, 0, 1], dimension: 2) }.contains("not (2P, E)"))
    }
}

final class ProtocolReportTests: XCTestCase {
    func report() throws -> EvaluationReport {
        let ver = EvaluationResult(model: "A", dataset: "lfw", degradationFactor: 1, degradation: "none", accuracy: 0.9, accuracyStd: 0.01,
                                   threshold: 1, tarAtFar: 0.5, tarStd: 0, far: 0.001, farTarget: 0.001, auc: 0.95, pairs: 20)
        let d = IdentificationProtocol.distractorLabel
        let ident = try IdentificationProtocol.firstCorrectRanks(scores: [0.9, 0.95, 0.2, 0.1, 0.5, 0.3, 0.4, 0.8, 0.1, 0.8, 0.1, 0.2, 0.3, 0.7, 0.6],
                                                                probeLabels: [0, 1, 2], galleryLabels: [0, 1, 1, 2, d])
        let im = IdentificationMetrics(probes: 3, galleryImages: 5, distractors: 1, galleryIdentities: 3, ranks: [1, 5, 20],
                                       cmc: IdentificationProtocol.cmc(ranks: ident, at: [1, 5, 20]), probeRanks: ident)
        let om = try OpenSetProtocol.evaluate(positive: [0.95, 0.85, 0.8, 0.5], negative: [0.9, 0.8, 0.8, 0.1])
        // Rows given out of factor order: tables sort by model (first appearance), then factor.
        return EvaluationReport(title: "t", results: [ver],
                                identification: [IdentificationResult(model: "A|B", dataset: "TinyFace", degradationFactor: 4, degradation: "x4", metrics: im),
                                                 IdentificationResult(model: "A|B", dataset: "TinyFace", degradationFactor: 1, degradation: "none", metrics: im)],
                                openSet: [OpenSetResult(model: "A", dataset: "SurvFace", degradationFactor: 1, degradation: "none", metrics: om)])
    }

    /// The numbers of the hand-computed cases above, in percent: CMC 33.33 / 100 / 100; TAR at 0.3 = 50 (t 0.8),
    /// 0.1 = 25 (t 0.9), 0.01 and 0.001 = 25 (k 0, t 0.9); AUC 62.50.
    func testTablesJSONAndVerificationParserUnaffected() throws {
        let r = try report()
        let md = r.markdownTables()
        XCTAssert(md.contains("## Identification (CMC): TinyFace\n"), md)
        XCTAssert(md.contains("| Model | Factor | Rank-1 | Rank-5 | Rank-20 |\n"), md)
        let x1 = try XCTUnwrap(md.range(of: "| A\\|B | x1 | 33.33 | 100.00 | 100.00 |\n"), md)
        let x4 = try XCTUnwrap(md.range(of: "| A\\|B | x4 | 33.33 | 100.00 | 100.00 |\n"), md)
        XCTAssert(x1.lowerBound < x4.lowerBound, "factors ascending")
        XCTAssert(md.contains("3 probes, 5 gallery images (4 matched of 3 identities, 1 distractors)"), md)
        XCTAssert(md.contains("## Open-set verification (TAR@FAR): SurvFace\n"), md)
        XCTAssert(md.contains("| Model | Factor | TAR@FAR=0.3 | TAR@FAR=0.1 | TAR@FAR=0.01 | TAR@FAR=0.001 | AUC |\n"), md)
        XCTAssert(md.contains("| A | x1 | 50.00 | 25.00 | 25.00 | 25.00 | 62.50 |\n"), md)
        XCTAssert(md.contains("FAR 0.1, 0.01, 0.001 is below 1/4, the resolution of the negative pairs"), md)
        // The verification parser reads only the verification cells.
        let cells = try EvaluationReport.parseMarkdownTables(md)
        XCTAssertEqual(cells, [AccuracyCell(dataset: "lfw", model: "A", degradationFactor: 1, accuracyPercent: 90, stdPercent: 1)])
        // JSON round trip; a report without the new fields still reads, with them nil.
        let url = URL(fileURLWithPath: NSTemporaryDirectory() + "kdtrain-protocol-report-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try r.writeJSON(to: url)
        XCTAssertEqual(try EvaluationReport.readJSON(from: url), r)
        try EvaluationReport(title: "old", results: r.results).writeJSON(to: url)
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertFalse(text.contains("identification"))
        let old = try EvaluationReport.readJSON(from: url)
        XCTAssertNil(old.identification)
        XCTAssertNil(old.openSet)
        XCTAssertEqual(old.protocolTables(), "")
    }
}
