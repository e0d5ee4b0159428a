// Fully connected layer on feature-major vectors.
//
// Legend: F input features, E output features, N batch. Input x (F, N, 1, 1), output y (E, N, 1, 1):
//   y (E, N) = W (E, F) x (F, N) + b (E)          one sgemm, no transposed copies
//   dW (E, F) += dy (E, N) x^T,  db += rowsum(dy),  dx (F, N) += W^T dy
// W is stored (E, F) row-major exactly as PyTorch's nn.Linear.weight.
// Init (PyTorch's nn.Linear default): W and b uniform in [-1/sqrt(F), 1/sqrt(F)].
import CKernels

public final class Linear: Layer {
    public let inFeatures: Int, outFeatures: Int
    public let store: ParamStore
    public let name: String
    /// Offsets into store.params: weight (E, F); bias (E) or nil (bias has decay: false).
    public let weightOffset: Int
    public let biasOffset: Int?
    public let output = Tensor()
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)

    /// Registers `name.weight` (E, F) and, with `bias`, `name.bias` (E).
    public init(_ store: ParamStore, name: String, inFeatures: Int, outFeatures: Int, bias: Bool = true) {
        precondition(inFeatures > 0 && outFeatures > 0,
                     "Linear \(name): features \(inFeatures)->\(outFeatures) must be positive")
        self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.store = store; self.name = name
        let bound = 1 / Float(inFeatures).squareRoot()
        weightOffset = store.register(name + ".weight", shape: [outFeatures, inFeatures],
                                      initializer: .uniform(bound: bound))
        biasOffset = bias ? store.register(name + ".bias", shape: [outFeatures], initializer: .uniform(bound: bound),
                                           decay: false) : nil
    }

    /// A second application of `other`'s parameters (e.g. CBAM's shared MLP applied to the avg
    /// and the max branch): registers nothing, has its own output; both instances ADD into the
    /// same gradient entries.
    public init(sharing other: Linear) {
        inFeatures = other.inFeatures; outFeatures = other.outFeatures; store = other.store
        name = other.name; weightOffset = other.weightOffset; biasOffset = other.biasOffset
    }

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        precondition(input.c == inFeatures && input.h == 1 && input.w == 1,
                     "Linear \(name): input \(input) is not (\(inFeatures), N, 1, 1)")
        inShape = input
        let o = Shape(n: input.n, c: outFeatures, h: 1, w: 1)
        output.plan(o, needsGrad: needsGrad)
        return o
    }

    public func forward(_ x: Tensor, training: Bool) {
        precondition(x.shape == inShape, "Linear \(name): forward on \(x.shape) but planned for \(inShape)")
        let n = inShape.n, y = output.value
        var beta: Float = 0
        if let bo = biasOffset {
            let b = store.params + bo
            for e in 0..<outFeatures { (y + e * n).update(repeating: b[e], count: n) }
            beta = 1
        }
        kd_sgemm(0, 0, Int32(outFeatures), Int32(n), Int32(inFeatures),
                    1, store.params + weightOffset, Int32(inFeatures), x.value, Int32(n), beta, y, Int32(n))
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        precondition(x.shape == inShape, "Linear \(name): backward on \(x.shape) but planned for \(inShape)")
        guard let dy = output.grad else { preconditionFailure("Linear \(name): backward without grad") }
        let n = inShape.n
        if store.hasGradients {
            kd_sgemm(0, 1, Int32(outFeatures), Int32(inFeatures), Int32(n),
                        1, dy, Int32(n), x.value, Int32(n), 1, store.grads + weightOffset, Int32(inFeatures))
            if let bo = biasOffset {
                let db = store.grads + bo
                for e in 0..<outFeatures {
                    let row = dy + e * n
                    var acc = 0.0
                    for i in 0..<n { acc += Double(row[i]) }
                    db[e] += Float(acc)
                }
            }
        }
        guard let dx = x.grad else { return }
        kd_sgemm(1, 0, Int32(inFeatures), Int32(n), Int32(outFeatures),
                    1, store.params + weightOffset, Int32(inFeatures), dy, Int32(n), 1, dx, Int32(n))
    }
}
