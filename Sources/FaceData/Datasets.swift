// Training sets and verification-pair sets: the abstractions the trainer consumes.
import Foundation

/// A labelled training set. Implementations are immutable after construction and safe to call from
/// many threads at once.
public protocol TrainingSet: Sendable {
    /// Number of samples; valid indices are 0..<count.
    var count: Int { get }
    /// Number of identities; labels are 0..<classCount.
    var classCount: Int { get }
    /// Identity label of sample `index` without decoding the image.
    func label(_ index: Int) throws -> Int
    /// Decoded sample. Throws a `DataError` naming the file/record when it cannot be read.
    func sample(_ index: Int) throws -> (image: FaceImage, label: Int)
    /// A one-line description for logs ("synthetic: 1000 ids x 50 images, 56x56").
    var summary: String { get }
}

/// Verification pairs: images 2i and 2i+1 form pair i; `issame[i]` says whether they show one
/// identity. The evaluation protocol splits the pairs into 10 contiguous folds (`fold(of:)`).
public protocol PairSet: Sendable {
    var pairCount: Int { get }
    var issame: [Bool] { get }
    /// Image j (0..<2*pairCount) decoded to RGB.
    func image(_ j: Int) throws -> FaceImage
    var summary: String { get }
}

extension PairSet {
    /// Fold (0..<10) of pair `i`: contiguous blocks, as insightface's verification code splits them.
    public func fold(of i: Int) -> Int { min(9, i * 10 / max(pairCount, 1)) }
    /// Pair index range of fold `k`.
    public func foldRange(_ k: Int) -> Range<Int> {
        let lo = (0..<pairCount).first { fold(of: $0) == k } ?? pairCount
        let hi = (0..<pairCount).first { fold(of: $0) > k } ?? pairCount
        return lo..<hi
    }
}

/// The synthetic training set: sample i is image (i % imagesPerIdentity) of identity (i / imagesPerIdentity).
public struct SyntheticTrainingSet: TrainingSet {
    public let faces: SyntheticFaces
    public init(_ config: SyntheticConfig) throws { try config.validate(); faces = SyntheticFaces(config) }
    public var count: Int { faces.config.identities * faces.config.imagesPerIdentity }
    public var classCount: Int { faces.config.identities }
    public func label(_ index: Int) throws -> Int {
        guard index >= 0, index < count else { throw DataError(.spec, "synthetic", "sample index \(index) outside 0..<\(count)") }
        return index / faces.config.imagesPerIdentity
    }
    public func sample(_ index: Int) throws -> (image: FaceImage, label: Int) {
        let l = try label(index)
        return (faces.render(key: UInt64(l), variation: UInt64(index % faces.config.imagesPerIdentity)), l)
    }
    public var summary: String {
        let c = faces.config
        return "synthetic: \(c.identities) ids x \(c.imagesPerIdentity) images, \(c.width)x\(c.height), seed \(c.seed)"
    }
}

/// Synthetic verification pairs: identities disjoint from training (keys from 2^40), balanced
/// (even pairs same, odd pairs different), 10 folds whose identities are disjoint from each other.
public struct SyntheticPairSet: PairSet {
    public let faces: SyntheticFaces
    public let issame: [Bool]
    /// Identity keys and variation of images 2i and 2i+1.
    let keys: [(UInt64, UInt64)]
    public init(_ config: SyntheticConfig) throws {
        try config.validate()
        faces = SyntheticFaces(config)
        let P = config.pairs, pool = config.verificationIdentities / 10
        var same = [Bool](), keys = [(UInt64, UInt64)]()
        for i in 0..<P {
            let fold = i * 10 / P
            var r = Rng(seed: config.seed, 0x9A, UInt64(i))
            let s = i % 2 == 0
            let a = fold * pool + r.int(pool)
            var b = a
            if !s { b = fold * pool + r.int(pool - 1); if b >= a { b += 1 } }
            let va = r.next() >> 1, vb = va ^ (1 + r.next() >> 8)
            same.append(s)
            keys.append((SyntheticFaces.verificationKey(a), va)); keys.append((SyntheticFaces.verificationKey(b), vb))
        }
        issame = same; self.keys = keys
    }
    public var pairCount: Int { issame.count }
    public func image(_ j: Int) throws -> FaceImage {
        guard j >= 0, j < keys.count else { throw DataError(.spec, "synthetic pairs", "image index \(j) outside 0..<\(keys.count)") }
        return faces.render(key: keys[j].0, variation: keys[j].1)
    }
    public var summary: String { "synthetic pairs: \(pairCount) pairs, \(faces.config.verificationIdentities) ids, \(faces.config.width)x\(faces.config.height)" }
}
