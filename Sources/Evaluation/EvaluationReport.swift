// Reports: a Codable collection of results, written as JSON (atomically), a markdown table and an SVG chart.

import Foundation
import KDCore

/// A failure writing or reading a report file.
public enum ReportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed on `path` (`what` names the call and the errno text).
    case io(path: String, what: String)
    /// A markdown table that `parseMarkdownTables` cannot read, with the 1-based line.
    case malformedTable(line: Int, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let what): return "report: \(path): \(what)"
        case .malformedTable(let line, let reason): return "report: markdown table line \(line): \(reason)"
        }
    }
}

/// One cell of a markdown accuracy table: model x degradation factor of one data set, in percent.
public struct AccuracyCell: Sendable, Equatable {
    public var dataset: String
    public var model: String
    public var degradationFactor: Int
    /// Accuracy in percent, as printed (2 decimals).
    public var accuracyPercent: Double
    /// Std of the fold accuracies in percent, as printed (2 decimals).
    public var stdPercent: Double

    public init(dataset: String, model: String, degradationFactor: Int, accuracyPercent: Double, stdPercent: Double) {
        self.dataset = dataset
        self.model = model
        self.degradationFactor = degradationFactor
        self.accuracyPercent = accuracyPercent
        self.stdPercent = stdPercent
    }
}

/// The results of an evaluation run and their three renderings.
///
/// Order matters: models (table rows, chart series) and data sets (tables, charts) appear in the order of their
/// first result; factors (columns, x axis) are sorted ascending.
public struct EvaluationReport: Codable, Sendable, Equatable {
    /// Free text heading the report (e.g. the run name).
    public var title: String
    public var results: [EvaluationResult]
    /// Closed-set identification rows (eval.identification) and open-set verification rows (eval.survface);
    /// absent when not evaluated and in older reports.
    public var identification: [IdentificationResult]? = nil
    public var openSet: [OpenSetResult]? = nil

    public init(title: String, results: [EvaluationResult], identification: [IdentificationResult]? = nil,
                openSet: [OpenSetResult]? = nil) {
        self.title = title
        self.results = results
        self.identification = identification
        self.openSet = openSet
    }

    /// Data sets in order of first appearance.
    public var datasets: [String] { uniqueInOrder(results.map(\.dataset)) }

    /// Models of one data set in order of first appearance.
    public func models(in dataset: String) -> [String] {
        uniqueInOrder(results.filter { $0.dataset == dataset }.map(\.model))
    }

    /// Degradation factors of one data set, ascending.
    public func factors(in dataset: String) -> [Int] {
        Array(Set(results.filter { $0.dataset == dataset }.map(\.degradationFactor))).sorted()
    }

    /// The result for one cell (the last one given, if repeated).
    public func result(dataset: String, model: String, factor: Int) -> EvaluationResult? {
        results.last { $0.dataset == dataset && $0.model == model && $0.degradationFactor == factor }
    }

    // MARK: JSON

    /// Pretty-printed JSON with sorted keys (stable diffs between runs).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Reads a report written by `writeJSON`.
    public static func readJSON(from url: URL) throws -> EvaluationReport {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ReportError.io(path: url.path, what: "read failed: \(error.localizedDescription)")
        }
        return try JSONDecoder().decode(EvaluationReport.self, from: data)
    }

    /// Writes `jsonData()` atomically (temporary file in the same directory, fsync, rename, fsync of the directory).
    public func writeJSON(to url: URL) throws {
        var data = try jsonData()
        data.append(0x0A)
        try AtomicFile.write(data, to: url.path)
    }

    /// Writes `markdownTables()` atomically.
    public func writeMarkdown(to url: URL) throws {
        try AtomicFile.write(Data(markdownTables().utf8), to: url.path)
    }

    /// Writes `svgChart(dataset:)` atomically.
    public func writeSVG(dataset: String, to url: URL) throws {
        try AtomicFile.write(Data(svgChart(dataset: dataset).utf8), to: url.path)
    }

    // MARK: Markdown

    /// One markdown table per data set, like the paper's Table 1: models as rows, factors (x1, x2, x4, x8) as
    /// columns, cells "accuracy ± std" in percent with 2 decimals, "–" where a cell has no result. A `|` in a
    /// model name is escaped as `\|`. The identification and open-set tables (`protocolTables`) follow.
    public func markdownTables() -> String {
        verificationTables() + protocolTables()
    }

    /// The verification tables alone (title line first).
    public func verificationTables() -> String {
        var out = "# \(title)\n"
        for dataset in datasets {
            let factors = factors(in: dataset)
            let protocols = uniqueInOrder(results.filter { $0.dataset == dataset }.map(\.protocolName))
            out += "\n## \(dataset)\n\n"
            out += "Verification accuracy (%), mean ± std over the folds; protocol: "
                + protocols.joined(separator: "; ") + ".\n\n"
            out += "| Model |" + factors.map { " x\($0) |" }.joined() + "\n"
            out += "|:---|" + String(repeating: "---:|", count: factors.count) + "\n"
            for model in models(in: dataset) {
                out += "| " + model.replacingOccurrences(of: "|", with: "\\|") + " |"
                for f in factors {
                    if let r = result(dataset: dataset, model: model, factor: f) {
                        out += " " + percent(r.accuracy) + " ± " + percent(r.accuracyStd) + " |"
                    } else {
                        out += " – |"
                    }
                }
                out += "\n"
            }
        }
        return out
    }

    /// Reads back the cells of `markdownTables()` output (the `## dataset` headings and the tables under them).
    /// - Throws: `ReportError.malformedTable` on a table row that does not fit its header.
    public static func parseMarkdownTables(_ text: String) throws -> [AccuracyCell] {
        var cells: [AccuracyCell] = []
        var dataset = "", factors: [Int] = [], skipping = false
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw).trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("## ") {
                dataset = String(line.dropFirst(3)); factors = []
                // The identification and open-set tables have their own layout (protocolTables).
                skipping = dataset.hasPrefix(identificationHeading) || dataset.hasPrefix(openSetHeading)
                continue
            }
            guard line.hasPrefix("|"), !skipping else { continue }
            let fields = splitRow(line)
            if fields.first == "Model" {
                factors = try fields.dropFirst().map { f -> Int in
                    guard f.hasPrefix("x"), let v = Int(f.dropFirst()) else {
                        throw ReportError.malformedTable(line: n + 1, reason: "column '\(f)' is not xN")
                    }
                    return v
                }
                continue
            }
            if fields.first?.hasPrefix(":--") == true { continue }
            guard fields.count == factors.count + 1 else {
                throw ReportError.malformedTable(line: n + 1, reason: "\(fields.count) fields for \(factors.count) factors")
            }
            for (k, cell) in fields.dropFirst().enumerated() where cell != "–" {
                let parts = cell.components(separatedBy: " ± ")
                guard parts.count == 2, let acc = Double(parts[0]), let std = Double(parts[1]) else {
                    throw ReportError.malformedTable(line: n + 1, reason: "cell '\(cell)' is not 'accuracy ± std'")
                }
                cells.append(AccuracyCell(dataset: dataset, model: fields[0], degradationFactor: factors[k],
                                          accuracyPercent: acc, stdPercent: std))
            }
        }
        return cells
    }

    /// Splits `| a | b \| c |` into ["a", "b | c"].
    static func splitRow(_ line: String) -> [String] {
        var fields: [String] = [], cur = ""
        var chars = line.dropFirst()[...]
        while let c = chars.first {
            chars = chars.dropFirst()
            if c == "\\", chars.first == "|" { cur.append("|"); chars = chars.dropFirst() }
            else if c == "|" { fields.append(cur.trimmingCharacters(in: .whitespaces)); cur = "" }
            else { cur.append(c) }
        }
        return fields
    }
}

/// Fraction -> percent with 2 decimals ("94.23").
func percent(_ x: Double) -> String { String(format: "%.2f", x * 100) }

func uniqueInOrder(_ xs: [String]) -> [String] {
    var seen = Set<String>(), out: [String] = []
    for x in xs where seen.insert(x).inserted { out.append(x) }
    return out
}
