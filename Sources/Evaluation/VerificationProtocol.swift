// The insightface face-verification protocol as pure functions over flat buffers.
// Legend: P pairs, E embedding dimension, F folds, T thresholds (see Evaluation.swift).

/// Accuracy of the 10-fold protocol (insightface `calculate_roc`, pca = 0).
public struct FoldAccuracy: Sendable, Equatable, Codable {
    /// Accuracy on each held-out fold, in [0, 1].                       (F)
    public var foldAccuracies: [Double]
    /// Threshold chosen on the other F-1 folds for each fold.            (F)
    public var foldThresholds: [Double]
    /// `np.mean(foldAccuracies)`.
    public var mean: Double
    /// `np.std(foldAccuracies)` (population, ddof = 0).
    public var std: Double
    /// `np.mean(foldThresholds)`.
    public var thresholdMean: Double
}

/// TAR (insightface calls it VAL) at a target FAR (insightface `calculate_val`).
public struct ValidationRate: Sendable, Equatable, Codable {
    /// The FAR the thresholds were interpolated for (1e-3 in insightface).
    public var farTarget: Double
    /// TAR = accepted same pairs / same pairs, on each held-out fold.      (F)
    public var foldVal: [Double]
    /// FAR = accepted different pairs / different pairs, on each fold.     (F)
    public var foldFar: [Double]
    /// Threshold interpolated on the other F-1 folds for each fold (0 where unreachable).   (F)
    public var foldThresholds: [Double]
    /// `np.mean(foldVal)`, `np.std(foldVal)` (ddof = 0), `np.mean(foldFar)`.
    public var valMean: Double
    public var valStd: Double
    public var farMean: Double
}

/// Everything `VerificationProtocol.evaluate` measures on one set of pairs.
public struct VerificationMetrics: Sendable, Equatable, Codable {
    /// Number of pairs P.
    public var pairs: Int
    /// Pair ranges of the folds, as sklearn `KFold(n_splits: F, shuffle: False)` makes them.
    public var folds: [Range<Int>]
    public var accuracy: FoldAccuracy
    public var validationRate: ValidationRate
    /// Area under the ROC curve of the score -distance over all P pairs (ties count one half).
    public var auc: Double
}

/// insightface's verification protocol (recognition/arcface_torch/eval/verification.py), reproduced exactly:
///
/// - distance: squared L2 between unit embeddings, d = |a - b|^2 = 2 - 2 cos(a, b), in Double;
/// - a pair is predicted "same" when `d < threshold` (strictly);
/// - folds: F contiguous blocks, the first `P % F` one pair longer (sklearn `KFold`, no shuffle);
/// - accuracy: on each fold, the threshold of `accuracyThresholds` (`np.arange(0, 4, 0.01)`) with the highest
///   accuracy on the other F-1 folds (first maximum, like `np.argmax`) is applied to the fold;
/// - TAR@FAR: on the other F-1 folds FAR is computed at every threshold of `valThresholds`
///   (`np.arange(0, 4, 0.001)`, the grid insightface's `evaluate` passes), the threshold giving FAR = target is
///   found by `interp1d(far, thresholds, kind='slinear')` (0 when the largest FAR is below the target), and TAR
///   and FAR are measured on the fold with it. FAR has runs of equal values; modern scipy refuses them
///   (scipy/scipy#21550), so this follows scipy <= 1.8, which insightface was written against: the value at the
///   LAST point of a run of equal FARs, and 0 when the target equals the largest FAR and the last two FARs are
///   equal (a zero-length spline interval);
/// - mean and std are NumPy's (pairwise summation, population std).
///
/// It is not A-SKD's variant (see Evaluation.swift). Everything is a pure function; errors are thrown.
public enum VerificationProtocol {
    /// The protocol name written into every report.
    public static let name = "insightface 10-fold, squared L2, flip test"

    /// The standard number of folds.
    public static let standardFolds = 10

    /// The standard FAR for TAR@FAR.
    public static let standardFarTarget = 1e-3

    /// `np.arange(0, 4, 0.01)`: element i is exactly `Double(i) * 0.01`, 400 values.   (T = 400)
    public static let accuracyThresholds: [Double] = (0..<400).map { Double($0) * 0.01 }

    /// `np.arange(0, 4, 0.001)`: element i is exactly `Double(i) * 0.001`, 4,000 values.   (T = 4000)
    public static let valThresholds: [Double] = (0..<4000).map { Double($0) * 0.001 }

    // MARK: Embeddings

    /// Flip-test embedding of one image: `(e + eFlipped) / |e + eFlipped|`, summed and normalized in Double as
    /// insightface does (float64 NumPy, `sklearn.preprocessing.normalize`). A zero sum stays zero, like sklearn.
    /// - Parameters: e, eFlipped: (E) embeddings of the image and of its horizontal mirror.
    /// - Returns: (E) unit vector.
    /// - Precondition: `e.count == eFlipped.count`.
    public static func flipTestEmbedding(_ e: [Float], _ eFlipped: [Float]) -> [Double] {
        precondition(e.count == eFlipped.count, "flipTestEmbedding: \(e.count) vs \(eFlipped.count) values")
        var sum = [Double](repeating: 0, count: e.count)
        for i in 0..<e.count { sum[i] = Double(e[i]) + Double(eFlipped[i]) }
        return normalized(sum)
    }

    /// Flip-test embeddings of many images at once.
    /// - Parameters:
    ///   - embeddings: (N, E) row-major, N images.
    ///   - flipped: (N, E) the embeddings of the mirrored images, same order.
    ///   - dimension: E.
    /// - Returns: (N, E) row-major unit rows.
    public static func flipTestEmbeddings(_ embeddings: [Float], flipped: [Float], dimension: Int) throws -> [Double] {
        guard dimension > 0 else { throw VerificationError.invalidArgument("dimension \(dimension) must be positive") }
        guard embeddings.count == flipped.count else {
            throw VerificationError.shapeMismatch("\(embeddings.count) embedding values but \(flipped.count) flipped values")
        }
        guard embeddings.count % dimension == 0 else {
            throw VerificationError.shapeMismatch("\(embeddings.count) embedding values are not rows of dimension \(dimension)")
        }
        var out = [Double](repeating: 0, count: embeddings.count)
        var row = [Double](repeating: 0, count: dimension)
        for r in 0..<(embeddings.count / dimension) {
            for j in 0..<dimension {
                row[j] = Double(embeddings[r * dimension + j]) + Double(flipped[r * dimension + j])
            }
            let unit = normalized(row)
            for j in 0..<dimension { out[r * dimension + j] = unit[j] }
        }
        return out
    }

    /// Squared L2 distances of the P pairs.
    /// - Parameters:
    ///   - embeddings: (2P, E) row-major unit rows; pair i is rows 2i and 2i+1 (insightface `embeddings[0::2]`,
    ///     `embeddings[1::2]`).
    ///   - dimension: E.
    /// - Returns: (P) distances, `sum_j (a_j - b_j)^2`.
    /// - Throws: `shapeMismatch` when the count is not a multiple of 2E; `nonFinite` on NaN or infinity.
    public static func squaredDistances(embeddings: [Double], dimension: Int) throws -> [Double] {
        guard dimension > 0 else { throw VerificationError.invalidArgument("dimension \(dimension) must be positive") }
        guard embeddings.count % (2 * dimension) == 0 else {
            throw VerificationError.shapeMismatch(
                "\(embeddings.count) embedding values are not (2P, E) pairs of rows with E = \(dimension)")
        }
        if let bad = embeddings.firstIndex(where: { !$0.isFinite }) {
            throw VerificationError.nonFinite(buffer: "embeddings", index: bad)
        }
        let pairs = embeddings.count / (2 * dimension)
        var dist = [Double](repeating: 0, count: pairs)
        embeddings.withUnsafeBufferPointer { emb in
            for p in 0..<pairs {
                let a = 2 * p * dimension, b = a + dimension
                var s = 0.0
                for j in 0..<dimension {
                    let d = emb[a + j] - emb[b + j]
                    s += d * d
                }
                dist[p] = s
            }
        }
        return dist
    }

    // MARK: Folds

    /// The folds of sklearn `KFold(n_splits: folds, shuffle: False)`: contiguous ranges, the first `pairs % folds`
    /// of size `pairs / folds + 1`, the rest `pairs / folds`.
    /// - Throws: `tooFewPairs` when `folds < 2` or `pairs < folds`.
    public static func foldRanges(pairs: Int, folds: Int) throws -> [Range<Int>] {
        guard folds >= 2, pairs >= folds else { throw VerificationError.tooFewPairs(pairs: pairs, folds: folds) }
        var ranges: [Range<Int>] = []
        var start = 0
        for f in 0..<folds {
            let size = pairs / folds + (f < pairs % folds ? 1 : 0)
            ranges.append(start..<(start + size))
            start += size
        }
        return ranges
    }

    // MARK: Metrics

    /// Every metric of the protocol from distances.
    /// - Parameters:
    ///   - distances: (P) squared L2 distances (see `squaredDistances`).
    ///   - issame: (P) true where pair i shows one identity.
    ///   - folds: F, default 10.
    ///   - farTarget: the FAR for TAR@FAR, default 1e-3.
    /// - Throws: `VerificationError` (shape, too few pairs, a fold with one class only, non-finite distance).
    /// - Complexity: O(P log P + F (400 + 4000)).
    public static func evaluate(distances: [Double], issame: [Bool], folds: Int = standardFolds,
                                farTarget: Double = standardFarTarget) throws -> VerificationMetrics {
        let ranges = try validate(distances: distances, issame: issame, folds: folds)
        let acc = try accuracy(distances: distances, issame: issame, folds: folds)
        let val = try validationRate(distances: distances, issame: issame, farTarget: farTarget, folds: folds)
        let auc = try rocAUC(distances: distances, issame: issame)
        return VerificationMetrics(pairs: distances.count, folds: ranges, accuracy: acc, validationRate: val, auc: auc)
    }

    /// Every metric of the protocol from embeddings.
    /// - Parameters:
    ///   - embeddings: (2P, E) row-major unit rows (flip-test embeddings, see `flipTestEmbeddings`); pair i is rows
    ///     2i and 2i+1.
    ///   - dimension: E.
    ///   - issame: (P).
    public static func evaluate(embeddings: [Double], dimension: Int, issame: [Bool], folds: Int = standardFolds,
                                farTarget: Double = standardFarTarget) throws -> VerificationMetrics {
        let dist = try squaredDistances(embeddings: embeddings, dimension: dimension)
        return try evaluate(distances: dist, issame: issame, folds: folds, farTarget: farTarget)
    }

    /// 10-fold accuracy (insightface `calculate_roc` + `calculate_accuracy`).
    /// - Parameters:
    ///   - distances: (P); issame: (P); folds: F.
    ///   - thresholds: (T) ascending grid, default `accuracyThresholds`.
    /// - Complexity: O(P log P + F T).
    public static func accuracy(distances: [Double], issame: [Bool], folds: Int = standardFolds,
                                thresholds: [Double] = accuracyThresholds) throws -> FoldAccuracy {
        let ranges = try validate(distances: distances, issame: issame, folds: folds)
        let counts = try FoldCounts(distances: distances, issame: issame, folds: ranges, thresholds: thresholds)
        let t = thresholds.count
        var foldAcc: [Double] = [], foldThr: [Double] = []
        for f in 0..<ranges.count {
            // Training set = all folds but f: correct = TP + TN = sameBelow + (diff - diffBelow).
            let trainDiff = counts.totalDiff - counts.diff[f]
            var best = 0, bestCorrect = Int.min
            for j in 0..<t {
                let sameBelow = counts.totalSameBelow[j] - counts.sameBelow[f * t + j]
                let diffBelow = counts.totalDiffBelow[j] - counts.diffBelow[f * t + j]
                let correct = sameBelow + (trainDiff - diffBelow)
                if correct > bestCorrect { bestCorrect = correct; best = j }   // strict: first maximum
            }
            let correct = counts.sameBelow[f * t + best] + (counts.diff[f] - counts.diffBelow[f * t + best])
            foldAcc.append(Double(correct) / Double(ranges[f].count))
            foldThr.append(thresholds[best])
        }
        return FoldAccuracy(foldAccuracies: foldAcc, foldThresholds: foldThr, mean: numpyMean(foldAcc),
                            std: numpyStd(foldAcc), thresholdMean: numpyMean(foldThr))
    }

    /// TAR (VAL) at a target FAR (insightface `calculate_val` + `calculate_val_far`), see the type's notes for the
    /// interpolation.
    /// - Parameters:
    ///   - distances: (P); issame: (P); farTarget in (0, 1]; folds: F.
    ///   - thresholds: (T) ascending grid, default `valThresholds` (0..4 step 0.001, as insightface's `evaluate`).
    /// - Throws: as `evaluate`; `singleClassFold` also when a fold lacks either class (TAR or FAR would be 0/0).
    /// - Complexity: O(P log P + F T).
    public static func validationRate(distances: [Double], issame: [Bool], farTarget: Double = standardFarTarget,
                                      folds: Int = standardFolds,
                                      thresholds: [Double] = valThresholds) throws -> ValidationRate {
        guard farTarget > 0, farTarget <= 1 else {
            throw VerificationError.invalidArgument("FAR target \(farTarget) must lie in (0, 1]")
        }
        let ranges = try validate(distances: distances, issame: issame, folds: folds)
        let counts = try FoldCounts(distances: distances, issame: issame, folds: ranges, thresholds: thresholds)
        let t = thresholds.count
        var vals: [Double] = [], fars: [Double] = [], thrs: [Double] = []
        var farTrain = [Double](repeating: 0, count: t)
        for f in 0..<ranges.count {
            let trainDiff = counts.totalDiff - counts.diff[f]
            for j in 0..<t {
                farTrain[j] = Double(counts.totalDiffBelow[j] - counts.diffBelow[f * t + j]) / Double(trainDiff)
            }
            // FAR is non-decreasing over an ascending grid, so scipy's stable argsort leaves it in place.
            // Below the first FAR scipy raises "out of the interpolation range" (only possible with negative
            // distances or a grid that does not start at 0).
            guard farTrain[0] <= farTarget else {
                throw VerificationError.invalidArgument(
                    "FAR target \(farTarget) is below the FAR \(farTrain[0]) at the first threshold \(thresholds[0]) (fold \(f))")
            }
            let threshold = farTrain[t - 1] >= farTarget
                ? slinearInterpolate(x: farTrain, y: thresholds, at: farTarget) : 0.0
            var accepted = 0, falseAccepted = 0
            for i in ranges[f] where distances[i] < threshold {
                if issame[i] { accepted += 1 } else { falseAccepted += 1 }
            }
            vals.append(Double(accepted) / Double(counts.same[f]))
            fars.append(Double(falseAccepted) / Double(counts.diff[f]))
            thrs.append(threshold)
        }
        return ValidationRate(farTarget: farTarget, foldVal: vals, foldFar: fars, foldThresholds: thrs,
                              valMean: numpyMean(vals), valStd: numpyStd(vals), farMean: numpyMean(fars))
    }

    /// Area under the ROC curve of the score -distance (a smaller distance means "more likely the same"),
    /// computed exactly: the trapezoid rule over every distinct distance, so tied distances contribute the
    /// diagonal segment, i.e. AUC = P(d_same < d_diff) + P(d_same == d_diff) / 2 (sklearn `roc_auc_score`).
    /// - Parameters: distances: (P); issame: (P).
    /// - Throws: `singleClass` when only one class is present, shape and non-finite errors.
    /// - Complexity: O(P log P).
    public static func rocAUC(distances: [Double], issame: [Bool]) throws -> Double {
        guard distances.count == issame.count else {
            throw VerificationError.shapeMismatch("\(distances.count) distances but \(issame.count) issame labels")
        }
        if let bad = distances.firstIndex(where: { !$0.isFinite }) {
            throw VerificationError.nonFinite(buffer: "distances", index: bad)
        }
        let nSame = issame.reduce(0) { $0 + ($1 ? 1 : 0) }
        let nDiff = issame.count - nSame
        guard nSame > 0, nDiff > 0 else { throw VerificationError.singleClass(allSame: nDiff == 0) }
        let order = distances.indices.sorted { distances[$0] < distances[$1] }
        // Walk thresholds upward; each group of equal distances moves the ROC point by (dFP, dTP) at once.
        var tpBefore = 0, area2 = 0   // area2 = 2 * area * nSame * nDiff, an exact integer
        var k = 0
        while k < order.count {
            let d = distances[order[k]]
            var dTP = 0, dFP = 0
            while k < order.count, distances[order[k]] == d {
                if issame[order[k]] { dTP += 1 } else { dFP += 1 }
                k += 1
            }
            area2 += dFP * (2 * tpBefore + dTP)
            tpBefore += dTP
        }
        return Double(area2) / (2.0 * Double(nSame) * Double(nDiff))
    }

    // MARK: Internals

    /// Checks shapes and values shared by every metric; returns the fold ranges.
    static func validate(distances: [Double], issame: [Bool], folds: Int) throws -> [Range<Int>] {
        guard distances.count == issame.count else {
            throw VerificationError.shapeMismatch("\(distances.count) distances but \(issame.count) issame labels")
        }
        if let bad = distances.firstIndex(where: { !$0.isFinite }) {
            throw VerificationError.nonFinite(buffer: "distances", index: bad)
        }
        let ranges = try foldRanges(pairs: distances.count, folds: folds)
        for (f, r) in ranges.enumerated() {
            let same = issame[r].reduce(0) { $0 + ($1 ? 1 : 0) }
            if same == 0 || same == r.count {
                throw VerificationError.singleClassFold(fold: f, range: r, allSame: same == r.count)
            }
        }
        return ranges
    }

    /// `x / |x|`, leaving a zero vector unchanged (sklearn `normalize`).
    static func normalized(_ x: [Double]) -> [Double] {
        var s = 0.0
        for v in x { s += v * v }
        let norm = s.squareRoot()
        return norm == 0 ? x : x.map { $0 / norm }
    }

    /// scipy <= 1.8 `interp1d(x, y, kind='slinear')(v)` for non-decreasing x with repeats: the degree-1 B-spline
    /// with knots `[x0, x0, x1, ..., x_{n-1}, x_{n-1}]` and coefficients y, evaluated as scipy's `_bspl` does
    /// (interval = last knot <= v, capped at the last interval; a zero-length interval evaluates to 0).
    /// - Precondition: `x.count == y.count >= 2`, `x[0] <= v <= x[n-1]`.
    static func slinearInterpolate(x: [Double], y: [Double], at v: Double) -> Double {
        let n = x.count
        precondition(n >= 2 && y.count == n && x[0] <= v && v <= x[n - 1], "slinearInterpolate out of range")
        // First point p >= 1 with v < x[p], or n - 1: binary search on the non-decreasing x.
        var lo = 1, hi = n - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if v < x[mid] { hi = mid } else { lo = mid + 1 }
        }
        let p = lo
        let xa = x[p - 1], xb = x[p]
        if xb == xa { return 0 }
        let w = 1.0 / (xb - xa)
        let h0 = w * (xb - v), h1 = w * (v - xa)
        return 0.0 + y[p - 1] * h0 + y[p] * h1
    }
}

/// Per-fold counts of pairs below each threshold: the one pass that makes every threshold sweep O(F T).
struct FoldCounts {
    let thresholds: Int           // T
    var same: [Int]               // (F) same-identity pairs per fold
    var diff: [Int]               // (F) different-identity pairs per fold
    var sameBelow: [Int]          // (F, T) same pairs of fold f with d < threshold j
    var diffBelow: [Int]          // (F, T) different pairs of fold f with d < threshold j
    var totalSameBelow: [Int]     // (T) summed over folds
    var totalDiffBelow: [Int]     // (T)
    var totalDiff: Int

    init(distances: [Double], issame: [Bool], folds: [Range<Int>], thresholds grid: [Double]) throws {
        guard !grid.isEmpty else { throw VerificationError.invalidArgument("empty threshold grid") }
        for j in 1..<max(grid.count, 1) where !(grid[j - 1] < grid[j]) {
            throw VerificationError.invalidArgument("threshold grid not strictly ascending at index \(j)")
        }
        let t = grid.count, f = folds.count
        thresholds = t
        same = [Int](repeating: 0, count: f)
        diff = [Int](repeating: 0, count: f)
        sameBelow = [Int](repeating: 0, count: f * t)
        diffBelow = [Int](repeating: 0, count: f * t)
        totalSameBelow = [Int](repeating: 0, count: t)
        totalDiffBelow = [Int](repeating: 0, count: t)
        for (fi, range) in folds.enumerated() {
            let sorted = range.sorted { distances[$0] < distances[$1] }
            var k = 0, s = 0, d = 0
            for j in 0..<t {
                while k < sorted.count, distances[sorted[k]] < grid[j] {
                    if issame[sorted[k]] { s += 1 } else { d += 1 }
                    k += 1
                }
                sameBelow[fi * t + j] = s
                diffBelow[fi * t + j] = d
                totalSameBelow[j] += s
                totalDiffBelow[j] += d
            }
            let nSame = range.reduce(0) { $0 + (issame[$1] ? 1 : 0) }
            same[fi] = nSame
            diff[fi] = range.count - nSame
        }
        totalDiff = diff.reduce(0, +)
    }
}
