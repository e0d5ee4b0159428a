// Pooling: MaxPool2d, AvgPool2d (window K, stride S, padding P, floor mode as PyTorch's
// default), GlobalAvgPool and GlobalMaxPool (-> (C, N, 1, 1)).
//
// Legend: C channels, N batch, H x W input, Ho x Wo output, Ho = (H + 2P - K)/S + 1.
// Every (c, n) plane is pooled independently; argmax indices (offsets within the H x W input
// plane) are saved for the max pools' backward.
import CKernels

/// Growable Int32 storage for saved indices (allocated while planning only).
final class IndexBuffer {
    private(set) var pointer: UnsafeMutablePointer<Int32>
    private var capacity = 1
    init() { pointer = .allocate(capacity: 1); pointer.initialize(to: 0) }
    deinit { pointer.deallocate() }
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        pointer.deallocate()
        pointer = .allocate(capacity: n); pointer.initialize(repeating: 0, count: n)
        capacity = n
    }
}

/// Max pooling over K x K windows with implicit -inf padding (PyTorch MaxPool2d, ceil_mode
/// false). The first maximum in row-major window order wins ties and receives the gradient.
public final class MaxPool2d: Layer {
    public let kernel: Int, stride: Int, padding: Int
    public let output = Tensor()
    private let argmax = IndexBuffer()     // (C, N, Ho, Wo) offsets into each input plane
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)

    /// - Precondition: kernel >= 1, stride >= 1, 0 <= padding <= kernel/2 (as PyTorch).
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        let s = stride ?? kernel
        precondition(kernel >= 1 && s >= 1, "MaxPool2d: kernel \(kernel) and stride \(s) must be >= 1")
        precondition(padding >= 0 && padding <= kernel / 2,
                     "MaxPool2d: padding \(padding) must be in 0...kernel/2 (kernel \(kernel))")
        self.kernel = kernel; self.stride = s; self.padding = padding
    }

    public func outputShape(_ s: Shape) -> Shape {
        Shape(n: s.n, c: s.c, h: (s.h + 2 * padding - kernel) / stride + 1, w: (s.w + 2 * padding - kernel) / stride + 1)
    }

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        precondition(input.h + 2 * padding >= kernel && input.w + 2 * padding >= kernel,
                     "MaxPool2d: input \(input.h)x\(input.w) smaller than kernel \(kernel) with padding \(padding)")
        inShape = input
        let o = outputShape(input)
        output.plan(o, needsGrad: needsGrad)
        argmax.reserve(o.count)
        return o
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "MaxPool2d: forward on \(x.shape) but planned for \(inShape)")
        let s = inShape, o = output.shape
        kd_maxpool_forward(output.value, argmax.pointer, x.value, s.c * s.n, Int32(s.h), Int32(s.w),
                           Int32(kernel), Int32(stride), Int32(padding), Int32(o.h), Int32(o.w))
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "MaxPool2d: backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("MaxPool2d: backward without grad") }
        guard let dx = x.grad else { return }
        let s = inShape, o = output.shape
        kd_maxpool_backward(dx, dy, argmax.pointer, s.c * s.n, Int32(s.h), Int32(s.w), Int32(o.h), Int32(o.w))
    }
}

/// Average pooling over K x K windows with zero padding (PyTorch AvgPool2d, ceil_mode false).
/// `countIncludePad` true (PyTorch's default) divides by K*K; false by the number of input pixels
/// in the window.
public final class AvgPool2d: Layer {
    public let kernel: Int, stride: Int, padding: Int, countIncludePad: Bool
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)

    /// - Precondition: kernel >= 1, stride >= 1, 0 <= padding <= kernel/2 (as PyTorch).
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) {
        let s = stride ?? kernel
        precondition(kernel >= 1 && s >= 1, "AvgPool2d: kernel \(kernel) and stride \(s) must be >= 1")
        precondition(padding >= 0 && padding <= kernel / 2,
                     "AvgPool2d: padding \(padding) must be in 0...kernel/2 (kernel \(kernel))")
        self.kernel = kernel; self.stride = s; self.padding = padding; self.countIncludePad = countIncludePad
    }

    public func outputShape(_ s: Shape) -> Shape {
        Shape(n: s.n, c: s.c, h: (s.h + 2 * padding - kernel) / stride + 1, w: (s.w + 2 * padding - kernel) / stride + 1)
    }

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        precondition(input.h + 2 * padding >= kernel && input.w + 2 * padding >= kernel,
                     "AvgPool2d: input \(input.h)x\(input.w) smaller than kernel \(kernel) with padding \(padding)")
        inShape = input
        let o = outputShape(input)
        output.plan(o, needsGrad: needsGrad)
        return o
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "AvgPool2d: forward on \(x.shape) but planned for \(inShape)")
        let s = inShape, o = output.shape
        kd_avgpool_forward(output.value, x.value, s.c * s.n, Int32(s.h), Int32(s.w), Int32(kernel), Int32(stride),
                           Int32(padding), Int32(o.h), Int32(o.w), countIncludePad ? 1 : 0)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "AvgPool2d: backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("AvgPool2d: backward without grad") }
        guard let dx = x.grad else { return }
        let s = inShape, o = output.shape
        kd_avgpool_backward(dx, dy, s.c * s.n, Int32(s.h), Int32(s.w), Int32(kernel), Int32(stride),
                            Int32(padding), Int32(o.h), Int32(o.w), countIncludePad ? 1 : 0)
    }
}

/// Mean over each H x W plane: (C, N, H, W) -> (C, N, 1, 1), i.e. feature-major (C, N) vectors.
public final class GlobalAvgPool: Layer {
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    public init() {}

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        let o = Shape(n: input.n, c: input.c, h: 1, w: 1)
        output.plan(o, needsGrad: needsGrad)
        return o
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "GlobalAvgPool: forward on \(x.shape) but planned for \(inShape)")
        kd_global_avgpool_forward(output.value, x.value, inShape.c * inShape.n, inShape.plane)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "GlobalAvgPool: backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("GlobalAvgPool: backward without grad") }
        guard let dx = x.grad else { return }
        kd_global_avgpool_backward(dx, dy, inShape.c * inShape.n, inShape.plane)
    }
}

/// Max over each H x W plane: (C, N, H, W) -> (C, N, 1, 1) (CBAM channel attention's max
/// branch). The first maximum receives the gradient.
public final class GlobalMaxPool: Layer {
    public let output = Tensor()
    private let argmax = IndexBuffer()     // (C, N) offsets into each plane
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    public init() {}

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        let o = Shape(n: input.n, c: input.c, h: 1, w: 1)
        output.plan(o, needsGrad: needsGrad)
        argmax.reserve(o.count)
        return o
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "GlobalMaxPool: forward on \(x.shape) but planned for \(inShape)")
        kd_global_maxpool_forward(output.value, argmax.pointer, x.value, inShape.c * inShape.n, inShape.plane)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "GlobalMaxPool: backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("GlobalMaxPool: backward without grad") }
        guard let dx = x.grad else { return }
        kd_global_maxpool_backward(dx, dy, argmax.pointer, inShape.c * inShape.n, inShape.plane)
    }
}
