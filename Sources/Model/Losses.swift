// Losses: recognition cross-entropy, Hinton KD, attention transfer, attention similarity (A-SKD),
// embedding distillation.
//
// Legend: N batch, K classes, E embedding size, C channels, H x W spatial size, P = H*W.
// Layouts: logits (N, K) and embeddings (N, E) row-major; feature/attention maps CNHW (C, N, H, W)
// as everywhere in the network, i.e. element (c, n, p) at (c*N + n)*P + p. A row-major (N, D)
// matrix is the CNHW map Shape(n: N, c: 1, h: 1, w: D); a feature-major (D, N) vector batch
// (the network's (F, N) layout) is Shape(n: N, c: D, h: 1, w: 1).
//
// Contract shared by every loss here (llm.c style, one call does forward and backward):
// - the return value is the UNWEIGHTED loss (for logging);
// - the gradient of `weight * loss` is ADDED into the `d...` buffer when it is non-nil, so the
//   recognition and KD losses can accumulate into the same dlogits buffer;
// - the teacher side is frozen: no gradient is produced for it;
// - sums are accumulated in Double; nothing allocates except `LossWorkspace` growth.
import CKernels
import Foundation

/// Scratch memory for losses that need per-sample intermediates (attention transfer). Grows on
/// first use or when the batch grows, so the steady-state step allocates nothing.
public final class LossWorkspace {
    public private(set) var capacity = 0
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public init() { pointer = .allocate(capacity: 1) }
    deinit { pointer.deallocate() }
    /// Ensures at least `count` floats (reallocates only when growing) and returns the base.
    public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            pointer = .allocate(capacity: count)
            pointer.initialize(repeating: 0, count: count)
            capacity = count
        }
        return pointer
    }
}

// MARK: - Cross-entropy

/// Mean softmax cross-entropy over the batch: (1/N) sum_n [logsumexp(z_n) - z_n[y_n]], computed
/// with the max-shifted log-sum-exp. Adds weight * (softmax(z_n) - onehot(y_n)) / N into `dLogits`.
/// - Parameters: logits (N, K), labels (N) in [0, K), dLogits (N, K) or nil.
/// - Returns: the unweighted mean loss.
@discardableResult
public func crossEntropyLoss(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, n: Int, k: Int,
                             dLogits: UnsafeMutablePointer<Float>?, weight: Float = 1) -> Float {
    precondition(n > 0 && k > 0, "crossEntropyLoss: need N > 0 and K > 0, got N \(n) K \(k)")
    for r in 0..<n {
        precondition(labels[r] >= 0 && Int(labels[r]) < k, "crossEntropyLoss: label \(labels[r]) of sample \(r) outside [0, \(k))")
    }
    let total = kd_cross_entropy(logits, labels, dLogits, n, k, weight / Float(n))
    return Float(total / Double(n))
}

// MARK: - Hinton KD

/// Hinton knowledge distillation: T² · (1/N) sum_n KL(softmax(t_n/T) || softmax(s_n/T)), i.e.
/// PyTorch's `F.kl_div(F.log_softmax(s/T, 1), F.softmax(t/T, 1), reduction="batchmean") * T*T`.
/// Averaged over the batch only, never over classes. Adds weight * T/N * (softmax(s/T) -
/// softmax(t/T)) into `dStudent`; the teacher gets no gradient.
/// - Parameters: student, teacher (N, K) logits; dStudent (N, K) or nil; temperature > 0.
/// - Returns: the unweighted loss.
@discardableResult
public func distillationKLLoss(student: UnsafePointer<Float>, teacher: UnsafePointer<Float>, n: Int, k: Int,
                               temperature: Float, dStudent: UnsafeMutablePointer<Float>?,
                               weight: Float = 1) -> Float {
    precondition(n > 0 && k > 0, "distillationKLLoss: need N > 0 and K > 0, got N \(n) K \(k)")
    precondition(temperature > 0, "distillationKLLoss: temperature must be positive, got \(temperature)")
    let total = kd_distill_kl(student, teacher, dStudent, n, k, temperature, weight * temperature / Float(n))
    return Float(total * Double(temperature) * Double(temperature) / Double(n))
}

// MARK: - Attention transfer (Zagoruyko & Komodakis 2017)

/// Attention transfer between a student and a teacher feature map of the same batch and spatial
/// size (channel counts may differ). As `at_loss` in szagoruyko/attention-transfer (utils.py):
///   at(x)   = F.normalize(x.pow(2).mean(1).view(N, -1))      (mean over channels, L2 per sample)
///   loss    = (at(s) - at(t)).pow(2).mean()                   (mean over all N*P entries)
/// The original training script then uses beta/2 * sum over groups with beta = 1e3: pass
/// `weight: beta / 2` and call once per group to reproduce it.
/// Adds weight * dloss/ds into `dStudent` (CNHW, same shape as student).
/// - Parameters: student (Cs, N, H, W), teacher (Ct, N, H, W) CNHW; plane = H*W.
/// - Returns: the unweighted loss.
@discardableResult
public func attentionTransferLoss(student: UnsafePointer<Float>, studentChannels cs: Int,
                                  teacher: UnsafePointer<Float>, teacherChannels ct: Int,
                                  n: Int, plane: Int, dStudent: UnsafeMutablePointer<Float>?,
                                  weight: Float = 1, workspace: LossWorkspace) -> Float {
    precondition(cs > 0 && ct > 0 && n > 0 && plane > 0,
                 "attentionTransferLoss: bad sizes Cs \(cs) Ct \(ct) N \(n) P \(plane)")
    let np = n * plane
    let base = workspace.reserve(3 * np + 2 * n)
    let aS = base, aT = base + np, dA = base + 2 * np     // (N, P) each
    let normS = base + 3 * np, normT = normS + n           // (N)
    func attention(_ x: UnsafePointer<Float>, _ c: Int, _ a: UnsafeMutablePointer<Float>,
                   _ norms: UnsafeMutablePointer<Float>) {
        a.update(repeating: 0, count: np)
        // x is (C, N*P): a[i] = mean_c x[c, i]^2
        for ch in 0..<c {
            let row = x + ch * np
            for i in 0..<np { a[i] += row[i] * row[i] }
        }
        let invC = 1 / Float(c)
        for i in 0..<np { a[i] *= invC }
        for s in 0..<n {
            let ar = a + s * plane
            var ss = 0.0
            for p in 0..<plane { ss += Double(ar[p]) * Double(ar[p]) }
            let nrm = max(Float(ss.squareRoot()), 1e-12)
            norms[s] = nrm
            let inv = 1 / nrm
            for p in 0..<plane { ar[p] *= inv }
        }
    }
    attention(student, cs, aS, normS)
    attention(teacher, ct, aT, normT)
    var total = 0.0
    for i in 0..<np { let d = Double(aS[i] - aT[i]); total += d * d }
    let loss = Float(total / Double(np))
    guard let dStudent else { return loss }
    // dL/da_s = weight * 2 (a_s - a_t) / (N P); back through normalization: dv = (da - â <â, da>) / |v|
    let g = weight * 2 / Float(np)
    for i in 0..<np { dA[i] = g * (aS[i] - aT[i]) }
    for s in 0..<n {
        let ar = aS + s * plane, dr = dA + s * plane
        var dot: Float = 0
        for p in 0..<plane { dot += ar[p] * dr[p] }
        let inv = 1 / normS[s]
        for p in 0..<plane { dr[p] = (dr[p] - ar[p] * dot) * inv }
    }
    // v = mean_c x², so dx[c, i] += dv[i] * 2 x[c, i] / C
    let twoOverC = 2 / Float(cs)
    for ch in 0..<cs {
        let row = student + ch * np, drow = dStudent + ch * np
        for i in 0..<np { drow[i] += dA[i] * twoOverC * row[i] }
    }
    return loss
}

/// Attention transfer on planned tensors: adds into `student.grad` when it exists.
/// - Precondition: same N, H, W.
@discardableResult
public func attentionTransferLoss(student: Tensor, teacher: Tensor, weight: Float = 1,
                                  workspace: LossWorkspace) -> Float {
    let s = student.shape, t = teacher.shape
    precondition(s.n == t.n && s.h == t.h && s.w == t.w,
                 "attentionTransferLoss: student \(s) and teacher \(t) differ in batch or spatial size")
    return attentionTransferLoss(student: student.value, studentChannels: s.c, teacher: teacher.value,
                                 teacherChannels: t.c, n: s.n, plane: s.plane, dStudent: student.grad,
                                 weight: weight, workspace: workspace)
}

// MARK: - Cosine similarity per sample (A-SKD, embedding distillation)

/// (1/N) sum_n (1 - cos(s_n, t_n)) where sample n's vector is every (c, p) of a CNHW map of
/// `channels` x `plane` per sample; cos = s·t / (max(|s|, 1e-8) max(|t|, 1e-8)) as
/// F.cosine_similarity. Adds scale * d/ds (of the mean) into dStudent.
private func meanOneMinusCosine(_ s: UnsafePointer<Float>, _ t: UnsafePointer<Float>, n: Int, channels: Int,
                                plane: Int, dStudent: UnsafeMutablePointer<Float>?, scale: Float) -> Double {
    var total = 0.0
    let eps = 1e-8
    for smp in 0..<n {
        var st = 0.0, ss = 0.0, tt = 0.0
        for c in 0..<channels {
            let o = (c * n + smp) * plane
            for p in 0..<plane {
                let a = Double(s[o + p]), b = Double(t[o + p])
                st += a * b; ss += a * a; tt += b * b
            }
        }
        let ns = max(ss.squareRoot(), eps), nt = max(tt.squareRoot(), eps)
        let cosv = st / (ns * nt)
        total += 1 - cosv
        guard let dStudent else { continue }
        // d(1 - cos)/ds = -(t / (|s||t|) - cos s / |s|²)   (for |s| > eps), times 1/N of the mean
        let invN = 1 / Double(n)
        let a = Float(-invN / (ns * nt)), b = Float(invN * cosv / (ns * ns))
        for c in 0..<channels {
            let o = (c * n + smp) * plane
            for p in 0..<plane { dStudent[o + p] += scale * (a * t[o + p] + b * s[o + p]) }
        }
    }
    return total / Double(n)
}

// MARK: - Attention similarity (A-SKD, Shin et al. ECCV 2022)

/// How per-map attention-similarity losses are combined over the maps (blocks, and channel/spatial).
public enum MapReduction: Sendable, Equatable {
    /// Sum over maps, as the A-SKD reference code (`loss_sum += cosine_loss(l, h)` per map).
    case sum
    /// Mean over maps.
    case mean
}

/// One student/teacher attention-map pair. `shape` is CNHW: a CBAM channel-attention output
/// (C, N) feature-major is Shape(n: N, c: C, h: 1, w: 1); a spatial-attention map (1, N, H, W)
/// is Shape(n: N, c: 1, h: H, w: W); a row-major (N, D) matrix is Shape(n: N, c: 1, h: 1, w: D).
/// Each sample's vector is all C*H*W entries of that sample. The maps may be taken before or
/// after the sigmoid: the caller chooses which buffers to pass.
public struct AttentionMapPair {
    public var student: UnsafePointer<Float>
    public var teacher: UnsafePointer<Float>
    /// Where the student's gradient is added (same layout), or nil.
    public var dStudent: UnsafeMutablePointer<Float>?
    public var shape: Shape
    public init(student: UnsafePointer<Float>, teacher: UnsafePointer<Float>,
                dStudent: UnsafeMutablePointer<Float>?, shape: Shape) {
        self.student = student; self.teacher = teacher; self.dStudent = dStudent; self.shape = shape
    }
    /// A pair of planned tensors of equal shape; the gradient goes to `student.grad` if present.
    public init(student: Tensor, teacher: Tensor) {
        precondition(student.shape == teacher.shape,
                     "AttentionMapPair: student \(student.shape) and teacher \(teacher.shape) differ")
        self.init(student: student.value, teacher: teacher.value, dStudent: student.grad, shape: student.shape)
    }
}

/// Attention similarity of one map: (1/N) sum_n (1 - cos(s_n, t_n)). Adds weight * d/ds.
/// - Returns: the unweighted loss.
@discardableResult
public func attentionSimilarityLoss(_ pair: AttentionMapPair, weight: Float = 1) -> Float {
    let s = pair.shape
    precondition(s.count > 0, "attentionSimilarityLoss: empty map \(s)")
    return Float(meanOneMinusCosine(pair.student, pair.teacher, n: s.n, channels: s.c, plane: s.plane,
                                    dStudent: pair.dStudent, scale: weight))
}

/// A-SKD attention-similarity loss over several maps (e.g. channel and spatial attention of every
/// distilled block): L = reduce_maps (1/N) sum_n (1 - cos). With `.sum`, L = sum of per-map
/// losses; with `.mean`, L = that sum / maps.count. Adds weight * dL/ds into each map's dStudent.
/// - Returns: the unweighted L.
@discardableResult
public func attentionSimilarityLoss(_ maps: [AttentionMapPair], reduction: MapReduction = .sum,
                                    weight: Float = 1) -> Float {
    precondition(!maps.isEmpty, "attentionSimilarityLoss: no maps")
    let per: Float = reduction == .sum ? 1 : 1 / Float(maps.count)
    var total: Float = 0
    for m in maps { total += attentionSimilarityLoss(m, weight: weight * per) }
    return total * per
}

// MARK: - Embedding distillation

/// How a student embedding is pulled toward the (frozen) teacher embedding.
public enum EmbeddingDistillKind: Sendable, Equatable {
    /// Mean over all N*E entries of (s - t)², as F.mse_loss(s, t).
    case mse
    /// Mean over samples of |s/|s| - t/|t||² (= 2 - 2 cos).
    case normalizedL2
    /// Mean over samples of 1 - cos(s, t).
    case cosine
}

/// Embedding distillation between row-major (N, E) student and teacher embeddings. Adds
/// weight * dL/ds into `dStudent` (N, E).
/// - Returns: the unweighted loss.
@discardableResult
public func embeddingDistillationLoss(student: UnsafePointer<Float>, teacher: UnsafePointer<Float>, n: Int, e: Int,
                                      kind: EmbeddingDistillKind, dStudent: UnsafeMutablePointer<Float>?,
                                      weight: Float = 1) -> Float {
    precondition(n > 0 && e > 0, "embeddingDistillationLoss: need N > 0 and E > 0, got N \(n) E \(e)")
    switch kind {
    case .mse:
        let count = n * e
        var total = 0.0
        for i in 0..<count { let d = Double(student[i] - teacher[i]); total += d * d }
        if let dStudent {
            let g = weight * 2 / Float(count)
            for i in 0..<count { dStudent[i] += g * (student[i] - teacher[i]) }
        }
        return Float(total / Double(count))
    case .normalizedL2:
        return Float(2 * meanOneMinusCosine(student, teacher, n: n, channels: 1, plane: e,
                                            dStudent: dStudent, scale: 2 * weight))
    case .cosine:
        return Float(meanOneMinusCosine(student, teacher, n: n, channels: 1, plane: e,
                                        dStudent: dStudent, scale: weight))
    }
}
