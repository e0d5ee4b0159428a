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

/// A planned activation: values and (optionally) gradients of one shape. Storage is allocated
/// when the shape grows and reused otherwise, so the steady-state step allocates nothing.
public final class Tensor {
    public private(set) var shape: Shape
    /// Values, `shape.count` floats, CNHW.
    public private(set) var value: UnsafeMutablePointer<Float>
    /// dLoss/dValue in the same layout, or nil when no gradient flows here.
    public private(set) var grad: UnsafeMutablePointer<Float>?
    private var capacity: Int
    private var gradCapacity = 0

    public init(_ shape: Shape = Shape(n: 0, c: 0, h: 0, w: 0), needsGrad: Bool = false) {
        self.shape = shape
        capacity = max(shape.count, 1)
        value = .allocate(capacity: capacity)
        value.initialize(repeating: 0, count: capacity)
        grad = nil
        if needsGrad { ensureGrad(capacity) }
    }

    deinit { value.deallocate(); grad?.deallocate() }

    private func ensureGrad(_ n: Int) {
        if gradCapacity >= n, grad != nil { return }
        grad?.deallocate()
        let g = UnsafeMutablePointer<Float>.allocate(capacity: n)
        g.initialize(repeating: 0, count: n)
        grad = g; gradCapacity = n
    }

    /// Sets the shape, growing storage only when needed. Values are kept only if no growth.
    public func plan(_ newShape: Shape, needsGrad: Bool) {
        let n = max(newShape.count, 1)
        if n > capacity {
            value.deallocate()
            value = .allocate(capacity: n)
            value.initialize(repeating: 0, count: n)
            capacity = n
        }
        if needsGrad { ensureGrad(max(n, capacity)) } else { grad?.deallocate(); grad = nil; gradCapacity = 0 }
        shape = newShape
    }

    /// Zeroes the gradient (if any) over the current shape.
    public func zeroGrad() { grad?.update(repeating: 0, count: shape.count) }

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
    public init() { capacity = 1; pointer = .allocate(capacity: 1) }
    deinit { pointer.deallocate() }
    /// Ensures at least `count` floats. Call only while planning.
    public func reserve(_ count: Int) {
        guard count > capacity else { return }
        pointer.deallocate()
        pointer = .allocate(capacity: count)
        capacity = count
    }
}
