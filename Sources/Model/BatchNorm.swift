// Batch normalization over each channel of a CNHW activation (2-d: (C, N, H, W); the same
// class is 1-d batch norm on feature-major vectors (F, N, 1, 1)).
//
// Legend: C channels, N batch, M = N*H*W values per channel on this replica, Mt = M summed over
// replicas (Mt = M without a reducer).
// Training:  y = (x - mean) * rstd * weight + bias with batch mean, biased batch variance var,
//            rstd = 1/sqrt(var + eps); running_mean += momentum * (mean - running_mean),
//            running_var += momentum * (var * Mt/(Mt-1) - running_var)  (PyTorch semantics).
// Inference (or `frozen`): the running statistics replace the batch statistics; nothing updates.
// Backward (batch statistics), xhat = (x - mean) * rstd:
//   dx = weight * rstd * (dy - sum(dy)/Mt - xhat * sum(dy*xhat)/Mt),
//   dweight += sum(dy*xhat), dbias += sum(dy)
// and with frozen statistics dx = weight * rstd * dy.
// Synchronized BN: with a `reducer`, forward all-reduces (sum, sumsq, M) per channel and
// backward all-reduces (sum dy, sum dy*(x-mean)) so that R replicas with batch B/R each
// compute exactly the batch-B statistics and input gradients. Parameter gradients stay local
// (the trainer all-reduces them with every other gradient).
import CKernels

/// Sums a Double array across data-parallel replicas, in place (an MPI all-reduce). Implemented
/// outside Model (the Dist module); with one replica it may return at once.
public protocol CrossReplicaReducer: AnyObject {
    /// Number of replicas taking part in every reduction.
    var replicas: Int { get }
    /// p[0..<count] = sum over replicas of each replica's p[0..<count]. Every replica calls it
    /// in the same order with the same count.
    func allReduceSum(_ p: UnsafeMutablePointer<Double>, count: Int)
}

public final class BatchNorm: Layer {
    public let channels: Int
    public let eps: Float
    /// Running-statistics update rate (PyTorch's momentum: new = (1-m)*old + m*batch).
    /// May change between forwards: 1/(k+1) on the k-th batch makes the running statistics the
    /// plain average of the batch statistics (used to re-estimate them after weight averaging).
    public var momentum: Float
    public let store: ParamStore
    public let name: String
    /// Offsets into store.params: weight (C), init 1; bias (C), init 0; both decay: false.
    public let weightOffset: Int, biasOffset: Int
    /// Offsets into store.buffers: running_mean (C), init 0; running_var (C), init 1.
    public let runningMeanOffset: Int, runningVarOffset: Int
    /// When true, forward uses the running statistics even with `training: true` and never
    /// updates them (a frozen backbone's BN); gradients still flow to x, weight and bias.
    public var frozen = false
    /// When set, batch statistics are summed across replicas (synchronized batch norm).
    public var reducer: CrossReplicaReducer?
    /// When true, forward writes ReLU(batch norm) in the same pass (the block's following ReLU
    /// then runs in place on this output and is skipped). Backward is unchanged: it reads x.
    var fusesReLU = false
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    // Saved by forward for backward: whether batch statistics were used, their count Mt.
    private var usedBatchStats = false
    private var totalCount = 0.0
    // Per-channel workspaces, allocated once.
    private let mean: UnsafeMutablePointer<Float>     // (C) mean used by the last forward
    private let rstd: UnsafeMutablePointer<Float>     // (C) 1/sqrt(var + eps) used by the last forward
    private let coefA: UnsafeMutablePointer<Float>    // (C) scale / dx coefficient on dy
    private let coefB: UnsafeMutablePointer<Float>    // (C) shift / dx coefficient on (x - mean)
    private let coefD: UnsafeMutablePointer<Float>    // (C) dx constant term
    private let red: UnsafeMutablePointer<Double>     // (2C + 1) sums to reduce across replicas

    /// Registers `name.weight`, `name.bias` (params, no decay) and `name.running_mean`,
    /// `name.running_var` (buffers) in `store`.
    public init(_ store: ParamStore, name: String, channels: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        precondition(channels > 0, "BatchNorm \(name): channels must be positive, got \(channels)")
        precondition(momentum >= 0 && momentum <= 1, "BatchNorm \(name): momentum \(momentum) outside [0, 1]")
        precondition(eps > 0, "BatchNorm \(name): eps must be positive")
        self.channels = channels; self.eps = eps; self.momentum = momentum
        self.store = store; self.name = name
        weightOffset = store.register(name + ".weight", shape: [channels], initializer: .constant(1), decay: false)
        biasOffset = store.register(name + ".bias", shape: [channels], initializer: .constant(0), decay: false)
        runningMeanOffset = store.register(name + ".running_mean", shape: [channels], region: .buffer,
                                           initializer: .constant(0))
        runningVarOffset = store.register(name + ".running_var", shape: [channels], region: .buffer,
                                          initializer: .constant(1))
        func make(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n); p.initialize(repeating: 0, count: n); return p
        }
        mean = make(channels); rstd = make(channels)
        coefA = make(channels); coefB = make(channels); coefD = make(channels)
        red = .allocate(capacity: 2 * channels + 1); red.initialize(repeating: 0, count: 2 * channels + 1)
    }

    deinit {
        mean.deallocate(); rstd.deallocate(); coefA.deallocate(); coefB.deallocate(); coefD.deallocate()
        red.deallocate()
    }

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        precondition(input.c == channels, "BatchNorm \(name): input has \(input.c) channels, expected \(channels)")
        inShape = input
        output.plan(input, needsGrad: needsGrad)
        return input
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "BatchNorm \(name): forward on \(x.shape) but planned for \(inShape)")
        let C = channels, M = inShape.n * inShape.plane
        let w = store.params + weightOffset, b = store.params + biasOffset
        let rm = store.buffers + runningMeanOffset, rv = store.buffers + runningVarOffset
        usedBatchStats = training && !frozen
        if usedBatchStats {
            let sum = red, sumsq = red + C
            kd_bn_stats(x.value, sum, sumsq, Int32(C), M)
            red[2 * C] = Double(M)
            if let r = reducer { r.allReduceSum(red, count: 2 * C + 1) }
            let mt = red[2 * C]
            precondition(mt > 1, "BatchNorm \(name): training needs more than 1 value per channel, got \(Int(mt))")
            totalCount = mt
            let m = Double(momentum)
            for c in 0..<C {
                let mu = sum[c] / mt
                let v = max(sumsq[c] / mt - mu * mu, 0)
                mean[c] = Float(mu)
                rstd[c] = Float(1 / (v + Double(eps)).squareRoot())
                rm[c] = Float((1 - m) * Double(rm[c]) + m * mu)
                rv[c] = Float((1 - m) * Double(rv[c]) + m * v * mt / (mt - 1))
            }
        } else {
            for c in 0..<C {
                mean[c] = rm[c]
                rstd[c] = Float(1 / (Double(rv[c]) + Double(eps)).squareRoot())
            }
        }
        // y = x * (w*rstd) + (b - mean*w*rstd)
        for c in 0..<C {
            coefA[c] = w[c] * rstd[c]
            coefB[c] = b[c] - mean[c] * coefA[c]
        }
        if fusesReLU { kd_channel_affine_relu(output.value, x.value, coefA, coefB, Int32(C), M) }
        else { kd_channel_affine(output.value, x.value, coefA, coefB, Int32(C), M) }
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "BatchNorm \(name): backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("BatchNorm \(name): backward without grad") }
        let C = channels, M = inShape.n * inShape.plane
        let sdy = red, sdyx = red + C
        kd_bn_backward_reduce(dy, x.value, mean, sdy, sdyx, Int32(C), M)
        // Parameter gradients use this replica's sums only (they are all-reduced with the rest).
        if store.hasGradients {
            let dw = store.grads + weightOffset, db = store.grads + biasOffset
            for c in 0..<C {
                dw[c] += Float(sdyx[c] * Double(rstd[c]))
                db[c] += Float(sdy[c])
            }
        }
        guard let dx = x.grad else { return }
        let w = store.params + weightOffset
        if usedBatchStats {
            if let r = reducer { r.allReduceSum(red, count: 2 * C) }
            let mt = totalCount
            for c in 0..<C {
                let k = Double(w[c]) * Double(rstd[c])
                let mdy = sdy[c] / mt
                let mdyx = sdyx[c] / mt * Double(rstd[c])   // mean(dy * xhat)
                coefA[c] = Float(k)
                coefB[c] = Float(-k * mdyx * Double(rstd[c]))
                coefD[c] = Float(-k * mdy)
            }
        } else {
            for c in 0..<C { coefA[c] = w[c] * rstd[c]; coefB[c] = 0; coefD[c] = 0 }
        }
        kd_bn_backward_dx(dx, dy, x.value, mean, coefA, coefB, coefD, Int32(C), M)
    }
}
