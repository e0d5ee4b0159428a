// Margin-softmax classification heads (plain softmax, CosFace, ArcFace).
//
// Legend: N batch, E embedding size, K classes (training identities).
// Layouts (row-major, N samples):
//   embeddings  (N, E)   e[n*E + i]
//   labels      (N)      Int32 class indices in [0, K)
//   weight      (K, E)   one row per class, registered in the store as `<name>.weight`
//   logits      (N, K)   what the recognition and KD losses consume
//   cosines     (N, K)   cos θ[n, j] = <e_n/|e_n|, w_j/|w_j|> (margin kinds only)
//
// Margin kinds (s scale, m margin, y the label of sample n):
//   softmax:  logits = e W^T (no normalization, no bias)
//   CosFace:  logits[n, j] = s * (cos θ[n, j] - m * [j == y])          (Wang et al. CVPR 2018)
//   ArcFace:  logits[n, j] = s * cos θ[n, j] for j != y, and for j == y (insightface
//             arcface_torch/losses.py, class ArcFace, easy_margin=False; e.g. commit
//             eca1d9a6cd25653067e7293e27b8a2d0d2cd5415):
//               cos(θ + m) = cos θ cos m - sin θ sin m        if cos θ > cos(π - m)
//               cos θ - m * sin(π - m)                         otherwise (θ + m would pass π)
//             with sin θ = sqrt(1 - cos² θ).
// Normalization follows F.normalize: x / max(|x|, 1e-12).
import CKernels
import Foundation

/// Which margin a `MarginHead` applies.
public enum MarginKind: Sendable, Equatable, CustomStringConvertible {
    /// logits = W e: an ordinary linear classifier without bias.
    case softmax
    /// logits = s (cos θ_j - m [j = y]).
    case cosFace(s: Float, m: Float)
    /// logits = s cos(θ_y + m) for the target (insightface's easy_margin=False handling past π).
    case arcFace(s: Float, m: Float)

    public var description: String {
        switch self {
        case .softmax: return "softmax"
        case .cosFace(let s, let m): return "cosface(s: \(s), m: \(m))"
        case .arcFace(let s, let m): return "arcface(s: \(s), m: \(m))"
        }
    }
}

/// A margin-softmax classifier over `classes` identities. Register it while building the
/// network (it adds `<name>.weight` (K, E), normal std 0.01, decayed), `plan` once per batch
/// size, then per step `forward` (embeddings -> logits) and `backward` (dlogits -> dembeddings
/// added, dW added into `store.grads`).
///
/// - Complexity: two (N x K x E) GEMMs forward, three backward, plus O(K E) normalization.
public final class MarginHead {
    public let store: ParamStore
    public let kind: MarginKind
    public let embeddingSize: Int
    public let classes: Int
    public let weightName: String
    /// Offset of the (K, E) weight in `store.params` / `store.grads`.
    public let weightOffset: Int
    /// Batch size the buffers are planned for.
    public private(set) var batch = 0

    // Planned buffers (capacity grows, never shrinks).
    private var capN = 0
    private var logitsBuf: UnsafeMutablePointer<Float>      // (N, K)
    private var cosBuf: UnsafeMutablePointer<Float>         // (N, K) cosines (margin kinds)
    private var dCosBuf: UnsafeMutablePointer<Float>        // (N, K) dL/dcos
    private var eHat: UnsafeMutablePointer<Float>           // (N, E) normalized embeddings
    private var eNorm: UnsafeMutablePointer<Float>          // (N) max(|e_n|, eps)
    private var dEHat: UnsafeMutablePointer<Float>          // (N, E)
    private var wHat: UnsafeMutablePointer<Float>           // (K, E) normalized class weights
    private var wNorm: UnsafeMutablePointer<Float>          // (K)
    private var dWHat: UnsafeMutablePointer<Float>          // (K, E)
    private var savedLabels: UnsafeMutablePointer<Int32>    // (N) labels of the last forward

    private static let normEps: Float = 1e-12
    /// Floor on sin θ in the ArcFace derivative (d cos(θ+m)/d cos θ = cos m + sin m cos θ / sin θ),
    /// which is unbounded as cos θ -> 1; PyTorch's autograd would return inf there.
    public static let arcSinFloor: Float = 1e-6

    public init(_ store: ParamStore, name: String = "head", embeddingSize: Int, classes: Int, kind: MarginKind) {
        precondition(embeddingSize > 0 && classes > 1, "\(name): need E > 0 and K > 1, got E \(embeddingSize) K \(classes)")
        switch kind {
        case .softmax: break
        case .cosFace(let s, let m), .arcFace(let s, let m):
            precondition(s > 0 && m >= 0 && m < Float.pi / 2, "\(name): bad margin parameters \(kind)")
        }
        self.store = store; self.kind = kind
        self.embeddingSize = embeddingSize; self.classes = classes
        weightName = name + ".weight"
        weightOffset = store.register(weightName, shape: [classes, embeddingSize],
                                      initializer: .normal(std: 0.01), decay: true)
        logitsBuf = .allocate(capacity: 1); cosBuf = .allocate(capacity: 1); dCosBuf = .allocate(capacity: 1)
        eHat = .allocate(capacity: 1); eNorm = .allocate(capacity: 1); dEHat = .allocate(capacity: 1)
        savedLabels = .allocate(capacity: 1)
        let ke = classes * embeddingSize
        wHat = .allocate(capacity: ke); wNorm = .allocate(capacity: classes); dWHat = .allocate(capacity: ke)
        wHat.initialize(repeating: 0, count: ke); wNorm.initialize(repeating: 1, count: classes)
        dWHat.initialize(repeating: 0, count: ke)
    }

    deinit {
        logitsBuf.deallocate(); cosBuf.deallocate(); dCosBuf.deallocate()
        eHat.deallocate(); eNorm.deallocate(); dEHat.deallocate(); savedLabels.deallocate()
        wHat.deallocate(); wNorm.deallocate(); dWHat.deallocate()
    }

    private var isMargin: Bool { if case .softmax = kind { return false } else { return true } }

    /// Sizes the buffers for `batch` samples; allocates only when the batch grows.
    public func plan(batch n: Int) {
        precondition(n > 0, "\(weightName): batch must be positive")
        if n > capN {
            let nk = n * classes, ne = n * embeddingSize
            for p in [logitsBuf, cosBuf, dCosBuf, eHat, eNorm, dEHat] { p.deallocate() }
            savedLabels.deallocate()
            logitsBuf = .allocate(capacity: nk); cosBuf = .allocate(capacity: nk); dCosBuf = .allocate(capacity: nk)
            eHat = .allocate(capacity: ne); dEHat = .allocate(capacity: ne); eNorm = .allocate(capacity: n)
            savedLabels = .allocate(capacity: n)
            logitsBuf.initialize(repeating: 0, count: nk); cosBuf.initialize(repeating: 0, count: nk)
            dCosBuf.initialize(repeating: 0, count: nk); eHat.initialize(repeating: 0, count: ne)
            dEHat.initialize(repeating: 0, count: ne); eNorm.initialize(repeating: 1, count: n)
            savedLabels.initialize(repeating: 0, count: n)
            capN = n
        }
        batch = n
    }

    /// The margin-free logits of the last forward are `logitScale * cosinesOrLogits`: s cos θ for
    /// the margin kinds, W e for softmax (scale 1). Knowledge distillation compares these.
    public var logitScale: Float {
        switch kind { case .softmax: return 1; case .cosFace(let s, _), .arcFace(let s, _): return s }
    }
    /// (N, K) cosines (margin kinds) or logits (softmax) of the last forward.
    public var cosinesOrLogits: UnsafePointer<Float> { isMargin ? UnsafePointer(cosBuf) : UnsafePointer(logitsBuf) }

    /// (N, K) logits of the last `forward`.
    public var logits: UnsafeMutablePointer<Float> { logitsBuf }
    /// (N, K) unscaled cosines of the last `forward`, or nil for `.softmax` (not computed).
    public var cosines: UnsafePointer<Float>? { isMargin ? UnsafePointer(cosBuf) : nil }

    /// Computes `logits` (N, K) from `embeddings` (N, E). `labels` (N) select the margin's target
    /// class; pass nil at inference (no margin: logits = s cos θ, or W e for softmax).
    /// - Precondition: `plan(batch: n)` was called; labels in [0, K).
    public func forward(embeddings: UnsafePointer<Float>, labels: UnsafePointer<Int32>?) {
        let n = batch, e = embeddingSize, k = classes
        precondition(n > 0, "\(weightName): forward before plan")
        let w = store.params + weightOffset
        if let labels {
            for i in 0..<n {
                precondition(labels[i] >= 0 && Int(labels[i]) < k, "\(weightName): label \(labels[i]) of sample \(i) outside [0, \(k))")
                savedLabels[i] = labels[i]
            }
        } else {
            for i in 0..<n { savedLabels[i] = -1 }
        }
        switch kind {
        case .softmax:
            // logits (N, K) = e (N, E) x W^T
            kd_sgemm(0, 1, Int32(n), Int32(k), Int32(e),
                        1, embeddings, Int32(e), w, Int32(e), 0, logitsBuf, Int32(k))
            return
        case .cosFace, .arcFace:
            break
        }
        kd_normalize_rows(embeddings, eHat, eNorm, n, e, Self.normEps)
        kd_normalize_rows(w, wHat, wNorm, k, e, Self.normEps)
        // cos (N, K) = ê (N, E) x ŵ^T
        kd_sgemm(0, 1, Int32(n), Int32(k), Int32(e),
                    1, eHat, Int32(e), wHat, Int32(e), 0, cosBuf, Int32(k))
        let nk = n * k
        switch kind {
        case .softmax: break
        case .cosFace(let s, let m):
            for i in 0..<nk { logitsBuf[i] = s * cosBuf[i] }
            for i in 0..<n where savedLabels[i] >= 0 { logitsBuf[i * k + Int(savedLabels[i])] -= s * m }
        case .arcFace(let s, let m):
            for i in 0..<nk { logitsBuf[i] = s * cosBuf[i] }
            let cosM = cos(m), sinM = sin(m), threshold = cos(Float.pi - m), sinMM = sin(Float.pi - m) * m
            for i in 0..<n where savedLabels[i] >= 0 {
                let j = i * k + Int(savedLabels[i]), c = cosBuf[j]
                let target: Float
                if c > threshold {
                    let sinT = max(1 - c * c, 0).squareRoot()
                    target = c * cosM - sinT * sinM
                } else {
                    target = c - sinMM
                }
                logitsBuf[j] = s * target
            }
        }
    }

    /// Adds dL/de into `dEmbeddings` (N, E) (when non-nil) and dL/dW into `store.grads` (when the
    /// store has gradients), from `dLogits` (N, K) plus, when given, `dCosines` (N, K): a gradient
    /// with respect to `cosinesOrLogits` that bypasses the margin (used by logit KD). Uses the embeddings and labels of the last
    /// `forward`; `embeddings` must be the same buffer contents.
    public func backward(embeddings: UnsafePointer<Float>, dLogits: UnsafePointer<Float>,
                         dCosines: UnsafePointer<Float>? = nil, dEmbeddings: UnsafeMutablePointer<Float>?) {
        let n = batch, e = embeddingSize, k = classes
        precondition(n > 0, "\(weightName): backward before plan")
        let w = store.params + weightOffset
        let wantW = store.hasGradients
        switch kind {
        case .softmax:
            var dLogits = dLogits
            if let dCosines {   // for softmax, `cosinesOrLogits` are the logits themselves
                for i in 0..<(n * k) { dCosBuf[i] = dLogits[i] + dCosines[i] }
                dLogits = UnsafePointer(dCosBuf)
            }
            if let dEmbeddings {
                // de (N, E) += dlogits (N, K) x W (K, E)
                kd_sgemm(0, 0, Int32(n), Int32(e), Int32(k),
                            1, dLogits, Int32(k), w, Int32(e), 1, dEmbeddings, Int32(e))
            }
            if wantW {
                // dW (K, E) += dlogits^T (K, N) x e (N, E)
                kd_sgemm(1, 0, Int32(k), Int32(e), Int32(n),
                            1, dLogits, Int32(k), embeddings, Int32(e), 1, store.grads + weightOffset, Int32(e))
            }
            return
        case .cosFace(let s, _):
            for i in 0..<(n * k) { dCosBuf[i] = s * dLogits[i] }
        case .arcFace(let s, let m):
            for i in 0..<(n * k) { dCosBuf[i] = s * dLogits[i] }
            let cosM = cos(m), sinM = sin(m), threshold = cos(Float.pi - m)
            for i in 0..<n where savedLabels[i] >= 0 {
                let j = i * k + Int(savedLabels[i]), c = cosBuf[j]
                if c > threshold {
                    // d/dc [c cos m - sqrt(1 - c²) sin m] = cos m + sin m * c / sqrt(1 - c²)
                    let sinT = max(max(1 - c * c, 0).squareRoot(), Self.arcSinFloor)
                    dCosBuf[j] *= cosM + sinM * c / sinT
                } // else the derivative of c - m sin(π - m) is 1.
            }
        }
        if let dCosines { for i in 0..<(n * k) { dCosBuf[i] += dCosines[i] } }
        if let dEmbeddings {
            // dê (N, E) = dcos (N, K) x ŵ (K, E); de += (dê - ê <ê, dê>) / |e|
            kd_sgemm(0, 0, Int32(n), Int32(e), Int32(k),
                        1, dCosBuf, Int32(k), wHat, Int32(e), 0, dEHat, Int32(e))
            kd_normalize_rows_backward_add(eHat, eNorm, dEHat, dEmbeddings, n, e)
        }
        if wantW {
            // dŵ (K, E) = dcos^T (K, N) x ê (N, E); dW += (dŵ - ŵ <ŵ, dŵ>) / |w|
            kd_sgemm(1, 0, Int32(k), Int32(e), Int32(n),
                        1, dCosBuf, Int32(k), eHat, Int32(e), 0, dWHat, Int32(e))
            kd_normalize_rows_backward_add(wHat, wNorm, dWHat, store.grads + weightOffset, k, e)
        }
    }
}
