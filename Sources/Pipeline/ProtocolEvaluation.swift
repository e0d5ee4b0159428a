// The two low-resolution protocols beside 10-fold verification, evaluated like it (same network input,
// flip test and degradation as `Evaluator.embed`; images sharded over ranks, gathered on rank 0):
//
// - closed-set identification (eval.identification, TinyFace): CMC rank-1/5/20 of the probes against the
//   matched gallery plus the distractors (Evaluation/IdentificationProtocol.swift). At each factor of
//   eval.factors the probes are degraded; with eval.degrade = "both" the gallery (matched and distractors) is
//   degraded by the same factor too, with "probe" it stays at x1 (embedded once per model).
// - open-set verification (eval.survface, QMUL-SurvFace): TAR at FAR 0.3, 0.1, 0.01, 0.001 and AUC over the
//   positive and negative pair lists (Evaluation/OpenSetProtocol.swift). Degradation as in verification: the
//   second image of each pair with "probe", both with "both".
import COpenBLAS
import Dist
import Evaluation
import FaceData
import Foundation
import Model

extension RunConfig.Eval {
    /// Problems of eval.identification and eval.survface that need no file system (the specs' syntax).
    var protocolProblems: [String] {
        var p: [String] = []
        if let s = identification {
            do { _ = try IdentificationSet.folders(spec: s) } catch { p.append("\(error)") }
        }
        if let s = survface {
            do { _ = try ListPairSet.lists(spec: s) } catch { p.append("\(error)") }
        }
        return p
    }

    /// The report's name of the identification set: "TinyFace" for tinyface:, else the probe folder's parent.
    static func identificationName(_ spec: String) -> String {
        if spec.hasPrefix("tinyface:") { return "TinyFace" }
        guard let f = try? IdentificationSet.folders(spec: spec) else { return "identification" }
        let parent = URL(fileURLWithPath: f.probe).deletingLastPathComponent().lastPathComponent
        return parent.isEmpty ? "identification" : parent
    }
}


/// Closed-set identification of models on one `IdentificationSet`. Collective: every rank constructs it
/// and calls `evaluate`; the results arrive on rank 0.
public final class IdentificationEvaluator {
    let comm: Communicator
    let cfg: RunConfig
    public let set: IdentificationSet
    public let datasetName: String
    let probeShard: Range<Int>, galleryShard: Range<Int>
    /// This rank's probe and gallery images, decoded once.
    let probeImages: [FaceImage], galleryImages: [FaceImage]

    /// Cosine scores of a block of probes against the gallery by one DGEMM (out = P G^T): the same dot
    /// products as `IdentificationProtocol.loopScores`, summed in BLAS's order.
    public static let blasScores: IdentificationProtocol.ScoreBlock = { p, np, g, ng, e, out in
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(np), Int32(ng), Int32(e), 1, p, Int32(e), g, Int32(e), 0, out, Int32(ng))
    }

    public init(comm: Communicator, config: RunConfig, set: IdentificationSet, datasetName: String) throws {
        self.comm = comm; cfg = config; self.set = set; self.datasetName = datasetName
        probeShard = EvaluationShard(datasetSize: set.probes.count, worldSize: comm.size, rank: comm.rank).range
        galleryShard = EvaluationShard(datasetSize: set.gallery.count, worldSize: comm.size, rank: comm.rank).range
        let probes = set.probes, gallery = set.gallery
        probeImages = try Evaluator.decode(probeShard, threads: config.data.threads) { try ImageCodec.load(probes[$0]) }
        galleryImages = try Evaluator.decode(galleryShard, threads: config.data.threads) { try ImageCodec.load(gallery[$0]) }
    }

    /// Unit embeddings of all `count` images (this rank holds `images`, global indices `shard`) at `factor`,
    /// on rank 0 (nil elsewhere).
    func unit(_ images: [FaceImage], shard: Range<Int>, count: Int, model: FaceModel, factor: Float) throws -> [Double]? {
        let E = model.net.config.embeddingSize, views = cfg.eval.flip ? 2 : 1
        let local = Evaluator.embed(images, firstIndex: shard.lowerBound, model: model, config: cfg, factor: factor,
                                    views: views, probesOnly: false)
        let all = try comm.gatherEvaluation(local, width: views * E, datasetSize: count)
        guard comm.isRoot else { return nil }
        return try Evaluator.unitEmbeddings(all, dimension: E, views: views)
    }

    /// How the images are degraded at `factor`, as the report states it.
    func degradation(_ factor: Float) -> String {
        Evaluator.degradationDescription(cfg, factor: factor).replacingOccurrences(of: ", both images", with: ", probes and gallery")
    }

    /// CMC of `model` at every factor of eval.factors (rank 0; empty elsewhere).
    public func evaluate(_ model: FaceModel, name: String) throws -> [IdentificationResult] {
        let E = model.net.config.embeddingSize
        let np = set.probes.count, ng = set.gallery.count
        let both = cfg.eval.degrade == .both
        var fixedGallery: [Double]? = nil
        if !both { fixedGallery = try unit(galleryImages, shard: galleryShard, count: ng, model: model, factor: 1) }
        var results: [IdentificationResult] = []
        for f in cfg.eval.factors {
            let probes = try unit(probeImages, shard: probeShard, count: np, model: model, factor: f)
            let gallery = both ? try unit(galleryImages, shard: galleryShard, count: ng, model: model, factor: f) : fixedGallery
            guard comm.isRoot, let probes, let gallery else { continue }
            let m = try IdentificationProtocol.evaluate(probes: probes, probeLabels: set.probeLabels, gallery: gallery,
                                                        galleryLabels: set.galleryLabels, dimension: E, score: Self.blasScores)
            results.append(IdentificationResult(model: name, dataset: datasetName, degradationFactor: Int(f),
                                                degradation: degradation(f), metrics: m))
        }
        return results
    }
}

extension Evaluator {
    /// Open-set verification of `model` at every factor of eval.factors: TAR at FAR 0.3, 0.1, 0.01, 0.001
    /// and AUC, from the cosine scores of the same-identity (positive) and other (negative) pairs. Rank 0
    /// gets the results; collective.
    public func openSet(_ model: FaceModel, name: String) throws -> [OpenSetResult] {
        let E = model.net.config.embeddingSize
        var results: [OpenSetResult] = []
        for f in cfg.eval.factors {
            guard let unit = try unitEmbeddings(model, factor: f) else { continue }
            let scores = try OpenSetProtocol.cosineScores(embeddings: unit, dimension: E)
            var pos: [Double] = [], neg: [Double] = []
            for (s, same) in zip(scores, pairs.issame) { if same { pos.append(s) } else { neg.append(s) } }
            let m = try OpenSetProtocol.evaluate(positive: pos, negative: neg)
            results.append(OpenSetResult(model: name, dataset: datasetName, degradationFactor: Int(f),
                                         degradation: Evaluator.degradationDescription(cfg, factor: f), metrics: m))
        }
        return results
    }
}
