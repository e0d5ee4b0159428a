// Open-set / surveillance verification (QMUL-SurvFace): TAR at fixed FAR targets from positive and negative
// pair lists. Legend as in Evaluation.swift and IdentificationProtocol.swift.

/// TAR at one FAR target, with the threshold that gave it.
public struct TARAtFAR: Sendable, Equatable, Codable {
    /// The FAR the threshold was chosen for, in (0, 1).
    public var farTarget: Double
    /// The chosen threshold t: a pair is accepted when its score is > t (strictly).
    public var threshold: Double
    /// Accepted positive pairs / positive pairs at t.
    public var tar: Double
    /// Accepted negative pairs / negative pairs at t: <= farTarget, smaller when negatives tie at t.
    public var far: Double
    /// k = the most negatives the target allows to be accepted, max{k : k / Pn <= farTarget}. k = 0 means the
    /// target is below the resolution 1 / Pn of the negative list: t is then the largest negative score.
    public var falseAcceptsAllowed: Int
}

/// What `OpenSetProtocol.evaluate` measures.
public struct OpenSetMetrics: Sendable, Equatable, Codable {
    public var positives: Int
    public var negatives: Int
    /// One entry per FAR target, in the order given.
    public var points: [TARAtFAR]
    /// ROC AUC of the score over all pairs (ties one half), as `VerificationProtocol.rocAUC` of -score.
    public var auc: Double
}

/// Open-set (surveillance) face verification as QMUL-SurvFace reports it: TAR at FAR = 0.3, 0.1, 0.01, 0.001
/// over a fixed list of positive and a fixed list of negative pairs, no folds.
///
/// Threshold at a FAR target f (the one this module computes and tests): with the accept rule score > t, the
/// false accept rate FAR(t) = #{negatives with score > t} / Pn does not increase with t, and the set of t with
/// FAR(t) <= f is [n_(k+1), infinity), where n_(1) >= n_(2) >= ... >= n_(Pn) are the negative scores sorted
/// descending and k = max{k : k / Pn <= f}. The threshold is its smallest element, t = n_(k+1), the one that
/// maximizes TAR under the constraint. Ties: negatives equal to n_(k+1) are all rejected, so the measured FAR
/// can be below f (it is reported); positives equal to t are rejected too. f must lie in (0, 1), so k < Pn and
/// t is always one of the negative scores.
public enum OpenSetProtocol {
    public static let name = "open-set verification, TAR@FAR over fixed positive/negative pair lists, cosine, accept score > t"
    /// QMUL-SurvFace's FAR targets.
    public static let standardFarTargets = [0.3, 0.1, 0.01, 0.001]

    /// Cosine scores of P pairs from unit embeddings: pair i is rows 2i and 2i+1 of (2P, E).
    public static func cosineScores(embeddings: [Double], dimension: Int) throws -> [Double] {
        guard dimension > 0, embeddings.count % (2 * dimension) == 0 else {
            throw ProtocolInputError("open-set: \(embeddings.count) embedding values are not (2P, E) pairs of rows with E = \(dimension)")
        }
        if let bad = embeddings.firstIndex(where: { !$0.isFinite }) {
            throw ProtocolInputError("open-set: non-finite embedding value at flat index \(bad)")
        }
        return (0..<(embeddings.count / (2 * dimension))).map { p in
            var s = 0.0
            let a = 2 * p * dimension, b = a + dimension
            for j in 0..<dimension { s += embeddings[a + j] * embeddings[b + j] }
            return s
        }
    }

    /// TAR at one FAR target; see the type's notes for the threshold.
    public static func tarAtFar(positive: [Double], negative: [Double], farTarget f: Double) throws -> TARAtFAR {
        guard f > 0, f < 1 else { throw ProtocolInputError("open-set: FAR target \(f) must lie in (0, 1)") }
        try check(positive: positive, negative: negative)
        let n = negative.count
        // k = max{k : k / n <= f}, decided in the arithmetic FAR itself is measured in.
        var k = min(n, Int((f * Double(n)).rounded(.down)))
        while k < n, Double(k + 1) / Double(n) <= f { k += 1 }
        while k > 0, Double(k) / Double(n) > f { k -= 1 }
        let t = negative.sorted(by: >)[k]
        let fa = negative.reduce(0) { $0 + ($1 > t ? 1 : 0) }
        let ta = positive.reduce(0) { $0 + ($1 > t ? 1 : 0) }
        return TARAtFAR(farTarget: f, threshold: t, tar: Double(ta) / Double(positive.count), far: Double(fa) / Double(n),
                        falseAcceptsAllowed: k)
    }

    /// TAR at every target and the AUC.
    public static func evaluate(positive: [Double], negative: [Double], farTargets: [Double] = standardFarTargets) throws -> OpenSetMetrics {
        try check(positive: positive, negative: negative)
        let points = try farTargets.map { try tarAtFar(positive: positive, negative: negative, farTarget: $0) }
        let auc = try VerificationProtocol.rocAUC(distances: (positive + negative).map { -$0 },
                                                  issame: [Bool](repeating: true, count: positive.count) + [Bool](repeating: false, count: negative.count))
        return OpenSetMetrics(positives: positive.count, negatives: negative.count, points: points, auc: auc)
    }

    static func check(positive: [Double], negative: [Double]) throws {
        guard !positive.isEmpty else { throw ProtocolInputError("open-set: no positive pairs") }
        guard !negative.isEmpty else { throw ProtocolInputError("open-set: no negative pairs") }
        if let bad = positive.firstIndex(where: { !$0.isFinite }) { throw ProtocolInputError("open-set: non-finite score of positive pair \(bad)") }
        if let bad = negative.firstIndex(where: { !$0.isFinite }) { throw ProtocolInputError("open-set: non-finite score of negative pair \(bad)") }
    }
}
