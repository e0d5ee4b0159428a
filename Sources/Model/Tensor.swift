// Activations and their gradients.
//
// Legend: N batch, C channels, H height, W width. Every activation is stored channel-major,
// (C, N, H, W): channel c of image n starts at (c*N + n)*H*W. A vector activation (after the
// embedding head) is (F, N, 1, 1), i.e. feature-major (F, N): `Flatten` produces it (feature
// index c*H*W + h*W + w, as PyTorch) and `Linear` consumes it.

/// The shape of a 4-d activation.
public struct Shape: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var n: Int, c: Int, h: Int, w: Int
    public init(n: Int, c: Int, h: Int, w: Int) { self.n = n; self.c = c; self.h = h; self.w = w }
    public var count: Int { n * c * h * w }
    public var plane: Int { h * w }
    public var description: String { "(n: \(n), c: \(c), h: \(h), w: \(w))" }
}

/// Bytes of activation storage (tensors, scratch and arenas) this process holds now, for
/// memory reports (`kdtrain bench`). Updated only while planning.
public enum ActivationMemory {
    nonisolated(unsafe) public private(set) static var bytes = 0
    static func add(floats: Int) { bytes += floats * MemoryLayout<Float>.stride }
}

/// A planned activation: values and (optionally) gradients of one shape. Storage is allocated
/// when the shape grows and reused otherwise, so the steady-state step allocates nothing.
///
/// Storage is owned, or lent by a network's arena (`lendValue` / `lendGrad`): a lent buffer is
/// shared with tensors whose lifetimes do not overlap (see `FaceNet.plan`). A tensor whose
/// storage will be lent is marked before planning (`valueLent` / `gradLent`) so that planning
/// never allocates what the arena provides.
public final class Tensor {
    public private(set) var shape: Shape
    /// Values, `shape.count` floats, CNHW.
    public private(set) var value: UnsafeMutablePointer<Float>
    /// dLoss/dValue in the same layout, or nil when no gradient flows here.
    public private(set) var grad: UnsafeMutablePointer<Float>?
    private var capacity: Int
    private var gradCapacity = 0
    /// Whether planning leaves the value / gradient storage to an arena (set before `plan`).
    public internal(set) var valueLent = false, gradLent = false

    public init(_ shape: Shape = Shape(n: 0, c: 0, h: 0, w: 0), needsGrad: Bool = false) {
        self.shape = shape
        capacity = max(shape.count, 1)
        value = .allocate(capacity: capacity)
        value.initialize(repeating: 0, count: capacity)
        ActivationMemory.add(floats: capacity)
        grad = nil
        if needsGrad { ensureGrad(capacity) }
    }

    deinit { releaseValue(); releaseGrad() }

    private func releaseValue() {
        guard capacity > 0 else { return }
        value.deallocate(); ActivationMemory.add(floats: -capacity); capacity = 0
    }
    private func releaseGrad() {
        if gradCapacity > 0, let g = grad { g.deallocate(); ActivationMemory.add(floats: -gradCapacity) }
        gradCapacity = 0
    }

    private func ensureGrad(_ n: Int) {
        if gradCapacity >= n, grad != nil { return }
        releaseGrad()
        let g = UnsafeMutablePointer<Float>.allocate(capacity: n)
        g.initialize(repeating: 0, count: n)
        ActivationMemory.add(floats: n)
        grad = g; gradCapacity = n
    }

    /// Sets the shape, growing owned storage only when needed. Values are kept only if no growth.
    /// Lent storage is dropped here and must be lent again (by the arena) before use.
    public func plan(_ newShape: Shape, needsGrad: Bool) {
        let n = max(newShape.count, 1)
        if valueLent {
            if capacity > 0 { releaseValue() }
        } else if n > capacity {
            releaseValue()
            value = .allocate(capacity: n)
            value.initialize(repeating: 0, count: n)
            ActivationMemory.add(floats: n)
            capacity = n
        }
        if needsGrad && gradLent { releaseGrad(); grad = nil }
        else if needsGrad { ensureGrad(max(n, capacity)) } else { releaseGrad(); grad = nil }
        shape = newShape
    }

    /// Marks the storage as lent (true) or owned (false); takes effect at the next `plan`.
    func setLent(value v: Bool, grad g: Bool) { valueLent = v; gradLent = g }

    /// Points the values at `p` (>= shape.count floats, owned by an arena). Only for `valueLent`.
    func lendValue(_ p: UnsafeMutablePointer<Float>) {
        precondition(valueLent && capacity == 0, "Tensor.lendValue on owned storage")
        value = p
    }
    /// Points the gradient at `p` (>= shape.count floats, owned by an arena). Only for `gradLent`.
    func lendGrad(_ p: UnsafeMutablePointer<Float>) {
        precondition(gradLent && gradCapacity == 0, "Tensor.lendGrad on owned storage")
        grad = p
    }

    /// Zeroes the gradient (if any) over the current shape. A lent gradient is zeroed by its
    /// arena's owner just before the backward pass that uses it (it is shared), so not here.
    public func zeroGrad() { if !gradLent { grad?.update(repeating: 0, count: shape.count) } }

    /// Copies values from an (N, C, H, W) image batch into this tensor's (C, N, H, W) layout.
    public func loadNCHW(_ src: UnsafePointer<Float>) {
        let s = shape, p = s.plane
        for n in 0..<s.n { for c in 0..<s.c {
            (value + (c * s.n + n) * p).update(from: src + (n * s.c + c) * p, count: p)
        } }
    }

    /// Copies this tensor's values out in (N, C, H, W) order.
    public func storeNCHW(_ dst: UnsafeMutablePointer<Float>) {
        let s = shape, p = s.plane
        for n in 0..<s.n { for c in 0..<s.c {
            (dst + (n * s.c + c) * p).update(from: value + (c * s.n + n) * p, count: p)
        } }
    }
}

/// Scratch memory shared by the layers of one network (e.g. im2col columns): layers reserve
/// their need while planning and use `pointer` during forward/backward, never concurrently.
public final class Scratch {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int
    public init() { capacity = 1; pointer = .allocate(capacity: 1); ActivationMemory.add(floats: 1) }
    deinit { pointer.deallocate(); ActivationMemory.add(floats: -capacity) }
    /// Ensures at least `count` floats. Call only while planning.
    public func reserve(_ count: Int) {
        guard count > capacity else { return }
        pointer.deallocate()
        ActivationMemory.add(floats: count - capacity)
        pointer = .allocate(capacity: count)
        capacity = count
    }
}

/// One allocation from which a network lends tensor storage to tensors whose lifetimes do not
/// overlap (see `FaceNet.plan`). Grows while planning; contents are not preserved.
final class Arena {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int
    init() { capacity = 0; pointer = .allocate(capacity: 1) }
    deinit { pointer.deallocate(); ActivationMemory.add(floats: -capacity) }
    /// Ensures at least `count` floats (zero-filled when it grows). Call only while planning.
    func reserve(_ count: Int) {
        guard count > capacity else { return }
        pointer.deallocate()
        ActivationMemory.add(floats: count - capacity)
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
        capacity = count
    }
}

/// Consecutive slots of one arena region; each starts on a 64-byte boundary.
struct ArenaLayout {
    private(set) var size = 0
    /// Reserves `count` floats; returns the slot's offset in floats.
    mutating func slot(_ count: Int) -> Int {
        let o = size
        size += (count + 15) & ~15
        return o
    }
}
