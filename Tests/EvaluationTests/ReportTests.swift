// Report outputs: JSON round trip and atomic writes, markdown table round trip, SVG well-formedness.
import Evaluation
import KDCore
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// The paper's Table 1 (AgeDB-30 ablation) and part of Table 4 (CPLFW), as results with made-up std/TAR values.
func sampleReport() -> EvaluationReport {
    let table1: [(String, [Double])] = [
        ("BasicNet", [91.98, 79.34, 55.28]), ("+ logit KD", [93.91, 89.95, 77.33]),
        ("+ attention KD", [93.95, 90.06, 78.57]), ("+ logit KD + attention KD", [94.23, 90.67, 79.92]),
    ]
    var results: [EvaluationResult] = []
    for (m, (name, accs)) in table1.enumerated() {
        for (k, factor) in [2, 4, 8].enumerated() {
            results.append(EvaluationResult(
                model: name, dataset: "AgeDB-30", degradationFactor: factor, degradation: "area down, nearest up",
                accuracy: accs[k] / 100, accuracyStd: 0.0031 + 0.001 * Double(m + k), threshold: 1.4 + 0.01 * Double(k),
                tarAtFar: 0.5 + 0.05 * Double(m), tarStd: 0.02, far: 0.00098, farTarget: 1e-3, auc: 0.97, pairs: 6000))
        }
    }
    // A second set with a missing cell, an x1 column and names needing escapes.
    let cplfw: [(String, Int, Double)] = [("A-SKD", 1, 88.81), ("A-SKD", 8, 82.91), ("paper | ours", 1, 90.87),
                                           ("paper | ours", 2, 89.87), ("paper | ours", 8, 83.30),
                                           ("Cos<Face> & \"co\"", 2, 88.75)]
    for (name, factor, acc) in cplfw {
        results.append(EvaluationResult(model: name, dataset: "CPLFW", degradationFactor: factor, degradation: "",
                                        accuracy: acc / 100, accuracyStd: 0.0123, threshold: 1.5, tarAtFar: 0.4,
                                        tarStd: 0.03, far: 0.001, farTarget: 1e-3, auc: 0.95, pairs: 6000))
    }
    return EvaluationReport(title: "kdtrain ablation", results: results)
}

final class ReportTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("kdtrain-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func testResultFromMetrics() throws {
        let d: [Double] = (0..<20).map { $0 % 2 == 0 ? 0.5 : 1.5 }
        let s: [Bool] = (0..<20).map { $0 % 2 == 0 }
        let m = try VerificationProtocol.evaluate(distances: d, issame: s)
        let r = EvaluationResult(model: "m", dataset: "toy", degradationFactor: 4, degradation: "nearest", metrics: m)
        XCTAssertEqual(r.accuracy, m.accuracy.mean)
        XCTAssertEqual(r.accuracyStd, m.accuracy.std)
        XCTAssertEqual(r.threshold, m.accuracy.thresholdMean)
        XCTAssertEqual(r.tarAtFar, m.validationRate.valMean)
        XCTAssertEqual(r.far, m.validationRate.farMean)
        XCTAssertEqual(r.farTarget, 1e-3)
        XCTAssertEqual(r.auc, m.auc)
        XCTAssertEqual(r.pairs, 20)
        XCTAssertEqual(r.protocolName, "insightface 10-fold, squared L2, flip test")
    }

    /// Written atomically, read back equal; keys sorted; no temporary file left; an existing file is replaced.
    func testJSONRoundTripAndAtomicWrite() throws {
        let report = sampleReport()
        let url = dir.appendingPathComponent("results.json")
        try Data("stale".utf8).write(to: url)
        try report.writeJSON(to: url)
        XCTAssertEqual(try EvaluationReport.readJSON(from: url), report)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["results.json"])
        let text = try String(contentsOf: url, encoding: .utf8)
        let keys = ["accuracy", "accuracyStd", "auc", "dataset", "degradation", "degradationFactor", "far",
                    "farTarget", "model", "pairs", "protocolName", "tarAtFar", "tarStd", "threshold"]
        let positions = try keys.map { k in try XCTUnwrap(text.range(of: "\"\(k)\" :")?.lowerBound, k) }
        XCTAssertEqual(positions, positions.sorted(), "keys of the first result are not sorted")
        XCTAssertTrue(text.contains("\n  "), "not pretty-printed")
    }

    /// Per-pair distances survive the JSON round trip bit for bit; a report written before they
    /// existed (no `pairDistances` key) still reads, with none.
    func testPairDistancesRoundTripAndOlderReportsRead() throws {
        var report = sampleReport()
        let d = (0..<6000).map { Double($0) * 0.000_666_7 + 1 / 3.0 }
        report.results[0].pairDistances = d
        let url = dir.appendingPathComponent("results.json")
        try report.writeJSON(to: url)
        let back = try EvaluationReport.readJSON(from: url)
        XCTAssertEqual(back.results[0].pairDistances, d)
        XCTAssertNil(back.results[1].pairDistances)
        // The same report as an older kdtrain wrote it: no pairDistances anywhere.
        var old = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        old["results"] = (old["results"] as! [[String: Any]]).map { var r = $0; r["pairDistances"] = nil; return r }
        let oldURL = dir.appendingPathComponent("old.json")
        try JSONSerialization.data(withJSONObject: old).write(to: oldURL)
        XCTAssert(try EvaluationReport.readJSON(from: oldURL).results.allSatisfy { $0.pairDistances == nil })
    }

    func testAtomicWriteReportsMissingDirectory() {
        let url = dir.appendingPathComponent("no/such/dir/results.json")
        XCTAssertThrowsError(try sampleReport().writeJSON(to: url)) { error in
            guard let e = error as? AtomicWriteError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.path, url.path)
            XCTAssertTrue(e.what.contains("No such file or directory"), e.what)
        }
    }

    /// Markdown: one table per set, factors as columns, "accuracy ± std" in %, "–" for a missing cell; parsing the
    /// text back gives every result rounded to 2 decimals.
    func testMarkdownRoundTrip() throws {
        let report = sampleReport()
        let md = report.markdownTables()
        XCTAssertTrue(md.contains("| Model | x2 | x4 | x8 |"), md)
        XCTAssertTrue(md.contains("| Model | x1 | x2 | x8 |"), md)
        XCTAssertTrue(md.contains("| BasicNet | 91.98 ± 0.31 | 79.34 ± 0.41 | 55.28 ± 0.51 |"), md)
        XCTAssertTrue(md.contains("| A-SKD | 88.81 ± 1.23 | – | 82.91 ± 1.23 |"), md)
        XCTAssertTrue(md.contains("insightface 10-fold, squared L2, flip test"), md)
        let url = dir.appendingPathComponent("table.md")
        try report.writeMarkdown(to: url)
        let cells = try EvaluationReport.parseMarkdownTables(String(contentsOf: url, encoding: .utf8))
        XCTAssertEqual(cells.count, report.results.count)
        for r in report.results {
            let c = cells.first { $0.dataset == r.dataset && $0.model == r.model && $0.degradationFactor == r.degradationFactor }
            guard let c else { XCTFail("no cell for \(r.model) x\(r.degradationFactor) on \(r.dataset)"); continue }
            XCTAssertEqual(c.accuracyPercent, r.accuracy * 100, accuracy: 0.005 + 1e-9, r.model)
            XCTAssertEqual(c.stdPercent, r.accuracyStd * 100, accuracy: 0.005 + 1e-9, r.model)
        }
        // Row order = first appearance.
        let rows = cells.filter { $0.dataset == "AgeDB-30" && $0.degradationFactor == 2 }.map(\.model)
        XCTAssertEqual(rows, ["BasicNet", "+ logit KD", "+ attention KD", "+ logit KD + attention KD"])
    }

    func testMarkdownParserRejectsBrokenRow() {
        let text = "## S\n\n| Model | x2 | x4 |\n|:---|---:|---:|\n| m | 90.00 ± 1.00 |\n"
        XCTAssertThrowsError(try EvaluationReport.parseMarkdownTables(text)) { error in
            XCTAssertEqual(error as? ReportError, .malformedTable(line: 5, reason: "2 fields for 2 factors"))
        }
    }

    /// The SVG parses as XML, has one polyline per model with one point per result, escapes names, and puts
    /// higher accuracy higher on the page.
    func testSVGIsWellFormedWithOnePolylinePerModel() throws {
        let report = sampleReport()
        for dataset in report.datasets {
            let svg = report.svgChart(dataset: dataset)
            let collector = SVGCollector()
            let parser = XMLParser(data: Data(svg.utf8))
            parser.delegate = collector
            XCTAssertTrue(parser.parse(), "\(dataset): \(String(describing: parser.parserError))")
            XCTAssertEqual(collector.root, "svg")
            let models = report.models(in: dataset)
            XCTAssertEqual(collector.polylines.count, models.count, dataset)
            for (model, points) in zip(models, collector.polylines) {
                let n = report.results.filter { $0.dataset == dataset && $0.model == model }.count
                XCTAssertEqual(points.count, n, "\(dataset) \(model)")
            }
            for model in models { XCTAssertTrue(collector.texts.contains(model), "legend lacks \(model)") }
            XCTAssertTrue(collector.texts.contains("x8"), "x axis lacks x8")
            XCTAssertTrue(collector.texts.contains("Verification accuracy (%)"))
            try report.writeSVG(dataset: dataset, to: dir.appendingPathComponent("\(dataset).svg"))
            // To look at the charts: KDTRAIN_EVAL_ARTIFACTS=/some/dir swift test ..., then rsvg-convert them.
            if let keep = ProcessInfo.processInfo.environment["KDTRAIN_EVAL_ARTIFACTS"] {
                try report.writeSVG(dataset: dataset, to: URL(fileURLWithPath: keep).appendingPathComponent("\(dataset).svg"))
                try report.writeMarkdown(to: URL(fileURLWithPath: keep).appendingPathComponent("table.md"))
                try report.writeJSON(to: URL(fileURLWithPath: keep).appendingPathComponent("results.json"))
            }
        }
        // AgeDB-30 BasicNet: x2 (91.98 %) is drawn left of and above x8 (55.28 %) (SVG y grows downwards).
        let collector = SVGCollector()
        let parser = XMLParser(data: Data(report.svgChart(dataset: "AgeDB-30").utf8))
        parser.delegate = collector
        XCTAssertTrue(parser.parse())
        let basic = try XCTUnwrap(collector.polylines.first)
        XCTAssertLessThan(basic[0].x, basic[2].x)
        XCTAssertLessThan(basic[0].y, basic[2].y)
    }
}

/// Collects the root element, polyline points and text contents of an SVG.
final class SVGCollector: NSObject, XMLParserDelegate {
    var root: String?
    var polylines: [[(x: Double, y: Double)]] = []
    var texts: [String] = []
    private var text: String?

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if root == nil { root = name }
        if name == "polyline" {
            let pts = (attributes["points"] ?? "").split(separator: " ").map { p -> (x: Double, y: Double) in
                let xy = p.split(separator: ",").compactMap { Double($0) }
                return (xy.first ?? .nan, xy.last ?? .nan)
            }
            polylines.append(pts)
        }
        if name == "text" { text = "" }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text? += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text", let t = text { texts.append(t); text = nil }
    }
}
