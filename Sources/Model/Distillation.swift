// One knowledge-distillation forward/backward: frozen teacher on the high-quality view, student
// on the degraded view, and the weighted combined loss
//   L = w_rec * margin-softmax CE + w_kd * KD_T(s cos_t || s cos_s)
//     + w_askd * A-SKD attention similarity + w_at * attention transfer + w_emb * embedding KD.
// Legend: N batch, E embedding, K classes. Embeddings come out of FaceNet feature-major (E, N)
// and are transposed once to row-major (N, E) for the head and losses.
import Foundation

/// A block of a network: `stage` indexes NetworkConfig.depths, `block` the block in that stage.
public struct BlockRef: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public var stage: Int, block: Int
    public init(stage: Int, block: Int) { self.stage = stage; self.block = block }
    public var description: String { "\(stage).\(block)" }
    /// Parses "stage.block", e.g. "1.0".
    public init?(parsing s: Substring) {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, b >= 0 else { return nil }
        stage = a; block = b
    }
}

/// Which blocks' CBAM maps A-SKD compares.
public enum BlockSelection: Sendable, Equatable, Codable {
    /// The last block of each chosen stage.
    case last
    /// Every block of each chosen stage (A-SKD's hook on every `attention_target`).
    case every
    /// These student blocks (the chosen stages are ignored).
    case listed([BlockRef])
}

/// One distilled pair: a student block and the teacher block it is matched to.
public struct BlockPair: Sendable, Equatable {
    public var student: BlockRef, teacher: BlockRef
}

/// What the attention-map distillation compares, and how.
public struct AttentionDistillConfig: Sendable, Equatable, Codable {
    /// Stages distilled: A-SKD takes the blocks of `blocks` in these stages; attention transfer
    /// takes the output of each stage's last block (Zagoruyko's group outputs).
    public var stages: [Int]
    /// Which blocks of those stages A-SKD compares.
    public var blocks: BlockSelection
    /// A-SKD: compare CBAM channel maps (needs equal channel counts) and/or spatial maps.
    public var channel: Bool
    public var spatial: Bool
    /// Compare maps before the sigmoid (logits) instead of after.
    public var beforeSigmoid: Bool
    /// Mean (true) or sum (false) over the compared maps.
    public var meanOverMaps: Bool
    public init(stages: [Int], blocks: BlockSelection = .last, channel: Bool = true, spatial: Bool = true,
                beforeSigmoid: Bool = false, meanOverMaps: Bool = false) {
        self.stages = stages; self.blocks = blocks; self.channel = channel; self.spatial = spatial
        self.beforeSigmoid = beforeSigmoid; self.meanOverMaps = meanOverMaps
    }

    /// The student blocks A-SKD distills, each matched to the teacher block at the same relative
    /// depth of its stage (block b of Ds student blocks -> ceil((b + 1) Dt / Ds) - 1 of Dt teacher
    /// blocks: equal depths pair block for block, and a stage's last block always meets the
    /// teacher's last). Blocks or stages that do not exist are left out; `problems` names them.
    public func blockPairs(student s: NetworkConfig, teacher t: NetworkConfig) -> [BlockPair] {
        var refs: [BlockRef] = []
        switch blocks {
        case .last: refs = stages.compactMap { $0 >= 0 && $0 < s.depths.count ? BlockRef(stage: $0, block: s.depths[$0] - 1) : nil }
        case .every:
            for st in stages where st >= 0 && st < s.depths.count { for b in 0..<s.depths[st] { refs.append(BlockRef(stage: st, block: b)) } }
        case .listed(let l): refs = l.filter { $0.stage < s.depths.count && $0.block < s.depths[$0.stage] }
        }
        return refs.compactMap { r in
            guard r.stage < t.depths.count else { return nil }
            let ds = s.depths[r.stage], dt = t.depths[r.stage]
            let tb = ((r.block + 1) * dt + ds - 1) / ds - 1
            return BlockPair(student: r, teacher: BlockRef(stage: r.stage, block: tb))
        }
    }

    /// Listed blocks or stages absent from the student network, one line each.
    public func problems(student s: NetworkConfig) -> [String] {
        var p: [String] = []
        for st in stages where st < 0 || st >= s.depths.count { p.append("attention: stage \(st) does not exist (the student has \(s.depths.count))") }
        if case .listed(let l) = blocks {
            if l.isEmpty { p.append("attention: no blocks listed") }
            for r in l where r.stage >= s.depths.count || r.block >= s.depths[r.stage] {
                p.append("attention: block \(r) does not exist in the student (depths \(s.depths))")
            }
        }
        return p
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
    /// The CBAM modules A-SKD compares, (student, teacher), fixed at init.
    private var cbamPairs: [(CBAM, CBAM)] = []
    /// Batch-norm running statistics saved around the loss-balance passes.
    private var savedBuffers: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var savedBufferCount = 0
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
            for bp in loss.attention.blockPairs(student: student.net.config, teacher: t.net.config) {
                cbamPairs.append((student.net.blocks[bp.student.stage][bp.student.block].cbam,
                                  t.net.blocks[bp.teacher.stage][bp.teacher.block].cbam))
            }
        }
    }

    deinit { dLogits.deallocate(); dCos.deallocate(); sCos.deallocate(); tCos.deallocate(); savedBuffers.deallocate() }

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
            var listed = false
            if case .listed = loss.attention.blocks { listed = true }
            if loss.attention.stages.isEmpty && (loss.attentionTransfer > 0 || !listed) { p.append("attention: no stages chosen") }
            p += loss.attention.problems(student: s)
            let ss = s.stageSides, ts = t.stageSides
            for st in loss.attention.stages where st >= 0 && st < ss.count {
                guard st < ts.count else { p.append("attention: stage \(st) does not exist in the teacher"); continue }
                if ss[st] != ts[st] { p.append("attention: stage \(st) is \(ss[st])x\(ss[st]) in the student, \(ts[st])x\(ts[st]) in the teacher") }
            }
            if loss.attentionSimilarity > 0 {
                for pair in loss.attention.blockPairs(student: s, teacher: t) {
                    let st = pair.student.stage
                    if ss[st] != ts[st] && !loss.attention.stages.contains(st) {
                        p.append("attention: block \(pair.student) is \(ss[st])x\(ss[st]) in the student, \(ts[st])x\(ts[st]) in the teacher")
                    }
                    if loss.attention.channel && s.widths[st] != t.widths[st] {
                        p.append("attention: channel maps of block \(pair.student) differ (\(s.widths[st]) vs \(t.widths[st]) channels); disable channel maps")
                    }
                }
                if loss.attention.blockPairs(student: s, teacher: t).isEmpty && !loss.attention.stages.isEmpty && !listed {
                    p.append("attention: no block of the chosen stages exists in both networks")
                }
                if !loss.attention.channel && !loss.attention.spatial { p.append("attention: neither channel nor spatial maps chosen") }
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
        pairs.reserveCapacity(2 * cbamPairs.count)
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
                for (a, b) in cbamPairs {
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

    // MARK: loss balance

    /// The weighted terms of the loss, in a fixed order, for the loss-balance report.
    public enum Term: String, CaseIterable, Sendable { case recognition, kd, attentionSimilarity, attentionTransfer, embedding }

    /// Loss balance on the loaded batch (teacher forward already done): for each active term, a
    /// training forward and backward of that weighted term alone, and the global L2 norm of its
    /// gradient on the student's network parameters (the margin head excluded: only CE and KD
    /// reach it). Gradients, batch-norm running statistics and the loss weights are restored, so
    /// the step that follows is bitwise the step without this measurement; re-seed dropout
    /// before it. Returns (term, weighted value, gradient norm) for the active terms.
    public func termGradientNorms(labels: UnsafePointer<Int32>) -> [(term: Term, value: Float, gradNorm: Float)] {
        let st = student.store, saved = loss
        if savedBufferCount < st.bufferCount {
            savedBuffers.deallocate(); savedBufferCount = st.bufferCount
            savedBuffers = .allocate(capacity: max(1, savedBufferCount))
        }
        savedBuffers.update(from: st.buffers, count: st.bufferCount)
        defer { loss = saved; st.buffers.update(from: savedBuffers, count: st.bufferCount); st.zeroGrad() }
        let netParams = student.head.weightOffset
        var result: [(term: Term, value: Float, gradNorm: Float)] = []
        for term in Term.allCases where DistillationStep.weight(term, in: saved) > 0 {
            var only = LossConfig()
            only.recognition = 0
            only.temperature = saved.temperature; only.attention = saved.attention; only.embeddingKind = saved.embeddingKind
            switch term {
            case .recognition: only.recognition = saved.recognition
            case .kd: only.kd = saved.kd
            case .attentionSimilarity: only.attentionSimilarity = saved.attentionSimilarity
            case .attentionTransfer: only.attentionTransfer = saved.attentionTransfer
            case .embedding: only.embedding = saved.embedding
            }
            loss = only
            st.zeroGrad()
            st.buffers.update(from: savedBuffers, count: st.bufferCount)
            let out = studentForwardBackward(labels: labels)
            var ss: Double = 0
            for i in 0..<netParams { let g = Double(st.grads[i]); ss += g * g }
            result.append((term, out.total, Float(ss.squareRoot())))
        }
        return result
    }

    static func weight(_ term: Term, in l: LossConfig) -> Float {
        switch term {
        case .recognition: return l.recognition
        case .kd: return l.kd
        case .attentionSimilarity: return l.attentionSimilarity
        case .attentionTransfer: return l.attentionTransfer
        case .embedding: return l.embedding
        }
    }
}
