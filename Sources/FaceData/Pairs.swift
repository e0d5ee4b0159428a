// Verification-pair sources: insightface .bin, LFW-style pairs.txt with an image root, pairs generated
// from any identity-labelled set, and (in Datasets.swift) synthetic pairs. Plus the loader that turns
// pair images into degraded, normalized float batches for evaluation.
import Dispatch
import Foundation

/// An insightface verification set (.bin), read with the restricted pickle reader.
public struct BinPairSet: PairSet {
    public let path: String
    public let encoded: [[UInt8]]
    public let issame: [Bool]
    public init(path: String) throws {
        let b = try readFile(path)
        (encoded, issame) = try PickleBin.read(b, name: path)
        self.path = path
    }
    public var pairCount: Int { issame.count }
    public func image(_ j: Int) throws -> FaceImage {
        guard j >= 0, j < encoded.count else { throw DataError(.spec, path, "image index \(j) outside 0..<\(encoded.count)") }
        return try ImageCodec.decode(encoded[j], name: "\(path) image \(j)")
    }
    public var summary: String { "bin \(path): \(pairCount) pairs" }
}

/// LFW-style pairs list with an image root. Accepted lines:
/// - `name n1 n2`: same identity, images ROOT/name/name_%04d.EXT;
/// - `name1 n1 name2 n2`: different identities;
/// - `path1 path2 issame` (issame 0/1 or true/false): explicit paths relative to ROOT;
/// - a first line of one or two integers (LFW's "10 300" header) is skipped; `#` starts a comment.
/// EXT is the first of jpg, png, ppm, pgm, jpeg that exists. Pairs stay in file order (10 contiguous folds).
public struct PairsFile: PairSet {
    public let listPath: String, root: String
    public let paths: [String]
    public let issame: [Bool]
    public init(list: String, root: String) throws {
        let text = String(decoding: try readFile(list), as: UTF8.self)
        var paths = [String](), same = [Bool]()
        let fm = FileManager.default
        func lfw(_ name: String, _ n: Substring, _ where_: String) throws -> String {
            guard let k = Int(n), k >= 0 else { throw DataError(.format, where_, "image number '\(n)' is not a number") }
            let base = root + "/" + name + "/" + name + "_" + String(format: "%04d", k)
            for ext in ["jpg", "png", "ppm", "pgm", "jpeg"] where fm.fileExists(atPath: base + "." + ext) { return base + "." + ext }
            throw DataError(.io, where_, "no image \(base).jpg (or .png/.ppm/.pgm)")
        }
        // "\r\n" is one Character in Swift, not "\n": split on it too (a pairs.txt from Windows),
        // keeping line numbers.
        for (ln, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if f.isEmpty { continue }
            let at = "\(list):\(ln + 1)"
            if ln == 0, f.count <= 2, f.allSatisfy({ Int($0) != nil }) { continue }
            if f.count == 3, Int(f[1]) != nil, Int(f[2]) != nil {
                paths.append(try lfw(String(f[0]), f[1], at)); paths.append(try lfw(String(f[0]), f[2], at)); same.append(true)
            } else if f.count == 4, Int(f[1]) != nil, Int(f[3]) != nil {
                paths.append(try lfw(String(f[0]), f[1], at)); paths.append(try lfw(String(f[2]), f[3], at)); same.append(false)
            } else if f.count == 3 {
                let flag = f[2].lowercased()
                guard ["0", "1", "true", "false"].contains(flag) else { throw DataError(.format, at, "third field '\(f[2])' must be 0/1/true/false") }
                for p in [f[0], f[1]] {
                    let full = p.hasPrefix("/") ? String(p) : root + "/" + p
                    guard fm.fileExists(atPath: full) else { throw DataError(.io, at, "no image \(full)") }
                    paths.append(full)
                }
                same.append(flag == "1" || flag == "true")
            } else {
                throw DataError(.format, at, "expected 'name n1 n2', 'name1 n1 name2 n2' or 'path1 path2 issame'")
            }
        }
        guard !same.isEmpty else { throw DataError(.empty, list, "no pairs") }
        listPath = list; self.root = root; self.paths = paths; issame = same
    }
    public var pairCount: Int { issame.count }
    public func image(_ j: Int) throws -> FaceImage {
        guard j >= 0, j < paths.count else { throw DataError(.spec, listPath, "image index \(j) outside 0..<\(paths.count)") }
        return try ImageCodec.load(paths[j])
    }
    public var summary: String { "pairs \(listPath) @ \(root): \(pairCount) pairs" }
}

/// Pairs generated from an identity-labelled set, for data sets that ship without pairs: balanced
/// (even pairs same, odd pairs different), 10 folds whose identities are disjoint, seeded.
public struct GeneratedPairSet: PairSet {
    public let source: any TrainingSet
    /// Sample indices of images 2i and 2i+1.
    public let members: [Int]
    public let issame: [Bool]
    public let seed: UInt64

    /// - Parameters: pairs: a positive multiple of 20 (10 folds, balanced).
    /// - Throws: `.spec` when the set has too few identities (20 needed, 10 of them with 2+ images).
    public init(source: any TrainingSet, pairs: Int, seed: UInt64 = 1) throws {
        guard pairs >= 20, pairs % 20 == 0 else { throw DataError(.spec, "pairs", "must be a positive multiple of 20, got \(pairs)") }
        var byClass = [[Int]](repeating: [], count: source.classCount)
        for i in 0..<source.count { let l = try source.label(i); if l >= 0 && l < byClass.count { byClass[l].append(i) } }
        var ids = byClass.indices.filter { !byClass[$0].isEmpty }
        var r = Rng(seed: seed, 0x9E)
        for i in stride(from: ids.count - 1, to: 0, by: -1) { ids.swapAt(i, r.int(i + 1)) }
        let groups = (0..<10).map { k in stride(from: k, to: ids.count, by: 10).map { ids[$0] } }
        for (k, g) in groups.enumerated() {
            guard g.count >= 2, g.contains(where: { byClass[$0].count >= 2 }) else {
                throw DataError(.spec, source.summary, "cannot make 10 identity-disjoint folds: fold \(k) gets \(g.count) identities (need 2, one with 2+ images; \(ids.count) identities in all). Generated pairs need at least 20 identities, and in each fold one with 2 or more images; use a larger folder or a pairs list (pairs:LIST@ROOT)")
            }
        }
        var members = [Int](), same = [Bool]()
        let perFold = pairs / 10
        for k in 0..<10 {
            let g = groups[k], multi = g.filter { byClass[$0].count >= 2 }
            var seen = Set<[Int]>()
            for i in 0..<perFold {
                let s = i % 2 == 0
                var pair = [0, 0]
                for _ in 0..<50 {
                    if s {
                        let c = byClass[multi[r.int(multi.count)]]
                        let a = r.int(c.count); var b = r.int(c.count - 1); if b >= a { b += 1 }
                        pair = [c[a], c[b]]
                    } else {
                        let a = r.int(g.count); var b = r.int(g.count - 1); if b >= a { b += 1 }
                        let ca = byClass[g[a]], cb = byClass[g[b]]
                        pair = [ca[r.int(ca.count)], cb[r.int(cb.count)]]
                    }
                    if !seen.contains(pair.sorted()) { break }
                }
                seen.insert(pair.sorted())
                members.append(contentsOf: pair); same.append(s)
            }
        }
        self.source = source; self.members = members; issame = same; self.seed = seed
    }
    public var pairCount: Int { issame.count }
    public func image(_ j: Int) throws -> FaceImage {
        guard j >= 0, j < members.count else { throw DataError(.spec, source.summary, "image index \(j) outside 0..<\(members.count)") }
        return try source.sample(members[j]).image
    }
    public var summary: String { "pairs generated from \(source.summary): \(pairCount) pairs, seed \(seed)" }
}

/// Loads pair images as degraded, normalized float batches for evaluation, with `threads` threads.
public final class PairImageLoader: @unchecked Sendable {
    // @unchecked: `pipelines[t]` is used only by part t of a call; calls are serialized by `lock`.
    public let pairs: any PairSet
    public let height: Int, width: Int
    public let resizeKernel: ResizeKernel, downKernel: ResizeKernel, upKernel: ResizeKernel
    private let pipelines: [SamplePipeline]
    private let lock = NSLock()

    public init(pairs: any PairSet, height: Int, width: Int, resizeKernel: ResizeKernel = .bilinear,
                downKernel: ResizeKernel = .bicubic, upKernel: ResizeKernel = .bicubic, threads: Int = 2) {
        self.pairs = pairs; self.height = height; self.width = width
        self.resizeKernel = resizeKernel; self.downKernel = downKernel; self.upKernel = upKernel
        pipelines = (0..<max(1, threads)).map { _ in SamplePipeline(height: height, width: width, resizeKernel: resizeKernel) }
    }

    /// Number of images (2 x pairs).
    public var imageCount: Int { 2 * pairs.pairCount }

    /// Writes images `range` (indices 0..<imageCount), down-sampled by `factor` and up-sampled back
    /// (factor 1: unchanged), optionally mirrored, as (range.count, 3, H, W) normalized floats to `out`.
    public func load(_ range: Range<Int>, factor: Float, flip: Bool = false, into out: UnsafeMutablePointer<Float>) throws {
        guard range.lowerBound >= 0, range.upperBound <= imageCount else { throw DataError(.spec, pairs.summary, "image range \(range) outside 0..<\(imageCount)") }
        guard factor >= 1 else { throw DataError(.spec, "factor", "\(factor) must be >= 1") }
        lock.lock(); defer { lock.unlock() }
        let n = range.count, parts = min(pipelines.count, max(n, 1)), ss = 3 * height * width
        let errors = ErrorSlot(), src = pairs, dk = downKernel, uk = upKernel, lo = range.lowerBound
        nonisolated(unsafe) let pipes = pipelines, o = out
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            for k in stride(from: part, to: n, by: parts) {
                do {
                    let img = try src.image(lo + k)
                    pipes[part].evaluationView(img, factor: factor, downKernel: dk, upKernel: uk, flip: flip, into: o + k * ss)
                } catch { errors.set(error) }
            }
        }
        if let e = errors.get() { throw e }
    }

    /// Array convenience: all images at `factor` (allocates 2P*3*H*W floats).
    public func loadAll(factor: Float, flip: Bool = false) throws -> [Float] {
        var a = [Float](repeating: 0, count: imageCount * 3 * height * width)
        try a.withUnsafeMutableBufferPointer { try load(0..<imageCount, factor: factor, flip: flip, into: $0.baseAddress!) }
        return a
    }
}
