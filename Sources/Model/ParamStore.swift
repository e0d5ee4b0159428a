import Foundation
import KDCore
import CKernels

// The flat parameter store: every trainable parameter of a network lives in one contiguous
// buffer `params` (P floats), with `grads` and `momentum` in the same layout, and every
// non-trainable state buffer (batch-norm running mean/var, counters) in one buffer `buffers`
// (Q floats). One table of entries (name, shape, offset) describes both; the same table is the
// safetensors header, the all-reduce buffer and the unit of checkpoint averaging.

/// Which flat region an entry lives in.
public enum ParamRegion: String, Sendable, Codable {
    /// Trainable: has a gradient and optimizer state (`params`, `grads`, `momentum`).
    case param
    /// Non-trainable state such as batch-norm running statistics (`buffers`).
    case buffer
}

/// How an entry is initialized by `ParamStore.initialize(seed:)`.
public enum ParamInit: Sendable, Equatable {
    case constant(Float)
    /// Kaiming-normal for ReLU networks (PyTorch's `kaiming_normal_(mode="fan_out")` uses
    /// fan-out; we take the fan passed here): std = gain / sqrt(fan).
    case normal(std: Float)
    /// Uniform in [-bound, bound] (PyTorch's default for Linear/Conv with a = sqrt(5)).
    case uniform(bound: Float)
}

/// One row of the store's table.
public struct ParamEntry: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let region: ParamRegion
    /// Offset in floats into `params` (region .param) or `buffers` (region .buffer).
    public let offset: Int
    public let count: Int
    public let initializer: ParamInit
    /// Whether weight decay applies (false for batch-norm affine parameters and biases, when
    /// the optimizer is asked to exempt them).
    public let decay: Bool
}

/// Flat storage for one network. Layers register entries while the network is built, then the
/// store is allocated once; layers keep offsets, never copies.
///
/// - Precondition: `register` only before `allocate`; pointers are valid after `allocate` for
///   the lifetime of the store.
public final class ParamStore {
    public private(set) var entries: [ParamEntry] = []
    /// Total floats in the trainable region.
    public private(set) var paramCount = 0
    /// Total floats in the buffer region.
    public private(set) var bufferCount = 0
    public private(set) var isAllocated = false
    /// Whether `grads` and `momentum` exist (false for a frozen teacher).
    public private(set) var hasGradients = false

    /// (P) trainable values.
    public private(set) var params: UnsafeMutablePointer<Float>
    /// (P) gradients, same layout as params; zeroed by `zeroGrad()` once per step.
    public private(set) var grads: UnsafeMutablePointer<Float>
    /// (P) SGD momentum, same layout as params.
    public private(set) var momentum: UnsafeMutablePointer<Float>
    /// (Q) non-trainable state.
    public private(set) var buffers: UnsafeMutablePointer<Float>
    private var index: [String: Int] = [:]

    public init() {
        params = .allocate(capacity: 1); grads = .allocate(capacity: 1)
        momentum = .allocate(capacity: 1); buffers = .allocate(capacity: 1)
    }

    deinit {
        params.deallocate(); grads.deallocate(); momentum.deallocate(); buffers.deallocate()
    }

    /// Adds an entry and returns its offset in its region.
    @discardableResult
    public func register(_ name: String, shape: [Int], region: ParamRegion = .param,
                         initializer: ParamInit, decay: Bool = true) -> Int {
        precondition(!isAllocated, "ParamStore.register after allocate: \(name)")
        precondition(index[name] == nil, "duplicate parameter name \(name)")
        precondition(shape.allSatisfy { $0 > 0 }, "bad shape \(shape) for \(name)")
        let count = shape.reduce(1, *)
        let offset: Int
        switch region {
        case .param: offset = paramCount; paramCount += count
        case .buffer: offset = bufferCount; bufferCount += count
        }
        index[name] = entries.count
        entries.append(ParamEntry(name: name, shape: shape, region: region, offset: offset,
                                  count: count, initializer: initializer, decay: decay))
        return offset
    }

    /// Allocates the flat buffers (zero-filled). `gradients: false` for a frozen network.
    public func allocate(gradients: Bool = true) {
        precondition(!isAllocated, "ParamStore.allocate called twice")
        func make(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            return p
        }
        params.deallocate(); grads.deallocate(); momentum.deallocate(); buffers.deallocate()
        params = make(paramCount)
        grads = make(gradients ? paramCount : 0)
        momentum = make(gradients ? paramCount : 0)
        buffers = make(bufferCount)
        hasGradients = gradients
        isAllocated = true
    }

    public func entry(named name: String) -> ParamEntry? { index[name].map { entries[$0] } }

    /// Base pointer of an entry's values.
    public func pointer(_ e: ParamEntry) -> UnsafeMutablePointer<Float> {
        e.region == .param ? params + e.offset : buffers + e.offset
    }

    /// Fills every entry from its initializer; deterministic in (seed, entry name).
    public func initialize(seed: UInt64) {
        precondition(isAllocated)
        for e in entries {
            var rng = SplitMix64(seed: seed ^ fnv1a64(e.name))
            let p = pointer(e)
            switch e.initializer {
            case .constant(let v): p.update(repeating: v, count: e.count)
            case .normal(let std):
                for i in 0..<e.count { p[i] = Float(rng.nextGaussian()) * std }
            case .uniform(let b):
                for i in 0..<e.count { p[i] = (Float(rng.nextUnit()) * 2 - 1) * b }
            }
        }
    }

    /// Zeroes all gradients (once per step).
    public func zeroGrad() {
        if hasGradients { grads.update(repeating: 0, count: paramCount) }
    }

    /// The replica checksum (`ReplicaChecksum`, exact over bit patterns) of the parameters, and of
    /// the momentum and buffers when asked: equal stores give equal sums. Data-parallel replicas
    /// agree on all three after every step (batch-norm running statistics are averaged across
    /// ranks every step), which `Communicator.verifyReplicas` checks.
    public func checksum(includeMomentum: Bool = false, includeBuffers: Bool = true) -> UInt64 {
        var c = ReplicaChecksum()
        c.combine(params, count: paramCount)
        if includeMomentum && hasGradients { c.combine(momentum, count: paramCount) }
        if includeBuffers { c.combine(buffers, count: bufferCount) }
        return c.value
    }
}
