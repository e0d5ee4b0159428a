// One knowledge-distillation forward/backward: frozen teacher on the high-quality view, student
// on the degraded view, and the weighted combined loss
//   L = w_rec * margin-softmax CE + w_kd * KD_T(s cos_t || s cos_s)
//     + w_askd * A-SKD attention similarity + w_at * attention transfer + w_emb * embedding KD.
// Legend: N batch, E embedding, K classes. Embeddings come out of FaceNet feature-major (E, N)
// and are transposed once to row-major (N, E) for the head and losses.
import Foundation

/// What the attention-map distillation compares, and how.
public struct AttentionDistillConfig: Sendable, Equatable, Codable {
    /// Stages whose last block's maps are distilled (indices into NetworkConfig.depths).
    public var stages: [Int]
    /// A-SKD: compare CBAM channel maps (needs equal channel counts) and/or spatial maps.
    public var channel: Bool
    public var spatial: Bool
    /// Compare maps before the sigmoid (logits) instead of after.
    public var beforeSigmoid: Bool
    /// Mean (true) or sum (false) over the compared maps.
    public var meanOverMaps: Bool
    public init(stages: [Int], channel: Bool = true, spatial: Bool = true, beforeSigmoid: Bool = false,
                meanOverMaps: Bool = false) {
        self.stages = stages; self.channel = channel; self.spatial = spatial
        self.beforeSigmoid = beforeSigmoid; self.meanOverMaps = meanOverMaps
    }
}

/// Weights and options of the combined loss. A zero weight skips that term entirely.
public struct LossConfig: Sendable, Equatable {
    public var recognition: Float = 1
    public var kd: Float = 0
    public var temperature: Float = 4
    /// A-SKD attention similarity on CBAM maps.
    public var attentionSimilarity: Float = 0
    /// Attention transfer (Zagoruyko) on stage outputs.
    public var attentionTransfer: Float = 0
    public var attention = AttentionDistillConfig(stages: [])
    public var embedding: Float = 0
    public var embeddingKind: EmbeddingDistillKind = .cosine
    public init() {}
    /// Whether any term needs the teacher.
    public var needsTeacher: Bool { kd > 0 || attentionSimilarity > 0 || attentionTransfer > 0 || embedding > 0 }
}

/// The loss components of one step (unweighted, as computed) and the weighted total.
public struct LossBreakdown: Sendable, Equatable {
    public var recognition: Float = 0, kd: Float = 0, attentionSimilarity: Float = 0
    public var attentionTransfer: Float = 0, embedding: Float = 0, total: Float = 0
    public init() {}
}

/// A network plus its margin head, sharing one store.
public final class FaceModel {
    public let net: FaceNet
    public let head: MarginHead
    public var store: ParamStore { net.store }
    /// Row-major (N, E) copy of the embedding, and its gradient.
    public private(set) var embeddingRows: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    public private(set) var embeddingRowsGrad: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var rowsCapacity = 0

    /// Builds network and head into a fresh store, allocates it (with gradients unless frozen)
    /// and initializes it from `seed`.
    public init(config: NetworkConfig, classes: Int, margin: MarginKind, seed: UInt64, trainable: Bool) {
        let store = ParamStore()
        net = FaceNet(config: config, store: store)
        head = MarginHead(store, name: "classifier", embeddingSize: config.embeddingSize, classes: classes, kind: margin)
        store.allocate(gradients: trainable)
        store.initialize(seed: seed)
    }

    deinit { embeddingRows.deallocate(); embeddingRowsGrad.deallocate() }

    public func plan(batch n: Int, needsGrad: Bool) {
        net.plan(batch: n, needsGrad: needsGrad)
        head.plan(batch: n)
        let need = n * net.config.embeddingSize
        if need > rowsCapacity {
            embeddingRows.deallocate(); embeddingRowsGrad.deallocate()
            embeddingRows = .allocate(capacity: need); embeddingRowsGrad = .allocate(capacity: need)
            embeddingRows.initialize(repeating: 0, count: need); embeddingRowsGrad.initialize(repeating: 0, count: need)
            rowsCapacity = need
        }
    }

    /// Forward of a batch already loaded into `net.input`; leaves (N, E) rows in `embeddingRows`.
    public func forward(training: Bool) {
        net.forward(training: training)
        let e = net.embedding, E = e.shape.c, N = e.shape.n
        for i in 0..<E { for n in 0..<N { embeddingRows[n * E + i] = e.value[i * N + n] } }
    }

    /// L2-normalized embeddings (N, E) of the last forward, written into `out`.
    public func normalizedEmbeddings(into out: UnsafeMutablePointer<Float>) {
        let E = net.config.embeddingSize, N = net.batch
        for n in 0..<N {
            var s: Float = 0
            for i in 0..<E { s += embeddingRows[n * E + i] * embeddingRows[n * E + i] }
            let inv = 1 / max(s.squareRoot(), 1e-12)
            for i in 0..<E { out[n * E + i] = embeddingRows[n * E + i] * inv }
        }
    }
}

/// Computes the combined loss and all student gradients for one (micro-)batch.
public final class DistillationStep {
    public let student: FaceModel
    public let teacher: FaceModel?
    public var loss: LossConfig
    public var profiler: Profiler?
    private let workspace = LossWorkspace()
    private var dLogits: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var dCos: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var sCos: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var tCos: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var capacity = 0
    private var pairs: [AttentionMapPair] = []
    public private(set) var batch = 0

    /// - Precondition: the teacher (when the loss needs one) has the student's classes and, for
    ///   the attention terms, maps of matching sizes at the chosen stages.
    public init(student: FaceModel, teacher: FaceModel?, loss: LossConfig) {
        precondition(!loss.needsTeacher || teacher != nil, "DistillationStep: the loss needs a teacher")
        self.student = student; self.teacher = teacher; self.loss = loss
        if let t = teacher, loss.needsTeacher {
            for p in DistillationStep.compatibilityProblems(student: student.net.config, teacher: t.net.config,
                                                            studentClasses: student.head.classes,
                                                            teacherClasses: t.head.classes, loss: loss) {
                preconditionFailure(p)
            }
        }
    }

    deinit { dLogits.deallocate(); dCos.deallocate(); sCos.deallocate(); tCos.deallocate() }

    /// Every reason a student/teacher pair cannot be distilled with `loss`, one line each.
    public static func compatibilityProblems(student s: NetworkConfig, teacher t: NetworkConfig, studentClasses: Int,
                                             teacherClasses: Int, loss: LossConfig) -> [String] {
        var p: [String] = []
        if loss.kd > 0 && studentClasses != teacherClasses {
            p.append("kd: student has \(studentClasses) classes, teacher \(teacherClasses)")
        }
        if loss.embedding > 0 && s.embeddingSize != t.embeddingSize {
            p.append("embedding distillation: student embedding \(s.embeddingSize) != teacher \(t.embeddingSize)")
        }
        if loss.attentionSimilarity > 0 || loss.attentionTransfer > 0 {
            if loss.attention.stages.isEmpty { p.append("attention: no stages chosen") }
            let ss = s.stageSides, ts = t.stageSides
            for st in loss.attention.stages {
                guard st >= 0 && st < ss.count && st < ts.count else {
                    p.append("attention: stage \(st) does not exist in both networks"); continue
                }
                if ss[st] != ts[st] { p.append("attention: stage \(st) is \(ss[st])x\(ss[st]) in the student, \(ts[st])x\(ts[st]) in the teacher") }
                if loss.attentionSimilarity > 0 && loss.attention.channel && s.widths[st] != t.widths[st] {
                    p.append("attention: channel maps of stage \(st) differ (\(s.widths[st]) vs \(t.widths[st]) channels); disable channel maps")
                }
            }
            if s.inputSize != t.inputSize { p.append("attention: input sizes differ (\(s.inputSize) vs \(t.inputSize))") }
        }
        return p
    }

    public func plan(batch n: Int) {
        student.plan(batch: n, needsGrad: true)
        teacher?.plan(batch: n, needsGrad: false)
        let nk = n * student.head.classes
        if nk > capacity {
            for p in [dLogits, dCos, sCos, tCos] { p.deallocate() }
            dLogits = .allocate(capacity: nk); dCos = .allocate(capacity: nk)
            sCos = .allocate(capacity: nk); tCos = .allocate(capacity: nk)
            capacity = nk
        }
        pairs.reserveCapacity(2 * loss.attention.stages.count)
        batch = n
    }

    /// Teacher forward (inference mode) on `net.input` already loaded by the caller.
    public func teacherForward() {
        guard let t = teacher, loss.needsTeacher else { return }
        t.forward(training: false)
        if loss.kd > 0 { t.head.forward(embeddings: t.embeddingRows, labels: nil) }
    }

    /// Student forward on its loaded input, the losses, and backward; gradients are ADDED into
    /// the student's store (zero them first). `ready(offset)` as in `FaceNet.backward`.
    public func studentForwardBackward(labels: UnsafePointer<Int32>, ready: ((Int) -> Void)? = nil) -> LossBreakdown {
        let s = student, n = batch, k = s.head.classes, E = s.net.config.embeddingSize
        let prof = profiler
        s.forward(training: true)
        var out = LossBreakdown()
        let t0 = prof == nil ? 0 : Profiler.now()
        s.head.forward(embeddings: s.embeddingRows, labels: labels)
        dLogits.update(repeating: 0, count: n * k)
        dCos.update(repeating: 0, count: n * k)
        s.embeddingRowsGrad.update(repeating: 0, count: n * E)
        if loss.recognition > 0 {
            out.recognition = crossEntropyLoss(logits: s.head.logits, labels: labels, n: n, k: k, dLogits: dLogits,
                                               weight: loss.recognition)
        }
        if let t = teacher, loss.needsTeacher {
            if loss.kd > 0 {
                // KD on the margin-free logits s*cos of both networks (the teacher's own head).
                let scale = s.head.logitScale, tscale = t.head.logitScale
                let sc = s.head.cosinesOrLogits, tc = t.head.cosinesOrLogits
                for i in 0..<(n * k) { sCos[i] = sc[i] * scale; tCos[i] = tc[i] * tscale }
                out.kd = distillationKLLoss(student: sCos, teacher: tCos, n: n, k: k, temperature: loss.temperature,
                                            dStudent: dCos, weight: loss.kd)
                for i in 0..<(n * k) { dCos[i] *= scale }        // d/dcos = s * d/d(s cos)
            }
            if loss.attentionSimilarity > 0 {
                pairs.removeAll(keepingCapacity: true)    // capacity reserved in plan: no allocation
                for st in loss.attention.stages {
                    let a = s.net.stageAttention[st], b = t.net.stageAttention[st]
                    let pre = loss.attention.beforeSigmoid
                    if loss.attention.channel {
                        pairs.append(AttentionMapPair(student: pre ? a.caLogit.value : a.ca.value,
                                                      teacher: pre ? b.caLogit.value : b.ca.value,
                                                      dStudent: pre ? a.caLogitGrad.value : a.caGrad.value,
                                                      shape: a.ca.shape))
                    }
                    if loss.attention.spatial {
                        pairs.append(AttentionMapPair(student: pre ? a.saLogit.value : a.sa.value,
                                                      teacher: pre ? b.saLogit.value : b.sa.value,
                                                      dStudent: pre ? a.saLogitGrad.value : a.saGrad.value,
                                                      shape: a.sa.shape))
                    }
                }
                out.attentionSimilarity = attentionSimilarityLoss(pairs, reduction: loss.attention.meanOverMaps ? .mean : .sum,
                                                                  weight: loss.attentionSimilarity)
            }
            if loss.attentionTransfer > 0 {
                for st in loss.attention.stages {
                    out.attentionTransfer += attentionTransferLoss(student: s.net.stageOutputs[st],
                                                                   teacher: t.net.stageOutputs[st],
                                                                   weight: loss.attentionTransfer, workspace: workspace)
                }
            }
            if loss.embedding > 0 {
                out.embedding = embeddingDistillationLoss(student: s.embeddingRows, teacher: t.embeddingRows, n: n, e: E,
                                                          kind: loss.embeddingKind, dStudent: s.embeddingRowsGrad,
                                                          weight: loss.embedding)
            }
        }
        out.total = loss.recognition * out.recognition + loss.kd * out.kd
            + loss.attentionSimilarity * out.attentionSimilarity + loss.attentionTransfer * out.attentionTransfer
            + loss.embedding * out.embedding
        s.head.backward(embeddings: s.embeddingRows, dLogits: dLogits, dCosines: loss.kd > 0 ? dCos : nil,
                        dEmbeddings: s.embeddingRowsGrad)
        let g = s.net.embedding.grad!
        for i in 0..<E { for j in 0..<n { g[i * n + j] += s.embeddingRowsGrad[j * E + i] } }
        if let prof { prof.add(.loss, Profiler.now() - t0) }
        s.net.backward(ready: ready)
        return out
    }
}
