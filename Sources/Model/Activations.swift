// Elementwise activations: ReLU, PReLU (per-channel slope), Sigmoid.
//
// Legend: C channels, N batch, M = N*H*W values per channel; any CNHW shape, including
// feature-major vectors (F, N, 1, 1).
// Each writes a separate output tensor (no in-place variant): backward of ReLU and Sigmoid reads
// the saved output, PReLU reads the input x passed to backward.
import CKernels

/// y = max(x, 0). Backward: dx += dy where y > 0 (the subgradient at 0 is 0, as PyTorch).
public final class ReLU: Layer {
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    public init() {}

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        output.plan(input, needsGrad: needsGrad)
        return input
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "ReLU: forward on \(x.shape) but planned for \(inShape)")
        kd_relu_forward(output.value, x.value, inShape.count)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "ReLU: backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("ReLU: backward without grad") }
        guard let dx = x.grad else { return }
        kd_relu_backward(dx, dy, output.value, inShape.count)
    }
}

/// y = 1 / (1 + exp(-x)). Backward: dx += dy * y * (1 - y).
public final class Sigmoid: Layer {
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    public init() {}

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        output.plan(input, needsGrad: needsGrad)
        return input
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "Sigmoid: forward on \(x.shape) but planned for \(inShape)")
        kd_sigmoid_forward(output.value, x.value, inShape.count)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "Sigmoid: backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("Sigmoid: backward without grad") }
        guard let dx = x.grad else { return }
        kd_sigmoid_backward(dx, dy, output.value, inShape.count)
    }
}

/// y = x > 0 ? x : a[c] * x with a learnable slope per channel (PyTorch PReLU(num_parameters=C)).
/// Backward: dx += dy * (x > 0 ? 1 : a[c]); da[c] += sum over x <= 0 of dy * x.
public final class PReLU: Layer {
    public let channels: Int
    public let store: ParamStore
    public let name: String
    /// Offset into store.params of the slope (C), init 0.25, decay: false.
    public let slopeOffset: Int
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)

    /// Registers `name.weight` (the slopes, as PyTorch names them).
    public init(_ store: ParamStore, name: String, channels: Int, initialSlope: Float = 0.25) {
        precondition(channels > 0, "PReLU \(name): channels must be positive, got \(channels)")
        self.channels = channels; self.store = store; self.name = name
        slopeOffset = store.register(name + ".weight", shape: [channels], initializer: .constant(initialSlope),
                                     decay: false)
    }

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        precondition(input.c == channels, "PReLU \(name): input has \(input.c) channels, expected \(channels)")
        inShape = input
        output.plan(input, needsGrad: needsGrad)
        return input
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "PReLU \(name): forward on \(x.shape) but planned for \(inShape)")
        kd_prelu_forward(output.value, x.value, store.params + slopeOffset, Int32(channels), inShape.n * inShape.plane)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "PReLU \(name): backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("PReLU \(name): backward without grad") }
        let ds = store.hasGradients ? store.grads + slopeOffset : nil
        if x.grad == nil && ds == nil { return }
        kd_prelu_backward(x.grad, ds, dy, x.value, store.params + slopeOffset, Int32(channels),
                          inShape.n * inShape.plane)
    }
}
