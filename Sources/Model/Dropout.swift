// Inverted dropout: training y = x * mask, mask[i] = (u_i >= p) / (1 - p); inference y = x.
//
// The mask is a pure function of (seed, step, element index): u_i comes from SplitMix64 seeded
// with a hash of (seed, step, i / 64-block). `seed(step:)` selects the step, so a run is
// reproducible and resumable from a checkpointed step; every training forward then advances
// `step` by one. Give each replica its own `seed` (e.g. base seed ^ rank) so masks differ.
// backward uses the mask saved by the last training forward: dx += dy * mask.
import CKernels
import KDCore

public final class Dropout: Layer {
    public let p: Float
    public let output = Tensor()
    /// Base seed of the mask stream.
    public var seed: UInt64
    /// The step whose mask the next training forward draws (advanced by 1 after each).
    public private(set) var step: UInt64 = 0
    private var mask = Tensor()                 // (shape) 0 or 1/(1-p), saved for backward
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    private var maskIsValid = false

    /// - Precondition: 0 <= p < 1.
    public init(p: Float, seed: UInt64 = 0) {
        precondition(p >= 0 && p < 1, "Dropout: p \(p) must be in [0, 1)")
        self.p = p; self.seed = seed
    }

    /// Makes the next training forward draw the mask of `step` (e.g. the global step, to
    /// resume reproducibly, or a fixed value before each forward to freeze the mask).
    public func seed(step: UInt64) { self.step = step }

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        inShape = input
        output.plan(input, needsGrad: needsGrad)
        mask.plan(input, needsGrad: false)
        maskIsValid = false
        return input
    }

    private func drawMask() {
        let n = inShape.count, m = mask.value
        let keep = 1 / (1 - p), threshold = Double(p)
        let base = seed ^ (step &* 0x9e37_79b9_7f4a_7c15)
        var i = 0
        while i < n {
            var g = SplitMix64(seed: base ^ (UInt64(i / 64) &* 0xd1b5_4a32_d192_ed03))
            let end = min(i + 64, n)
            while i < end { m[i] = g.nextUnit() >= threshold ? keep : 0; i += 1 }
        }
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "Dropout: forward on \(x.shape) but planned for \(inShape)")
        let n = inShape.count
        if training && p > 0 {
            drawMask()
            step &+= 1
            maskIsValid = true
            kd_mul_mask(output.value, x.value, mask.value, n, 0)
        } else {
            output.value.update(from: x.value, count: n)
            maskIsValid = false
        }
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "Dropout: backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("Dropout: backward without grad") }
        guard let dx = x.grad else { return }
        if maskIsValid { kd_mul_mask(dx, dy, mask.value, inShape.count, 1) }
        else { kd_accumulate(dx, dy, inShape.count) }
    }
}
