// Verification of a model at several degradation factors: images are sharded over ranks, each
// rank embeds its shard (and the mirrored images, for the flip test), rank 0 gathers the
// embeddings and applies the insightface 10-fold protocol (Evaluation module).
import Dispatch
import Dist
import Evaluation
import FaceData
import Foundation
import Model

public final class Evaluator {
    let comm: Communicator
    let cfg: RunConfig
    public let pairs: any PairSet
    public let datasetName: String
    /// Decoded images of this rank's shard, decoded once and reused for every factor and model.
    let shard: Range<Int>
    let images: [FaceImage]

    public init(comm: Communicator, config: RunConfig, pairs: any PairSet, datasetName: String) throws {
        self.comm = comm; cfg = config; self.pairs = pairs; self.datasetName = datasetName
        let n = 2 * pairs.pairCount
        shard = EvaluationShard(datasetSize: n, worldSize: comm.size, rank: comm.rank).range
        images = try Evaluator.decode(shard, threads: config.data.threads) { try pairs.image($0) }
    }

    /// Images `range` decoded by `load` on `threads` threads (the first error is thrown).
    static func decode(_ range: Range<Int>, threads: Int, _ load: @escaping @Sendable (Int) throws -> FaceImage) throws -> [FaceImage] {
        let lo = range.lowerBound, count = range.count
        let slots = ImageSlots(count: count)
        let errors = FirstError()
        let threads = max(1, threads)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for k in stride(from: t, to: count, by: threads) {
                do { slots.set(k, try load(lo + k)) } catch { errors.set(error) }
            }
        }
        if let e = errors.get() { throw e }
        return slots.all()
    }

    /// Embeds this rank's images at `factor`: returns (count, 2E) rows [embedding, mirrored embedding]
    /// (E only when the flip test is off).
    func embedShard(_ model: FaceModel, factor: Float) throws -> [Float] {
        // Image 2i is the gallery image of pair i and 2i + 1 its probe.
        Evaluator.embed(images, firstIndex: shard.lowerBound, model: model, config: cfg, factor: factor,
                        views: cfg.eval.flip ? 2 : 1, probesOnly: cfg.eval.degrade == .probe)
    }

    /// The evaluation embedding of `images`, shared by `evaluate` and `kdtrain embed` so that both see
    /// exactly the same network inputs: each image is brought to the network input with `data.resize`,
    /// optionally mirrored (view 1), down-sampled by `factor` with `eval.down` and up-sampled back with
    /// `eval.up`, blurred by `eval.blur` when set, normalized (x/255 - 0.5) / 0.5, and embedded in
    /// batches of `eval.batch` (inference-mode batch norm).
    /// - Parameters:
    ///   - images: the images, whose global indices are `firstIndex`, `firstIndex + 1`, ...;
    ///   - views: 1 (the image) or 2 (the image and its mirror);
    ///   - probesOnly: degrade only images of odd global index (the probe of each pair), keep the others at x1;
    ///   - inputs: called after each batch is prepared with (view, first image of the batch, batch size, the
    ///     (n, 3, S, S) network input); nil when not needed.
    /// - Returns: (images.count, views * E) rows [embedding of view 0, embedding of view 1].
    static func embed(_ images: [FaceImage], firstIndex lo: Int, model: FaceModel, config cfg: RunConfig, factor: Float,
                      views: Int, probesOnly: Bool,
                      inputs: ((_ view: Int, _ start: Int, _ count: Int, _ pixels: UnsafePointer<Float>) -> Void)? = nil) -> [Float] {
        let side = model.net.config.inputSize, E = model.net.config.embeddingSize
        let width = views * E
        var out = [Float](repeating: 0, count: images.count * width)
        let bs = max(1, cfg.eval.batch), ss = 3 * side * side
        let input = UnsafeMutablePointer<Float>.allocate(capacity: bs * ss)
        defer { input.deallocate() }
        let threads = max(1, cfg.data.threads)
        let pipes = (0..<threads).map { _ in SamplePipeline(height: side, width: side, resizeKernel: cfg.data.resize.kernel) }
        let down = cfg.eval.down, up = cfg.eval.up
        let blur = cfg.eval.blur.map { AxisBlur(sigmaX: $0[0], sigmaY: $0[1], kernel: cfg.eval.blurKernel) }
        var start = 0
        while start < images.count {
            let n = min(bs, images.count - start)
            model.plan(batch: max(n, 1), needsGrad: false)
            for v in 0..<views {
                nonisolated(unsafe) let dst = input
                let imgs = images, s0 = start
                nonisolated(unsafe) let ps = pipes
                DispatchQueue.concurrentPerform(iterations: min(threads, n)) { t in
                    for k in stride(from: t, to: n, by: min(threads, n)) {
                        let f: Float = probesOnly && (lo + s0 + k) % 2 == 0 ? 1 : factor
                        ps[t].evaluationView(imgs[s0 + k], factor: f, downKernel: down, upKernel: up, flip: v == 1,
                                             blur: blur, into: dst + k * ss)
                    }
                }
                inputs?(v, start, n, UnsafePointer(input))
                model.net.input.loadNCHW(input)
                model.forward(training: false)
                for k in 0..<n {
                    for j in 0..<E { out[(start + k) * width + v * E + j] = model.embeddingRows[k * E + j] }
                }
            }
            start += n
        }
        return out
    }

    /// Rows of `rows` ((N, E) row-major) scaled to unit L2 norm in Double: the no-flip evaluation's
    /// normalization (a zero row stays zero).
    static func unitRows(_ rows: [Float], dimension E: Int) -> [Double] {
        var unit = rows.map(Double.init)
        for r in 0..<(rows.count / max(E, 1)) {
            var s = 0.0
            for j in 0..<E { s += unit[r * E + j] * unit[r * E + j] }
            let inv = 1 / max(s.squareRoot(), 1e-12)
            for j in 0..<E { unit[r * E + j] *= inv }
        }
        return unit
    }

    /// How `config` degrades images at `factor`, as reports and embedding files state it.
    public static func degradationDescription(_ cfg: RunConfig, factor: Float) -> String {
        var desc = factor == 1 ? "none" : "x\(Int(factor)) \(cfg.eval.down) down, \(cfg.eval.up) up"
        if factor != 1, let b = cfg.eval.blur { desc += ", \(cfg.eval.blurKernel)x\(cfg.eval.blurKernel) blur (\(b[0]), \(b[1]))" }
        if factor != 1 { desc += cfg.eval.degrade == .probe ? ", probes only" : ", both images" }
        desc += cfg.eval.flip ? ", flip test" : ""
        return desc
    }

    /// Evaluates `model` at every factor of `cfg.eval.factors`. Returns the results on rank 0
    /// (empty elsewhere). Collective: every rank must call it.
    /// Called on rank 0 after each model and factor with one line (model, factor, accuracy, seconds),
    /// so that a long evaluation shows where it is.
    public var progress: ((String) -> Void)?

    public func evaluate(_ model: FaceModel, name: String) throws -> [EvaluationResult] {
        var results: [EvaluationResult] = []
        let E = model.net.config.embeddingSize
        for f in cfg.eval.factors {
            let t0 = Date()
            guard let unit = try unitEmbeddings(model, factor: f) else { continue }
            let m = try VerificationProtocol.evaluate(embeddings: unit, dimension: E, issame: pairs.issame)
            progress?("evaluation: \(name) at x\(Int(f)): accuracy \(String(format: "%.2f", 100 * m.accuracy.mean)) % (\(String(format: "%.1f", Date().timeIntervalSince(t0))) s)")
            var r = EvaluationResult(model: name, dataset: datasetName, degradationFactor: Int(f),
                                     degradation: Evaluator.degradationDescription(cfg, factor: f), metrics: m)
            if cfg.eval.pairDistances { r.pairDistances = try VerificationProtocol.squaredDistances(embeddings: unit, dimension: E) }
            results.append(r)
        }
        return results
    }
}

extension Evaluator {
    /// The unit evaluation embeddings of all 2P pair images at `factor`, (2P, E) row-major, on rank 0
    /// (nil elsewhere). Collective.
    func unitEmbeddings(_ model: FaceModel, factor: Float) throws -> [Double]? {
        let E = model.net.config.embeddingSize, views = cfg.eval.flip ? 2 : 1
        let local = try embedShard(model, factor: factor)
        let all = try comm.gatherEvaluation(local, width: views * E, datasetSize: 2 * pairs.pairCount)
        guard comm.isRoot else { return nil }
        return try Evaluator.unitEmbeddings(all, dimension: E, views: views)
    }

    /// Rows of `embed` output ((N, views * E)) to unit embeddings (N, E): the flip-test embedding
    /// (view 0 + view 1, normalized in Double) with two views, the normalized row with one.
    static func unitEmbeddings(_ all: [Float], dimension E: Int, views: Int) throws -> [Double] {
        guard views == 2 else { return Evaluator.unitRows(all, dimension: E) }
        let rows = all.count / (2 * E)
        var a = [Float](repeating: 0, count: rows * E), b = a
        for r in 0..<rows { for j in 0..<E { a[r * E + j] = all[r * 2 * E + j]; b[r * E + j] = all[r * 2 * E + E + j] } }
        return try VerificationProtocol.flipTestEmbeddings(a, flipped: b, dimension: E)
    }
}

/// Write-once slots filled by worker threads (each index by one thread).
final class ImageSlots: @unchecked Sendable {
    private var items: [FaceImage?]
    private let lock = NSLock()
    init(count: Int) { items = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ v: FaceImage) { lock.lock(); items[i] = v; lock.unlock() }
    func all() -> [FaceImage] { items.map { $0! } }
}

final class FirstError: @unchecked Sendable {
    private var error: Error?
    private let lock = NSLock()
    func set(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
    func get() -> Error? { lock.lock(); defer { lock.unlock() }; return error }
}
