// Flatten: (C, N, H, W) -> (C*H*W, N, 1, 1) feature-major vectors, feature index c*H*W + h*W + w
// (PyTorch's x.flatten(1) order). Per channel it is a transpose (N, H*W) -> (H*W, N):
//   y[(c*P + p)*N + n] = x[(c*N + n)*P + p],  P = H*W;  backward is the inverse, accumulated.
import CKernels

public final class Flatten: Layer {
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    public init() {}

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        let o = Shape(n: input.n, c: input.c * input.plane, h: 1, w: 1)
        output.plan(o, needsGrad: needsGrad)
        return o
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "Flatten: forward on \(x.shape) but planned for \(inShape)")
        kd_flatten_forward(output.value, x.value, Int32(inShape.c), Int32(inShape.n), inShape.plane)
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "Flatten: backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("Flatten: backward without grad") }
        guard let dx = x.grad else { return }
        kd_flatten_backward(dx, dy, Int32(inShape.c), Int32(inShape.n), inShape.plane)
    }
}
