// The distributed sampler: which dataset indices each rank reads at each step. Pure Swift, no MPI.
//
// Training (N samples, global batch B, W ranks, b = B / W per rank):
//   epoch e uses the permutation π_e of 0..<N (Fisher–Yates driven by SplitMix64 seeded from
//   (seed, e)); step s's global batch is π_e[s·B ..< (s+1)·B] and rank r reads the slice
//   π_e[s·B + r·b ..< s·B + (r+1)·b]. Drop-last: an epoch has ⌊N / B⌋ steps for every rank, so all
//   ranks run the same number of steps and the global batch of a step is the same set of samples
//   whatever W is (the basis of the 1-vs-W equivalence). The N mod B samples at the end of π_e are
//   skipped that epoch (different ones each epoch).
// Evaluation: rank r gets the contiguous block EvaluationShard.range (sizes differ by at most one,
//   no padding, no duplicates); concatenating the blocks in rank order restores dataset order
//   (`Communicator.gatherEvaluation`).
// Resume: the sampler is a function of (seed, epoch, step); a `SamplerPosition` is all that a
//   checkpoint needs to store.

import KDCore

/// Where training stands: the next step to run. Store it in checkpoints to resume exactly.
public struct SamplerPosition: Sendable, Equatable, Hashable, Codable {
    public var epoch: Int
    public var step: Int

    public init(epoch: Int, step: Int) {
        self.epoch = epoch
        self.step = step
    }
}

/// Training sampler for one rank. See the file header for the scheme.
public struct DistributedSampler: Sendable {
    public let datasetSize: Int
    public let globalBatch: Int
    public let worldSize: Int
    public let rank: Int
    public let seed: UInt64
    /// B / W.
    public let perRankBatch: Int
    /// ⌊N / B⌋: steps per epoch, the same on every rank.
    public let stepsPerEpoch: Int

    private var cachedEpoch = -1
    private var permutation: [Int32] = []

    /// - Throws: `DistError.invalidConfiguration` when B is not a positive multiple of W, or
    ///   when the dataset holds fewer than B samples (no full step).
    public init(datasetSize: Int, globalBatch: Int, worldSize: Int, rank: Int, seed: UInt64) throws {
        guard worldSize >= 1, rank >= 0, rank < worldSize else {
            throw DistError.invalidConfiguration("sampler: rank \(rank) outside world of \(worldSize)")
        }
        guard globalBatch >= 1, globalBatch % worldSize == 0 else {
            throw DistError.invalidConfiguration("global batch \(globalBatch) is not divisible by the \(worldSize) ranks; choose a multiple of \(worldSize) (per-rank batch = global batch / ranks)")
        }
        guard datasetSize >= globalBatch else {
            throw DistError.invalidConfiguration("dataset of \(datasetSize) samples is smaller than the global batch \(globalBatch); no full step per epoch")
        }
        guard datasetSize <= Int(Int32.max) else {
            throw DistError.invalidConfiguration("dataset of \(datasetSize) samples exceeds the sampler's Int32 index range")
        }
        self.datasetSize = datasetSize
        self.globalBatch = globalBatch
        self.worldSize = worldSize
        self.rank = rank
        self.seed = seed
        perRankBatch = globalBatch / worldSize
        stepsPerEpoch = datasetSize / globalBatch
    }

    /// The epoch's permutation of 0..<N, identical on every rank and for every world size.
    public static func permutation(datasetSize n: Int, seed: UInt64, epoch: Int) -> [Int32] {
        var rng = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: epoch) &* 0xD1B5_4A32_D192_ED03))
        _ = rng.next()
        var p = (0..<n).map { Int32($0) }
        var i = n - 1
        while i > 0 {
            let j = Int(rng.uniform(below: UInt64(i + 1)))
            p.swapAt(i, j)
            i -= 1
        }
        return p
    }

    /// Writes this rank's `perRankBatch` sample indices for (epoch, step) into `out` (resized
    /// once; reusing the same array allocates nothing except at the first step of an epoch).
    public mutating func indices(epoch: Int, step: Int, into out: inout [Int]) {
        precondition(epoch >= 0 && step >= 0 && step < stepsPerEpoch, "sampler step \(step) outside 0..<\(stepsPerEpoch)")
        if cachedEpoch != epoch {
            permutation = Self.permutation(datasetSize: datasetSize, seed: seed, epoch: epoch)
            cachedEpoch = epoch
        }
        if out.count != perRankBatch { out = [Int](repeating: 0, count: perRankBatch) }
        let base = step * globalBatch + rank * perRankBatch
        for i in 0..<perRankBatch { out[i] = Int(permutation[base + i]) }
    }

    /// This rank's indices for (epoch, step).
    public mutating func indices(epoch: Int, step: Int) -> [Int] {
        var out: [Int] = []
        indices(epoch: epoch, step: step, into: &out)
        return out
    }

    /// This rank's indices at `position`.
    public mutating func indices(at position: SamplerPosition) -> [Int] {
        indices(epoch: position.epoch, step: position.step)
    }

    /// The position after `position` (next step, rolling over to the next epoch).
    public func advance(_ position: SamplerPosition) -> SamplerPosition {
        position.step + 1 < stepsPerEpoch
            ? SamplerPosition(epoch: position.epoch, step: position.step + 1)
            : SamplerPosition(epoch: position.epoch + 1, step: 0)
    }

    /// The position reached after `globalStep` steps from the start of training.
    public func position(afterSteps globalStep: Int) -> SamplerPosition {
        SamplerPosition(epoch: globalStep / stepsPerEpoch, step: globalStep % stepsPerEpoch)
    }
}

/// Exact evaluation sharding: rank r evaluates `range`, contiguous, sizes differing by at most
/// one, no padding and no duplicates; empty shards are possible when N < W.
public struct EvaluationShard: Sendable, Equatable {
    public let range: Range<Int>

    public init(datasetSize n: Int, worldSize w: Int, rank r: Int) {
        precondition(n >= 0 && w >= 1 && r >= 0 && r < w)
        let base = n / w, extra = n % w
        let lo = r * base + Swift.min(r, extra)
        range = lo..<(lo + base + (r < extra ? 1 : 0))
    }
}
