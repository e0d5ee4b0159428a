// Tiny constructed cases whose answers follow by reasoning (derivations in the comments).
import Evaluation
import XCTest

final class VerificationHandComputedTests: XCTestCase {
    /// 10 folds of 2 pairs each: (same at `same(f)`, different at `diff(f)`).
    private func twoPerFold(same: (Int) -> Double, diff: (Int) -> Double) -> ([Double], [Bool]) {
        var d: [Double] = [], s: [Bool] = []
        for f in 0..<10 { d += [same(f), diff(f)]; s += [true, false] }
        return (d, s)
    }

    /// Same pairs at 0.5, different at 1.5. Accuracy: every threshold in (0.5, 1.5] is perfect; the first grid
    /// point above 0.5 is 0.51 (0.50 fails `0.5 < 0.5`). AUC 1. TAR@FAR: training FAR is 0 up to threshold 1.500
    /// and 1 from 1.501, so slinear gives 1.500 * (1 - 1e-3) + 1.501 * 1e-3 = 1.500001, which accepts the 1.5
    /// pairs too: TAR 1 and FAR 1 (insightface's interpolation overshoots on a separable set).
    func testPerfectlySeparable() throws {
        let (d, s) = twoPerFold(same: { _ in 0.5 }, diff: { _ in 1.5 })
        let m = try VerificationProtocol.evaluate(distances: d, issame: s)
        XCTAssertEqual(m.accuracy.foldAccuracies, Array(repeating: 1.0, count: 10))
        XCTAssertEqual(m.accuracy.mean, 1.0)
        XCTAssertEqual(m.accuracy.std, 0.0)
        XCTAssertEqual(m.accuracy.foldThresholds, Array(repeating: 51 * 0.01, count: 10))
        XCTAssertEqual(m.auc, 1.0)
        for t in m.validationRate.foldThresholds { XCTAssertEqual(t, 1.500001, accuracy: 1e-12) }
        XCTAssertEqual(m.validationRate.valMean, 1.0)
        XCTAssertEqual(m.validationRate.farMean, 1.0)
    }

    /// Same pairs at 1.5, different at 0.5: threshold <= 0.5 rejects all (50 %), (0.5, 1.5] gets all wrong (0 %),
    /// above 1.5 accepts all (50 %): the first maximum is threshold 0 and every fold scores 0.5. AUC 0.
    func testReversedOrdering() throws {
        let (d, s) = twoPerFold(same: { _ in 1.5 }, diff: { _ in 0.5 })
        let m = try VerificationProtocol.evaluate(distances: d, issame: s)
        XCTAssertEqual(m.accuracy.mean, 0.5)
        XCTAssertEqual(m.accuracy.std, 0.0)
        XCTAssertEqual(m.accuracy.foldThresholds, Array(repeating: 0.0, count: 10))
        XCTAssertEqual(m.auc, 0.0)
    }

    /// All distances 1.0: nothing separates, every threshold <= 1.0 gives 50 % and the first maximum is 0;
    /// the ROC is the diagonal, AUC 1/2; the TAR threshold is 1.000 * 0.999 + 1.001 * 0.001 = 1.000001 and
    /// accepts everything.
    func testAllIdenticalDistances() throws {
        let (d, s) = twoPerFold(same: { _ in 1.0 }, diff: { _ in 1.0 })
        let m = try VerificationProtocol.evaluate(distances: d, issame: s)
        XCTAssertEqual(m.accuracy.mean, 0.5)
        XCTAssertEqual(m.accuracy.foldThresholds, Array(repeating: 0.0, count: 10))
        XCTAssertEqual(m.auc, 0.5)
        for t in m.validationRate.foldThresholds { XCTAssertEqual(t, 1.000001, accuracy: 1e-12) }
        XCTAssertEqual(m.validationRate.valMean, 1.0)
        XCTAssertEqual(m.validationRate.farMean, 1.0)
    }

    /// Every fold: a same pair at 0.8 and a different pair at 1.2, except fold 0 whose same pair is at 1.3.
    /// Training on the other nine folds, thresholds in (0.8, 1.2] classify 17 of 18 pairs (or 18 of 18 for
    /// fold 0's training set), above 1.2 at most 9: the best threshold is the first grid point above 0.8, 0.81.
    /// Fold 0 then gets 1 of 2 right, the others 2 of 2: mean (9 + 0.5) / 10 = 0.95, std sqrt((9 * 0.05^2 +
    /// 0.45^2) / 10) = 0.15.
    func testDerivedBestThreshold() throws {
        let (d, s) = twoPerFold(same: { $0 == 0 ? 1.3 : 0.8 }, diff: { _ in 1.2 })
        let a = try VerificationProtocol.accuracy(distances: d, issame: s)
        XCTAssertEqual(a.foldThresholds, Array(repeating: 81 * 0.01, count: 10))
        XCTAssertEqual(a.foldAccuracies, [0.5] + Array(repeating: 1.0, count: 9))
        XCTAssertEqual(a.mean, 0.95, accuracy: 1e-15)
        XCTAssertEqual(a.std, 0.15, accuracy: 1e-15)
        XCTAssertEqual(a.thresholdMean, 0.81, accuracy: 1e-15)
    }

    /// Ties in AUC count one half: same {0.5, 1.0}, different {1.0, 2.0}: (0.5<1.0) + (0.5<2.0) + 1/2 (1.0=1.0)
    /// + (1.0<2.0) = 3.5 of 4 comparisons.
    func testAUCTiesCountHalf() throws {
        XCTAssertEqual(try VerificationProtocol.rocAUC(distances: [0.5, 1.0, 1.0, 2.0],
                                                       issame: [true, true, false, false]), 0.875)
        XCTAssertEqual(try VerificationProtocol.rocAUC(distances: [2.0, 1.0, 0.5, 1.0],
                                                       issame: [false, true, true, false]), 0.875)
    }

    /// sklearn KFold sizes: the first P % F folds are one longer.
    func testFoldRangesLikeKFold() throws {
        let r = try VerificationProtocol.foldRanges(pairs: 605, folds: 10)
        XCTAssertEqual(r.map(\.count), [61, 61, 61, 61, 61, 60, 60, 60, 60, 60])
        XCTAssertEqual(r.first?.lowerBound, 0)
        XCTAssertEqual(r.last?.upperBound, 605)
        for k in 1..<r.count { XCTAssertEqual(r[k - 1].upperBound, r[k].lowerBound) }
        XCTAssertEqual(try VerificationProtocol.foldRanges(pairs: 6000, folds: 10).map(\.count),
                       Array(repeating: 600, count: 10))
    }

    /// Unit vectors: identical -> 0, orthogonal -> 2, opposite -> 4 (= 2 - 2 cos).
    func testSquaredDistancesAreTwoMinusTwoCosine() throws {
        let emb: [Double] = [1, 0, 1, 0,   1, 0, 0, 1,   1, 0, -1, 0,   0.6, 0.8, 0.8, 0.6]   // (2P=8, E=2)
        let d = try VerificationProtocol.squaredDistances(embeddings: emb, dimension: 2)
        XCTAssertEqual(d.count, 4)
        XCTAssertEqual(d[0], 0)
        XCTAssertEqual(d[1], 2)
        XCTAssertEqual(d[2], 4)
        XCTAssertEqual(d[3], 2 - 2 * (0.6 * 0.8 + 0.8 * 0.6), accuracy: 1e-15)
    }

    /// (3,0)+(1,0) -> (1,0); (1,2)+(2,2) = (3,4) -> (0.6,0.8); a zero sum stays zero (sklearn normalize).
    func testFlipTestEmbedding() {
        XCTAssertEqual(VerificationProtocol.flipTestEmbedding([3, 0], [1, 0]), [1, 0])
        let v = VerificationProtocol.flipTestEmbedding([1, 2], [2, 2])
        XCTAssertEqual(v[0], 0.6, accuracy: 1e-15)
        XCTAssertEqual(v[1], 0.8, accuracy: 1e-15)
        XCTAssertEqual(VerificationProtocol.flipTestEmbedding([1, -2], [-1, 2]), [0, 0])
    }

    /// The grids are NumPy's arange values exactly (reprs printed by NumPy 2.4: np.arange(0, 4, 0.01)[i] and
    /// np.arange(0, 4, 0.001)[i] for i = 3, 7, 29, 57, last).
    func testThresholdGrids() {
        let acc = VerificationProtocol.accuracyThresholds, val = VerificationProtocol.valThresholds
        XCTAssertEqual(acc.count, 400)
        XCTAssertEqual(val.count, 4000)
        XCTAssertEqual([3, 7, 29, 57, 399].map { acc[$0] }, [0.03, 0.07, 0.29, 0.5700000000000001, 3.99])
        XCTAssertEqual([3, 7, 29, 57, 3999].map { val[$0] }, [0.003, 0.007, 0.029, 0.057, 3.999])
    }

    // MARK: Errors: thrown, one line, naming the problem

    private func assertThrows<T>(_ expected: VerificationError, _ body: @autoclosure () throws -> T,
                                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? VerificationError, expected, file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), "multi-line message: \(error)", file: file, line: line)
        }
    }

    func testErrors() {
        let (d, s) = twoPerFold(same: { _ in 0.5 }, diff: { _ in 1.5 })
        assertThrows(.tooFewPairs(pairs: 9, folds: 10),
                     try VerificationProtocol.evaluate(distances: Array(d[0..<9]), issame: Array(s[0..<9])))
        assertThrows(.tooFewPairs(pairs: 20, folds: 1),
                     try VerificationProtocol.evaluate(distances: d, issame: s, folds: 1))
        assertThrows(.shapeMismatch("20 distances but 19 issame labels"),
                     try VerificationProtocol.evaluate(distances: d, issame: Array(s.dropLast())))
        var oneClass = s
        oneClass[6] = true; oneClass[7] = true                  // fold 3 = pairs 6, 7
        assertThrows(.singleClassFold(fold: 3, range: 6..<8, allSame: true),
                     try VerificationProtocol.evaluate(distances: d, issame: oneClass))
        assertThrows(.singleClass(allSame: false),
                     try VerificationProtocol.rocAUC(distances: d, issame: Array(repeating: false, count: 20)))
        var nan = d
        nan[4] = .nan
        assertThrows(.nonFinite(buffer: "distances", index: 4),
                     try VerificationProtocol.evaluate(distances: nan, issame: s))
        var emb = [Double](repeating: 0.5, count: 2 * 20 * 4)
        emb[17] = .nan
        assertThrows(.nonFinite(buffer: "embeddings", index: 17),
                     try VerificationProtocol.evaluate(embeddings: emb, dimension: 4, issame: s))
        assertThrows(.shapeMismatch("12 embedding values are not (2P, E) pairs of rows with E = 4"),
                     try VerificationProtocol.squaredDistances(embeddings: Array(repeating: 0, count: 12), dimension: 4))
        assertThrows(.invalidArgument("FAR target 0.0 must lie in (0, 1]"),
                     try VerificationProtocol.validationRate(distances: d, issame: s, farTarget: 0))
        // A negative distance in fold 0 puts the training FAR of fold 1 at threshold 0 to 1/9 > 1e-3: scipy's
        // interp1d raises "out of the interpolation range" there.
        let (neg, negSame) = twoPerFold(same: { _ in 0.5 }, diff: { $0 == 0 ? -0.1 : 1.5 })
        XCTAssertThrowsError(try VerificationProtocol.validationRate(distances: neg, issame: negSame)) { error in
            guard case .invalidArgument(let what)? = error as? VerificationError else { return XCTFail("\(error)") }
            XCTAssertTrue(what.hasSuffix("(fold 1)"), what)
        }
        assertThrows(.shapeMismatch("6 embedding values but 4 flipped values"),
                     try VerificationProtocol.flipTestEmbeddings([1, 2, 3, 4, 5, 6], flipped: [1, 2, 3, 4], dimension: 2))
    }
}
