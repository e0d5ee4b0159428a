// NumPy's float64 reductions, reproduced bit for bit so that mean/std of fold accuracies match insightface's
// `np.mean(accuracy)` / `np.std(accuracy)` exactly rather than to rounding.

/// NumPy's `pairwise_sum` for float64 (numpy/_core/src/umath/loops_utils.h.src): plain loop below 8 elements,
/// 8 accumulators up to a block of 128, recursive halving (at a multiple of 8) above.
@usableFromInline
func numpyPairwiseSum(_ a: UnsafeBufferPointer<Double>) -> Double {
    let n = a.count
    if n < 8 {
        var res = 0.0
        for i in 0..<n { res += a[i] }
        return res
    } else if n <= 128 {
        var r = (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
        var i = 8
        while i < n - (n % 8) {
            r.0 += a[i]; r.1 += a[i + 1]; r.2 += a[i + 2]; r.3 += a[i + 3]
            r.4 += a[i + 4]; r.5 += a[i + 5]; r.6 += a[i + 6]; r.7 += a[i + 7]
            i += 8
        }
        var res = ((r.0 + r.1) + (r.2 + r.3)) + ((r.4 + r.5) + (r.6 + r.7))
        while i < n { res += a[i]; i += 1 }
        return res
    } else {
        var n2 = n / 2
        n2 -= n2 % 8
        return numpyPairwiseSum(UnsafeBufferPointer(rebasing: a[0..<n2]))
            + numpyPairwiseSum(UnsafeBufferPointer(rebasing: a[n2..<n]))
    }
}

/// `np.sum(x)` for a 1-D float64 array (the reduction starts from the identity 0).
func numpySum(_ x: [Double]) -> Double {
    x.withUnsafeBufferPointer { 0.0 + numpyPairwiseSum($0) }
}

/// `np.mean(x)`. - Precondition: `!x.isEmpty`.
func numpyMean(_ x: [Double]) -> Double {
    precondition(!x.isEmpty, "numpyMean of an empty array")
    return numpySum(x) / Double(x.count)
}

/// `np.std(x)` with ddof = 0 (population standard deviation), computed as NumPy's `_var` does:
/// mean, deviations, squares, pairwise sum, divide by n, square root.
func numpyStd(_ x: [Double]) -> Double {
    let mean = numpyMean(x)
    let squares = x.map { ($0 - mean) * ($0 - mean) }
    return (numpySum(squares) / Double(x.count)).squareRoot()
}
