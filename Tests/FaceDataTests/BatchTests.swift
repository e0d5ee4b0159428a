// Batch production and prefetching: the same batch whatever the thread count or batch composition, aligned
// high/low-resolution views, the prefetcher's order and errors, bad batch configurations.
import FaceData
import Foundation
import XCTest

final class BatchTests: XCTestCase {
    let cfg = SyntheticConfig(seed: 2, identities: 30, imagesPerIdentity: 10)

    func fill(threads: Int, indices: [Int], epoch: Int, degradation: Degradation = Degradation()) throws -> Batch {
        let p = try BatchProducer(source: try SyntheticTrainingSet(cfg),
                                  config: BatchConfig(degradation: degradation, seed: 9, threads: threads))
        let b = Batch(capacity: 16, height: 56, width: 56)
        try p.fill(b, indices: indices, epoch: epoch)
        return b
    }

    func testDeterministicRegardlessOfThreadsAndBatchComposition() throws {
        let d = Degradation(factors: [1, 2, 4, 8], blurProbability: 0.5, noiseProbability: 0.5, jpegProbability: 0.5)
        let a = try fill(threads: 1, indices: [5, 17, 200, 3], epoch: 2, degradation: d)
        let b = try fill(threads: 3, indices: [5, 17, 200, 3], epoch: 2, degradation: d)
        XCTAssertEqual(Array(a.hr.prefix(4 * a.sampleSize)), Array(b.hr.prefix(4 * b.sampleSize)))
        XCTAssertEqual(Array(a.lr.prefix(4 * a.sampleSize)), Array(b.lr.prefix(4 * b.sampleSize)))
        XCTAssertEqual(Array(a.labels.prefix(4)), [0, 1, 20, 0])
        // the same sample in another batch position (another "rank") gets the same views
        let c = try fill(threads: 2, indices: [99, 200], epoch: 2, degradation: d)
        let s = a.sampleSize
        XCTAssertEqual(Array(c.lr[s..<2 * s]), Array(a.lr[2 * s..<3 * s]))
        XCTAssertEqual(c.factors[1], a.factors[2])
        // another epoch draws other augmentations
        let e = try fill(threads: 2, indices: [5, 17, 200, 3], epoch: 3, degradation: d)
        XCTAssertNotEqual(Array(e.lr.prefix(4 * s)), Array(a.lr.prefix(4 * s)))
    }

    func testViewsAlignedAndNormalized() throws {
        let idx = Array(0..<16)
        let one = try fill(threads: 2, indices: idx, epoch: 0, degradation: Degradation(factors: [1]))
        XCTAssertEqual(Array(one.hr.prefix(16 * one.sampleSize)), Array(one.lr.prefix(16 * one.sampleSize)), "factor 1 without noise: lr == hr (same flip and shift)")
        XCTAssertTrue(one.hr.prefix(16 * one.sampleSize).allSatisfy { $0 >= -1 && $0 <= 1 })
        let eight = try fill(threads: 2, indices: idx, epoch: 0, degradation: Degradation(factors: [8]))
        XCTAssertEqual(Array(eight.hr.prefix(16 * one.sampleSize)), Array(one.hr.prefix(16 * one.sampleSize)), "hr does not depend on the factor")
        // lr at x8 is a blurred version of hr: correlated but clearly different
        let s = one.sampleSize
        var num: Float = 0, da: Float = 0, db: Float = 0, diff: Float = 0
        for i in 0..<s { let a = eight.hr[i], b = eight.lr[i]; num += a * b; da += a * a; db += b * b; diff += abs(a - b) }
        XCTAssertGreaterThan(num / (da * db).squareRoot(), 0.8)
        XCTAssertGreaterThan(diff / Float(s), 0.02)
        let mixed = try fill(threads: 2, indices: idx, epoch: 0)
        XCTAssertTrue(Set(mixed.factors.prefix(16)).isSubset(of: [1, 2, 4, 8]))
        XCTAssertGreaterThan(Set(mixed.factors.prefix(16)).count, 1)
    }

    func testPrefetcherOrderErrorsAndBenchmark() throws {
        let producer = try BatchProducer(source: try SyntheticTrainingSet(cfg), config: BatchConfig(seed: 9, threads: 2))
        let pf = Prefetcher(producer: producer, batchCapacity: 8, depth: 2)
        defer { pf.stop() }
        let steps = (0..<5).map { s in (0..<8).map { (s * 8 + $0 * 7) % 300 } }
        for s in steps { pf.enqueue(indices: s, epoch: 1) }
        for s in steps {
            let b = try pf.next()
            XCTAssertEqual(Array(b.indices.prefix(b.count)), s)
            XCTAssertEqual(Array(b.labels.prefix(8)), s.map { Int32($0 / 10) })
        }
        pf.enqueue(indices: [1, 100_000], epoch: 1)
        assertThrowsDataError(.spec, containing: "100000", try pf.next())
        pf.enqueue(indices: [1, 2], epoch: 1)
        XCTAssertEqual(try pf.next().count, 2, "the prefetcher keeps working after an error")

        // The benchmark runs (its figures are reported by `kdtrain bench`, not asserted here).
        let r = try LoaderBenchmark.run(source: try SyntheticTrainingSet(cfg), config: BatchConfig(threads: 2), batch: 32, seconds: 0.3)
        XCTAssert(r.imagesPerSecond.isFinite && r.imagesPerSecond > 0, "\(r)")
    }

    func testBadConfigurationsThrow() throws {
        let set = try SyntheticTrainingSet(cfg)
        assertThrowsDataError(.spec, containing: "degradation.factors", try BatchProducer(source: set, config: BatchConfig(degradation: Degradation(factors: [0.5]))))
        assertThrowsDataError(.spec, containing: "threads", try BatchProducer(source: set, config: BatchConfig(threads: 0)))
    }
}
