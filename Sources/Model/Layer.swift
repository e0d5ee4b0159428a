// The layer contract (llm.c style, as Swift objects over flat buffers).
//
// - `plan` is called whenever the input shape may have changed (once per batch shape); it sizes
//   the layer's own output tensor and saved buffers, and reserves shared scratch. Nothing in
//   forward or backward allocates.
// - `forward` computes `output` from `x`; with `training: true` it saves what backward needs and
//   zeroes `output.grad`, so gradients can accumulate into it.
// - `backward` reads `output.grad` and ADDS dL/dx into `x.grad` (when x has one) and dL/dθ into
//   the store's `grads`, so residual branches and shared inputs sum for free.
// - Training vs inference is an argument, never hidden state.

public protocol Layer: AnyObject {
    /// The layer's output tensor, valid after `forward`.
    var output: Tensor { get }
    /// Sizes buffers for input shape `input`; returns the output shape. `needsGrad` says whether
    /// gradients will flow (false for a frozen teacher: no grad buffers are allocated).
    @discardableResult
    func plan(_ input: Shape, needsGrad: Bool) -> Shape
    func forward(_ x: Tensor, training: Bool)
    func backward(_ x: Tensor)
}
