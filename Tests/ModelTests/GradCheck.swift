// Finite-difference gradient checking shared by the layer and loss tests.
import XCTest
import Model

/// Deterministic test values.
struct TestRNG {
    var g: SplitMix64
    init(_ seed: UInt64) { g = SplitMix64(seed: seed) }
    mutating func uniform(_ lo: Float = -1, _ hi: Float = 1) -> Float { lo + (hi - lo) * Float(g.nextUnit()) }
    mutating func fill(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ lo: Float = -1, _ hi: Float = 1) {
        for i in 0..<n { p[i] = uniform(lo, hi) }
    }
}

/// One mismatch between analytic and numeric gradients.
struct GradMismatch: CustomStringConvertible {
    let what: String, index: Int, analytic: Double, numeric: Double
    var description: String { "\(what)[\(index)]: analytic \(analytic) numeric \(numeric)" }
}

/// Compares analytic gradients with central differences of a scalar function.
/// `value()` recomputes the loss from the current inputs; `pointer` is perturbed in place.
/// Checks at most `samples` indices (spread evenly) of a buffer of `count` floats.
func numericCheck(_ what: String, pointer: UnsafeMutablePointer<Float>, analytic: UnsafePointer<Float>,
                  count: Int, samples: Int = 48, eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2,
                  value: () -> Double) -> [GradMismatch] {
    var bad: [GradMismatch] = []
    let step = max(1, count / samples)
    var i = 0
    while i < count {
        let saved = pointer[i]
        pointer[i] = saved + eps; let lp = value()
        pointer[i] = saved - eps; let lm = value()
        pointer[i] = saved
        let num = (lp - lm) / (2 * Double(eps))
        let ana = Double(analytic[i])
        if abs(num - ana) > atol + rtol * max(abs(num), abs(ana)) {
            bad.append(GradMismatch(what: what, index: i, analytic: ana, numeric: num))
        }
        i += step
    }
    return bad
}

/// Gradient check of a layer under L = sum(output * r) for a fixed random r: checks dL/dx and
/// dL/dθ for every trainable entry of `store`. `prepareInput` may reshape the random input
/// (e.g. keep ReLU inputs away from the kink). The failure message names `label`.
func checkLayer(_ layer: Layer, store: ParamStore, input shape: Shape, label: String, seed: UInt64 = 1,
                eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2,
                prepareInput: ((UnsafeMutablePointer<Float>, Int) -> Void)? = nil,
                file: StaticString = #filePath, line: UInt = #line) {
    var rng = TestRNG(seed)
    let x = Tensor(shape, needsGrad: true)
    x.plan(shape, needsGrad: true)
    rng.fill(x.value, shape.count)
    prepareInput?(x.value, shape.count)
    let out = layer.plan(shape, needsGrad: true)
    var r = [Float](repeating: 0, count: out.count)
    for i in r.indices { r[i] = rng.uniform() }
    func loss() -> Double {
        layer.forward(x, training: true)
        var acc = 0.0
        for i in 0..<out.count { acc += Double(layer.output.value[i]) * Double(r[i]) }
        return acc
    }
    _ = loss()
    r.withUnsafeBufferPointer { layer.output.grad!.update(from: $0.baseAddress!, count: out.count) }
    x.zeroGrad(); store.zeroGrad()
    layer.backward(x)
    let dx = Array(UnsafeBufferPointer(start: x.grad!, count: shape.count))
    let dp = Array(UnsafeBufferPointer(start: store.grads, count: store.paramCount))
    var bad = dx.withUnsafeBufferPointer {
        numericCheck("input", pointer: x.value, analytic: $0.baseAddress!, count: shape.count,
                     eps: eps, atol: atol, rtol: rtol, value: loss)
    }
    for e in store.entries where e.region == .param {
        bad += dp.withUnsafeBufferPointer {
            numericCheck(e.name, pointer: store.params + e.offset, analytic: $0.baseAddress! + e.offset,
                         count: e.count, eps: eps, atol: atol, rtol: rtol, value: loss)
        }
    }
    if !bad.isEmpty {
        XCTFail("\(label): \(bad.count) gradient mismatches, first: \(bad.prefix(4).map(\.description))",
                file: file, line: line)
    }
}
