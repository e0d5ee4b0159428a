// Multi-seed study statistics: the paired t-test and incomplete beta against scipy (fixture from
// scripts/make_study_reference.py), and the aggregation, paired comparison, shape checks and the
// chart's seed error bars on hand-made rows.
import Foundation
import XCTest
import Evaluation

final class StudySummaryTests: XCTestCase {
    struct Reference: Decodable {
        struct Paired: Decodable { let a: [Double], b: [Double], t: Double, p: Double }
        struct Beta: Decodable { let x: Double, a: Double, b: Double, value: Double }
        let paired: [Paired], betainc: [Beta]
    }

    func testPairedTTestAndIncompleteBetaMatchScipy() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "study_reference", withExtension: "json", subdirectory: "Fixtures"))
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        for c in ref.paired {
            let r = try XCTUnwrap(SeedStatistics.pairedTTest(c.a, c.b))
            XCTAssertEqual(try XCTUnwrap(r.t), c.t, accuracy: 1e-9 * max(1, abs(c.t)))
            XCTAssertEqual(try XCTUnwrap(r.p), c.p, accuracy: 1e-9)
            XCTAssertEqual(r.n, c.a.count)
        }
        for b in ref.betainc {
            XCTAssertEqual(SeedStatistics.regularizedIncompleteBeta(x: b.x, a: b.a, b: b.b), b.value, accuracy: 1e-10, "\(b)")
        }
        XCTAssertNil(SeedStatistics.pairedTTest([1], [0]))
        XCTAssertEqual(SeedStatistics.pairedTTest([1, 2], [1, 2])?.p, 1)
        let ms = SeedStatistics.meanStd([1, 2, 3, 6])
        XCTAssertEqual(ms.mean, 3); XCTAssertEqual(ms.std, (14.0 / 3).squareRoot(), accuracy: 1e-12)
    }

    func row(_ model: String, _ f: Int, _ acc: Double, seed: UInt64?, folds: [Double]? = nil) -> EvaluationResult {
        var r = EvaluationResult(model: model, dataset: "set", degradationFactor: f, degradation: "x\(f)", accuracy: acc,
                                 accuracyStd: 0.02, threshold: 1, tarAtFar: 0.5, tarStd: 0.1, far: 0.001, farTarget: 0.001,
                                 auc: 0.9, pairs: 20)
        r.seed = seed
        r.foldAccuracies = folds ?? [acc - 0.01, acc + 0.01]
        return r
    }

    func testAggregatesOverSeedsAndComparesPairedRows() {
        var rows = [row("teacher", 1, 0.9, seed: nil), row("teacher", 8, 0.6, seed: nil)]
        for (s, base, kd) in [(UInt64(1), 0.70, 0.78), (2, 0.72, 0.76), (3, 0.68, 0.80)] {
            rows += [row("basic", 1, 0.85, seed: s), row("basic", 8, base, seed: s),
                     row("kd", 1, 0.86, seed: s), row("kd", 8, kd, seed: s)]
        }
        let st = StudySummary(rows: rows, models: ["teacher", "basic", "kd"])
        let agg = st.aggregated()
        XCTAssertEqual(agg.count, 6)
        let kd8 = agg.first { $0.model == "kd" && $0.degradationFactor == 8 }!
        XCTAssertEqual(kd8.accuracy, 0.78, accuracy: 1e-12)
        XCTAssertEqual(kd8.seeds, 3)
        XCTAssertEqual(kd8.seedStd!, 0.02, accuracy: 1e-12)          // std of 0.78, 0.76, 0.80 (ddof 1)
        XCTAssertEqual(kd8.accuracyStd, 0.02, accuracy: 1e-12)
        XCTAssertNil(agg.first { $0.model == "teacher" }!.seedStd)   // trained once
        let c = st.compare("kd", against: "basic", dataset: "set").first { $0.factor == 8 }!
        XCTAssertEqual(c.points, 8, accuracy: 1e-9)
        XCTAssertEqual(c.wins, 3); XCTAssertEqual(c.seeds, 3)
        // Paired over seeds x folds: 3 seeds x 2 folds, the same differences as the seed means.
        XCTAssertEqual(c.paired?.n, 6)
        let d = [0.08, 0.08, 0.04, 0.04, 0.12, 0.12]
        XCTAssertEqual(c.paired!.p!, SeedStatistics.twoSidedP(t: 0.08 / (SeedStatistics.meanStd(d).std / 6.0.squareRoot()), df: 5), accuracy: 1e-12)
        let checks = st.shapeChecks(dataset: "set", baseline: "basic", combined: nil, kdRows: ["kd"])
        XCTAssertEqual(checks.count, 2)
        XCTAssert(checks[0].hasPrefix("(a)") && checks[0].contains("holds") && !checks[0].contains("NOT"), checks[0])
        XCTAssert(checks[1].hasPrefix("(c)") && checks[1].contains("holds"), checks[1])
        let md = st.markdown(baseline: "basic", combined: nil, kdRows: ["kd"])
        XCTAssert(md.contains("| kd | 86.00 ± 0.00 (2.00) | 78.00 ± 2.00 (2.00) |"), md)
        XCTAssert(md.contains("| kd | +1.00 (p "), md)
        XCTAssert(md.contains("3/3 seeds"), md)
    }

    func testChartDrawsSeedErrorBarsInsideItsAxis() {
        var rows: [EvaluationResult] = []
        for (m, base) in [("a", 0.6), ("b", 0.7)] {
            for f in [1, 8] {
                var r = row(m, f, base + (f == 1 ? 0.1 : 0), seed: nil)
                r.seeds = 3; r.seedStd = 0.05
                rows.append(r)
            }
        }
        let svg = EvaluationReport(title: "t", results: rows).svgChart(dataset: "set")
        XCTAssertEqual(svg.components(separatedBy: "class=\"error-bar\"").count - 1, 4)
        // The axis starts below the lowest bar (55 %), not at the lowest mean (60 %).
        let ticks = svg.components(separatedBy: "text-anchor=\"end\">").dropFirst().compactMap { Double($0.prefix { $0 != "<" }) }
        XCTAssertLessThan(ticks.min()!, 55)
        XCTAssertGreaterThanOrEqual(ticks.max()!, 85)
    }
}
