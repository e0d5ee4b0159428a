// The loss-balance report: how large each weighted term of the combined loss is, and how much
// gradient it sends into the student's network (the global L2 norm of that term's gradient alone),
// so that a term too weak to matter is visible in the log, metrics.jsonl and the report.
import Foundation
import Model

public struct LossBalance: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var value = 0.0, gradNorm = 0.0, count = 0
    }
    /// Sums per term name, in first-seen order.
    public private(set) var terms: [(String, Entry)] = []
    public init() {}

    public static func == (a: LossBalance, b: LossBalance) -> Bool {
        a.terms.map(\.0) == b.terms.map(\.0) && a.terms.map(\.1) == b.terms.map(\.1)
    }

    public var isEmpty: Bool { terms.isEmpty }
    public var measurements: Int { terms.first?.1.count ?? 0 }

    mutating func add(_ measured: [(term: DistillationStep.Term, value: Float, gradNorm: Float)]) {
        for m in measured {
            let k = m.term.rawValue
            if let i = terms.firstIndex(where: { $0.0 == k }) {
                terms[i].1.value += Double(m.value); terms[i].1.gradNorm += Double(m.gradNorm); terms[i].1.count += 1
            } else {
                terms.append((k, Entry(value: Double(m.value), gradNorm: Double(m.gradNorm), count: 1)))
            }
        }
    }

    /// Mean weighted value, mean gradient norm and share of the summed gradient norms, per term.
    public var means: [(term: String, value: Double, gradNorm: Double, share: Double)] {
        let norms = terms.map { $0.1.gradNorm / Double(max(1, $0.1.count)) }
        let total = norms.reduce(0, +)
        return zip(terms, norms).map { t, g in
            (t.0, t.1.value / Double(max(1, t.1.count)), g, total > 0 ? g / total : 0)
        }
    }

    /// One log line: `recognition 17.2 |g| 3.1 (60%), kd ...`.
    static func line(_ measured: [(term: DistillationStep.Term, value: Float, gradNorm: Float)]) -> String {
        let total = measured.reduce(Float(0)) { $0 + $1.gradNorm }
        return measured.map { m in
            "\(m.term.rawValue) \(fmt(Double(m.value))) |g| \(fmt(Double(m.gradNorm))) (\(Int((total > 0 ? m.gradNorm / total * 100 : 0).rounded()))%)"
        }.joined(separator: ", ")
    }

    /// A markdown table of the means, or "" when nothing was measured.
    public func markdown(label: String) -> String {
        guard !isEmpty else { return "" }
        var md = "| \(label) | weighted term | gradient norm | share of gradient norms |\n|:---|---:|---:|---:|\n"
        for m in means {
            md += "| \(m.term) | \(fmt(m.value)) | \(fmt(m.gradNorm)) | \(String(format: "%.1f", m.share * 100)) % |\n"
        }
        return md
    }
}
