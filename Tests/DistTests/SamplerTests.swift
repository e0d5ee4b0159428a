// The sampler's logic without MPI: portable PRNG, per-epoch permutations, disjoint shards,
// world-size independence of each step's global batch, errors, resume, evaluation shards.

import Dist
import XCTest
import KDCore

final class SamplerTests: XCTestCase {
    func testSplitMix64MatchesReferenceOutput() {
        // Reference values from an independent implementation (Python, the published algorithm).
        var rng = SplitMix64(seed: 0)
        XCTAssertEqual(rng.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(rng.next(), 0x6E78_9E6A_A1B9_65F4)
        XCTAssertEqual(rng.next(), 0x06C4_5D18_8009_454F)
    }

    func testPermutationIsDeterministicAndChangesEachEpoch() {
        let a = DistributedSampler.permutation(datasetSize: 1000, seed: 5, epoch: 3)
        XCTAssertEqual(a, DistributedSampler.permutation(datasetSize: 1000, seed: 5, epoch: 3))
        XCTAssertEqual(a.sorted(), (0..<1000).map(Int32.init))
        XCTAssertNotEqual(a, DistributedSampler.permutation(datasetSize: 1000, seed: 5, epoch: 4))
        XCTAssertNotEqual(a, DistributedSampler.permutation(datasetSize: 1000, seed: 6, epoch: 3))
        XCTAssertNotEqual(a, (0..<1000).map(Int32.init))
    }

    func testShardsAreDisjointAndEachStepsGlobalBatchIsIndependentOfWorldSize() throws {
        for (n, batch) in [(100, 12), (97, 12), (12, 12), (1000, 60)] {
            var reference: [[Int]] = []
            for w in [1, 2, 3, 4, 6] where batch % w == 0 {
                var samplers = try (0..<w).map { try DistributedSampler(datasetSize: n, globalBatch: batch, worldSize: w, rank: $0, seed: 9) }
                XCTAssertEqual(samplers[0].stepsPerEpoch, n / batch)
                var epochSeen = Set<Int>()
                var steps: [[Int]] = []
                for s in 0..<samplers[0].stepsPerEpoch {
                    var global: [Int] = []
                    for r in 0..<w { global += samplers[r].indices(epoch: 2, step: s) }
                    XCTAssertEqual(Set(global).count, batch, "n=\(n) B=\(batch) W=\(w) step \(s): duplicates within a step")
                    XCTAssertTrue(epochSeen.isDisjoint(with: global), "n=\(n) B=\(batch) W=\(w) step \(s): a sample seen twice in the epoch")
                    epochSeen.formUnion(global)
                    steps.append(global.sorted())
                }
                XCTAssertEqual(epochSeen.count, (n / batch) * batch, "n=\(n) B=\(batch) W=\(w)")
                if reference.isEmpty { reference = steps } else {
                    XCTAssertEqual(steps, reference, "n=\(n) B=\(batch) W=\(w): global batches depend on the world size")
                }
            }
        }
    }

    func testInvalidConfigurationsGiveClearErrors() {
        XCTAssertThrowsError(try DistributedSampler(datasetSize: 100, globalBatch: 10, worldSize: 4, rank: 0, seed: 1)) { error in
            XCTAssertEqual("\(error)", "global batch 10 is not divisible by the 4 ranks; choose a multiple of 4 (per-rank batch = global batch / ranks)")
        }
        XCTAssertThrowsError(try DistributedSampler(datasetSize: 7, globalBatch: 8, worldSize: 2, rank: 1, seed: 1)) { error in
            XCTAssertTrue("\(error)".contains("smaller than the global batch 8"), "\(error)")
        }
        XCTAssertThrowsError(try DistributedSampler(datasetSize: 100, globalBatch: 8, worldSize: 2, rank: 2, seed: 1))
    }

    func testResumeFromPositionReproducesTheSequence() throws {
        var a = try DistributedSampler(datasetSize: 50, globalBatch: 8, worldSize: 2, rank: 1, seed: 3)
        XCTAssertEqual(a.stepsPerEpoch, 6)
        var position = SamplerPosition(epoch: 0, step: 0)
        var sequence: [[Int]] = []
        for _ in 0..<20 {
            sequence.append(a.indices(at: position))
            position = a.advance(position)
        }
        XCTAssertEqual(position, SamplerPosition(epoch: 3, step: 2))
        for k in [0, 5, 6, 13, 19] {
            var fresh = try DistributedSampler(datasetSize: 50, globalBatch: 8, worldSize: 2, rank: 1, seed: 3)
            let p = fresh.position(afterSteps: k)
            XCTAssertEqual(fresh.indices(at: p), sequence[k], "resume after \(k) steps")
        }
    }

    func testEvaluationShardsPartitionExactly() {
        for n in 0..<30 {
            for w in 1...5 {
                let shards = (0..<w).map { EvaluationShard(datasetSize: n, worldSize: w, rank: $0).range }
                XCTAssertEqual(shards.flatMap { Array($0) }, Array(0..<n), "n=\(n) w=\(w)")
                let sizes = shards.map(\.count)
                XCTAssertLessThanOrEqual((sizes.max() ?? 0) - (sizes.min() ?? 0), 1, "n=\(n) w=\(w): \(sizes)")
            }
        }
    }
}
