// Statistics of multi-seed studies: mean and spread over seeds, and the paired comparison of one
// model against a baseline over seeds x folds (the same verification folds and the same seeds,
// so each difference is paired), with a two-sided paired t-test.
import Foundation

public enum SeedStatistics {
    /// Mean and sample standard deviation (ddof = 1; 0 for fewer than two values).
    public static func meanStd(_ x: [Double]) -> (mean: Double, std: Double) {
        guard !x.isEmpty else { return (0, 0) }
        let m = x.reduce(0, +) / Double(x.count)
        guard x.count > 1 else { return (m, 0) }
        let v = x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)
        return (m, v.squareRoot())
    }

    /// A paired comparison: the mean difference, its sample std, the t statistic, the degrees of
    /// freedom and the two-sided p-value; nil p when the differences are all equal.
    public struct Paired: Sendable, Equatable, Codable {
        public var n: Int, meanDifference: Double, std: Double, t: Double?, p: Double?
    }

    /// Paired t-test of `a - b`; the arrays must have the same length >= 2.
    public static func pairedTTest(_ a: [Double], _ b: [Double]) -> Paired? {
        guard a.count == b.count, a.count >= 2 else { return nil }
        let d = zip(a, b).map { $0 - $1 }
        let (m, s) = meanStd(d)
        guard s > 0 else { return Paired(n: d.count, meanDifference: m, std: 0, t: nil, p: m == 0 ? 1 : nil) }
        let t = m / (s / Double(d.count).squareRoot())
        return Paired(n: d.count, meanDifference: m, std: s, t: t, p: twoSidedP(t: t, df: Double(d.count - 1)))
    }

    /// P(|T| >= |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2).
    public static func twoSidedP(t: Double, df: Double) -> Double {
        regularizedIncompleteBeta(x: df / (df + t * t), a: df / 2, b: 0.5)
    }

    /// I_x(a, b) by the continued fraction of Numerical Recipes (betacf), with the symmetry
    /// I_x(a, b) = 1 - I_{1-x}(b, a) where it converges faster.
    public static func regularizedIncompleteBeta(x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnBeta: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let lnPow: Double = a * log(x) + b * log(1 - x)
        let front: Double = exp(lnBeta + lnPow)
        if x < (a + 1) / (a + b + 2) { return front * continuedFraction(x: x, a: a, b: b) / a }
        return 1 - front * continuedFraction(x: 1 - x, a: b, b: a) / b
    }

    static func continuedFraction(x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300, eps = 1e-15
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0, d = 1 - qab * x / qap
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...300 {
            let m = Double(m), m2 = 2 * m
            var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d; h *= d * c
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let del = d * c
            h *= del
            if abs(del - 1) < eps { break }
        }
        return h
    }
}
