// SGD with momentum over the flat parameter store, global-norm clipping and non-finite detection.
//
// Legend: P trainable floats in the store. params, grads and momentum are (P) in the same layout.
// The update is PyTorch's torch.optim.SGD (dampening 0, maximize false):
//   d = g + wd * p            (wd = 0 for entries with decay == false when exemptNoDecay)
//   buf = mu * buf + d        (buf starts at zero, which equals PyTorch's first-step clone)
//   d = nesterov ? d + mu * buf : buf
//   p -= lr * d
// The store's .param entries are merged into maximal contiguous runs of equal decay flag at
// init; each step is one threaded C pass per run (kd_sgd_update).
import CKernels

/// SGD hyper-parameters other than the learning rate (which comes from `LRSchedule` per step).
public struct SGDConfig: Sendable, Equatable {
    public var momentum: Float
    public var weightDecay: Float
    public var nesterov: Bool
    /// When true, entries registered with `decay: false` (batch-norm affine, biases) get no decay.
    public var exemptNoDecay: Bool
    public init(momentum: Float = 0.9, weightDecay: Float = 5e-4, nesterov: Bool = false, exemptNoDecay: Bool = true) {
        precondition(momentum >= 0 && momentum < 1, "SGDConfig: momentum \(momentum) outside [0, 1)")
        precondition(weightDecay >= 0, "SGDConfig: negative weight decay \(weightDecay)")
        precondition(!nesterov || momentum > 0, "SGDConfig: Nesterov needs momentum > 0")
        self.momentum = momentum; self.weightDecay = weightDecay
        self.nesterov = nesterov; self.exemptNoDecay = exemptNoDecay
    }
}

/// SGD with momentum on one `ParamStore`. Allocates nothing per step.
public final class SGD {
    public let store: ParamStore
    public var config: SGDConfig
    /// Contiguous runs of the trainable region: (offset, count, decay), in offset order.
    public let ranges: [(offset: Int, count: Int, decay: Bool)]

    /// - Precondition: `store` is allocated with gradients.
    public init(store: ParamStore, config: SGDConfig) {
        precondition(store.isAllocated && store.hasGradients, "SGD: store must be allocated with gradients")
        self.store = store; self.config = config
        var runs: [(offset: Int, count: Int, decay: Bool)] = []
        for e in store.entries.filter({ $0.region == .param }).sorted(by: { $0.offset < $1.offset }) {
            if let last = runs.last, last.decay == e.decay, last.offset + last.count == e.offset {
                runs[runs.count - 1].count += e.count
            } else {
                runs.append((e.offset, e.count, e.decay))
            }
        }
        ranges = runs
    }

    /// One SGD step with learning rate `lr` on every trainable entry: updates params and momentum
    /// from grads (grads are left as they are).
    public func step(lr: Float) {
        let c = config
        for r in ranges {
            let wd = (r.decay || !c.exemptNoDecay) ? c.weightDecay : 0
            kd_sgd_update(store.params + r.offset, store.grads + r.offset, store.momentum + r.offset,
                          r.count, lr, c.momentum, wd, c.nesterov ? 1 : 0)
        }
    }

    /// The L2 norm of all gradients (deterministic, accumulated in double). Non-finite when any
    /// gradient is non-finite.
    public func gradientNorm() -> Float {
        Float(kd_sum_squares(store.grads, store.paramCount).squareRoot())
    }

    /// Whether every gradient is finite (the trainer skips the step otherwise).
    public func gradientsAreFinite() -> Bool { gradientNorm().isFinite }

    /// Scales all gradients by maxNorm / norm when the global norm exceeds `maxNorm` (as
    /// torch.nn.utils.clip_grad_norm_, without its 1e-6 in the denominator). Returns the
    /// pre-clip norm; gradients are left untouched when it is not finite.
    @discardableResult
    public func clipGradients(maxNorm: Float) -> Float {
        precondition(maxNorm > 0, "clipGradients: maxNorm must be positive, got \(maxNorm)")
        let norm = gradientNorm()
        if norm.isFinite && norm > maxNorm { kd_scale(store.grads, store.paramCount, maxNorm / norm) }
        return norm
    }
}
