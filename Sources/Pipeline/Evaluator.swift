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
        let lo = shard.lowerBound, count = shard.count
        let slots = ImageSlots(count: count)
        let errors = FirstError()
        let threads = max(1, config.data.threads)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for k in stride(from: t, to: count, by: threads) {
                do { slots.set(k, try pairs.image(lo + k)) } catch { errors.set(error) }
            }
        }
        if let e = errors.get() { throw e }
        images = slots.all()
    }

    func kernel(_ s: String) -> ResizeKernel { ResizeKernel(rawValue: s) ?? .bicubic }

    /// Embeds this rank's images at `factor`: returns (count, 2E) rows [embedding, mirrored embedding]
    /// (E only when the flip test is off).
    func embedShard(_ model: FaceModel, factor: Float) throws -> [Float] {
        let side = model.net.config.inputSize, E = model.net.config.embeddingSize
        let views = cfg.eval.flip ? 2 : 1
        let width = views * E
        var out = [Float](repeating: 0, count: images.count * width)
        let bs = max(1, cfg.eval.batch), ss = 3 * side * side
        let input = UnsafeMutablePointer<Float>.allocate(capacity: bs * ss)
        defer { input.deallocate() }
        let threads = max(1, cfg.data.threads)
        let pipes = (0..<threads).map { _ in SamplePipeline(height: side, width: side, resizeKernel: kernel(cfg.data.resize)) }
        let down = kernel(cfg.eval.down), up = kernel(cfg.eval.up)
        let blur = cfg.eval.blur.map { AxisBlur(sigmaX: $0[0], sigmaY: $0[1], kernel: cfg.eval.blurKernel) }
        // Image 2i is the gallery image of pair i and 2i + 1 its probe.
        let probeOnly = cfg.eval.degrade == "probe", lo = shard.lowerBound
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
                        let f: Float = probeOnly && (lo + s0 + k) % 2 == 0 ? 1 : factor
                        ps[t].evaluationView(imgs[s0 + k], factor: f, downKernel: down, upKernel: up, flip: v == 1,
                                             blur: blur, into: dst + k * ss)
                    }
                }
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

    /// Evaluates `model` at every factor of `cfg.eval.factors`. Returns the results on rank 0
    /// (empty elsewhere). Collective: every rank must call it.
    public func evaluate(_ model: FaceModel, name: String) throws -> [EvaluationResult] {
        var results: [EvaluationResult] = []
        let E = model.net.config.embeddingSize, views = cfg.eval.flip ? 2 : 1
        for f in cfg.eval.factors {
            let local = try embedShard(model, factor: f)
            let all = try comm.gatherEvaluation(local, width: views * E, datasetSize: 2 * pairs.pairCount)
            guard comm.isRoot else { continue }
            let rows = 2 * pairs.pairCount
            var unit: [Double]
            if views == 2 {
                var a = [Float](repeating: 0, count: rows * E), b = a
                for r in 0..<rows { for j in 0..<E { a[r * E + j] = all[r * 2 * E + j]; b[r * E + j] = all[r * 2 * E + E + j] } }
                unit = try VerificationProtocol.flipTestEmbeddings(a, flipped: b, dimension: E)
            } else {
                unit = all.map(Double.init)
                for r in 0..<rows {
                    var s = 0.0
                    for j in 0..<E { s += unit[r * E + j] * unit[r * E + j] }
                    let inv = 1 / max(s.squareRoot(), 1e-12)
                    for j in 0..<E { unit[r * E + j] *= inv }
                }
            }
            let m = try VerificationProtocol.evaluate(embeddings: unit, dimension: E, issame: pairs.issame)
            var desc = f == 1 ? "none" : "x\(Int(f)) \(cfg.eval.down) down, \(cfg.eval.up) up"
            if f != 1, let b = cfg.eval.blur { desc += ", \(cfg.eval.blurKernel)x\(cfg.eval.blurKernel) blur (\(b[0]), \(b[1]))" }
            if f != 1 { desc += cfg.eval.degrade == "probe" ? ", probes only" : ", both images" }
            desc += cfg.eval.flip ? ", flip test" : ""
            results.append(EvaluationResult(model: name, dataset: datasetName, degradationFactor: Int(f), degradation: desc, metrics: m))
        }
        return results
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
