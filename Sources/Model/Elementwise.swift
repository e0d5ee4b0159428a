// Two-input elementwise ops for residual blocks and CBAM, and CBAM's channel pool.
//
// Legend: C channels, N batch, H x W plane, P = H*W. All CNHW.
//   Add           y = a + b                       (same shape)
//   ChannelScale  y[c,n,p] = x[c,n,p] * s[c,n]    s (C, N, 1, 1), e.g. sigmoid of channel attention
//   SpatialScale  y[c,n,p] = x[c,n,p] * m[n,p]    m (1, N, H, W), e.g. sigmoid of spatial attention
//   ChannelPool   (C, N, H, W) -> (2, N, H, W): channel 0 = max over c, channel 1 = mean over c
//                 (the order of CBAM's reference ChannelPool: torch.cat((max, mean), dim=1))
// The two-input ops follow the Layer contract with two inputs: plan once per shape, forward
// (training: saves nothing extra, zeroes output.grad), backward ADDS into each input's grad
// that is non-nil. They are not `Layer`s because `Layer.forward` takes one input.
import CKernels

/// y = a + b. Backward: da += dy, db += dy.
public final class Add {
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    public init() {}

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        output.plan(input, needsGrad: needsGrad)
        return input
    }

    public func forward(_ a: Tensor, _ b: Tensor, training: Bool) {
        precondition(a.shape == inShape && b.shape == inShape,
                     "Add: forward on \(a.shape) + \(b.shape) but planned for \(inShape)")
        kd_add(output.value, a.value, b.value, inShape.count)
        if training { output.zeroGrad() }
    }

    public func backward(_ a: Tensor, _ b: Tensor) {
        precondition(a.shape == inShape && b.shape == inShape,
                     "Add: backward on \(a.shape) + \(b.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("Add: backward without grad") }
        if let da = a.grad { kd_accumulate(da, dy, inShape.count) }
        if let db = b.grad { kd_accumulate(db, dy, inShape.count) }
    }
}

/// y[c,n,:] = x[c,n,:] * s[c,n] for x (C, N, H, W), s (C, N, 1, 1).
/// Backward: dx += dy * s; ds[c,n] += sum_p dy[c,n,p] * x[c,n,p].
public final class ChannelScale {
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    public init() {}

    /// `input` is x's shape; the scale must be (C, N, 1, 1).
    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        output.plan(input, needsGrad: needsGrad)
        return input
    }

    private func check(_ x: Tensor, _ s: Tensor, _ what: String) {
        precondition(x.shape == inShape, "ChannelScale: \(what) on x \(x.shape) but planned for \(inShape)")
        precondition(s.shape == Shape(n: inShape.n, c: inShape.c, h: 1, w: 1),
                     "ChannelScale: scale \(s.shape) is not (\(inShape.c), \(inShape.n), 1, 1)")
    }

    public func forward(_ x: Tensor, _ s: Tensor, training: Bool) {
        check(x, s, "forward")
        kd_channel_scale_forward(output.value, x.value, s.value, inShape.c * inShape.n, inShape.plane)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor, _ s: Tensor) {
        check(x, s, "backward")
        guard let dy = output.grad else { preconditionFailure("ChannelScale: backward without grad") }
        if x.grad == nil && s.grad == nil { return }
        kd_channel_scale_backward(x.grad, s.grad, dy, x.value, s.value, inShape.c * inShape.n, inShape.plane)
    }
}

/// y[c,n,p] = x[c,n,p] * m[n,p] for x (C, N, H, W), m (1, N, H, W).
/// Backward: dx += dy * m; dm[n,p] += sum_c dy[c,n,p] * x[c,n,p].
public final class SpatialScale {
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    public init() {}

    /// `input` is x's shape; the map must be (1, N, H, W).
    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        output.plan(input, needsGrad: needsGrad)
        return input
    }

    private func check(_ x: Tensor, _ m: Tensor, _ what: String) {
        precondition(x.shape == inShape, "SpatialScale: \(what) on x \(x.shape) but planned for \(inShape)")
        precondition(m.shape == Shape(n: inShape.n, c: 1, h: inShape.h, w: inShape.w),
                     "SpatialScale: map \(m.shape) is not (1, \(inShape.n), \(inShape.h), \(inShape.w))")
    }

    public func forward(_ x: Tensor, _ m: Tensor, training: Bool) {
        check(x, m, "forward")
        kd_spatial_scale_forward(output.value, x.value, m.value, Int32(inShape.c), Int32(inShape.n), inShape.plane)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor, _ m: Tensor) {
        check(x, m, "backward")
        guard let dy = output.grad else { preconditionFailure("SpatialScale: backward without grad") }
        if x.grad == nil && m.grad == nil { return }
        kd_spatial_scale_backward(x.grad, m.grad, dy, x.value, m.value, Int32(inShape.c), Int32(inShape.n),
                                  inShape.plane)
    }
}

/// CBAM's channel pool: (C, N, H, W) -> (2, N, H, W), output channel 0 = max over c (the first
/// maximal channel gets the gradient), channel 1 = mean over c.
public final class ChannelPool: Layer {
    public let output = Tensor()
    private let argmax = IndexBuffer()     // (N, H, W) channel index of the max
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    public init() {}

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        let o = Shape(n: input.n, c: 2, h: input.h, w: input.w)
        output.plan(o, needsGrad: needsGrad)
        argmax.reserve(input.n * input.plane)
        return o
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "ChannelPool: forward on \(x.shape) but planned for \(inShape)")
        kd_channel_pool_forward(output.value, argmax.pointer, x.value, Int32(inShape.c), Int32(inShape.n),
                                inShape.plane)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "ChannelPool: backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("ChannelPool: backward without grad") }
        guard let dx = x.grad else { return }
        kd_channel_pool_backward(dx, dy, argmax.pointer, Int32(inShape.c), Int32(inShape.n), inShape.plane)
    }
}
