// Finite-difference gradient checking shared by the layer and loss tests.
import XCTest
import Model
import KDCore

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
    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= atol + rtol * max(abs(a), abs(b)) }
    var i = 0
    while i < count {
        let saved = pointer[i]
        pointer[i] = saved + eps; let lp = value()
        pointer[i] = saved - eps; let lm = value()
        pointer[i] = saved
        let num = (lp - lm) / (2 * Double(eps))
        let ana = Double(analytic[i])
        if !close(num, ana) {
            // A kink (ReLU at 0, a max switching its argmax) inside [x - eps, x + eps] breaks the
            // central difference. There the analytic gradient must still equal the one-sided
            // derivative on the side without the kink: retry with a 10x smaller step and accept
            // agreement with either one-sided difference.
            let e2 = eps / 10
            let l0 = value()
            pointer[i] = saved + e2; let lp2 = value()
            pointer[i] = saved - e2; let lm2 = value()
            pointer[i] = saved
            _ = value()
            let right = (lp2 - l0) / Double(e2), left = (l0 - lm2) / Double(e2)
            let central2 = (lp2 - lm2) / (2 * Double(e2))
            if !(close(central2, ana) || close(right, ana) || close(left, ana)) {
                bad.append(GradMismatch(what: what, index: i, analytic: ana, numeric: num))
            }
        }
        i += step
    }
    return bad
}

/// Gradient check of a layer under L = sum(output * r) for a fixed random r: checks dL/dx and
/// dL/dθ for every trainable entry of `store`. `prepareInput` may reshape the random input
/// (e.g. keep ReLU inputs away from the kink). The failure message names `label`.
/// Backward must ACCUMULATE: x.grad and store.grads are pre-filled with random values and the
/// analytic gradient is what backward added. `beforeForward` runs before every forward (e.g. to
/// freeze a dropout mask); `checkBuffersUntouched` fails if the store's buffer region changes.
func checkLayer(_ layer: Layer, store: ParamStore, input shape: Shape, label: String, seed: UInt64 = 1,
                eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2,
                prepareInput: ((UnsafeMutablePointer<Float>, Int) -> Void)? = nil,
                beforeForward: (() -> Void)? = nil, checkBuffersUntouched: Bool = false,
                file: StaticString = #filePath, line: UInt = #line) {
    var rng = TestRNG(seed)
    let x = Tensor(shape, needsGrad: true)
    x.plan(shape, needsGrad: true)
    rng.fill(x.value, shape.count)
    prepareInput?(x.value, shape.count)
    let out = layer.plan(shape, needsGrad: true)
    XCTAssertEqual(layer.output.shape, out, "\(label): output shape differs from plan's", file: file, line: line)
    var r = [Float](repeating: 0, count: out.count)
    for i in r.indices { r[i] = rng.uniform() }
    let buffersBefore = Array(UnsafeBufferPointer(start: store.buffers, count: store.bufferCount))
    func loss() -> Double {
        beforeForward?()
        layer.forward(x, training: true)
        var acc = 0.0
        for i in 0..<out.count { acc += Double(layer.output.value[i]) * Double(r[i]) }
        return acc
    }
    _ = loss()
    r.withUnsafeBufferPointer { layer.output.grad!.update(from: $0.baseAddress!, count: out.count) }
    // Pre-fill gradients so that a backward that overwrites instead of adding fails.
    let dx0 = (0..<shape.count).map { _ in rng.uniform() }
    let dp0 = (0..<store.paramCount).map { _ in rng.uniform() }
    for i in 0..<shape.count { x.grad![i] = dx0[i] }
    if store.hasGradients { for i in 0..<store.paramCount { store.grads[i] = dp0[i] } }
    layer.backward(x)
    let dx = (0..<shape.count).map { x.grad![$0] - dx0[$0] }
    let dp = store.hasGradients ? (0..<store.paramCount).map { store.grads[$0] - dp0[$0] } : []
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
    if checkBuffersUntouched {
        let after = Array(UnsafeBufferPointer(start: store.buffers, count: store.bufferCount))
        XCTAssertEqual(after, buffersBefore, "\(label): buffers changed", file: file, line: line)
    }
}

/// Gradient check of a two-input op (Add, ChannelScale, SpatialScale) under L = sum(output * r):
/// `forward(a, b)` computes `output` (training), `backward(a, b)` must ADD into a.grad and b.grad.
func checkTwoInput(output: Tensor, a sa: Shape, b sb: Shape, label: String, seed: UInt64 = 1,
                   eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2,
                   forward: (Tensor, Tensor) -> Void, backward: (Tensor, Tensor) -> Void,
                   file: StaticString = #filePath, line: UInt = #line) {
    var rng = TestRNG(seed)
    let a = Tensor(sa, needsGrad: true), b = Tensor(sb, needsGrad: true)
    rng.fill(a.value, sa.count); rng.fill(b.value, sb.count)
    forward(a, b)
    let n = output.shape.count
    let r = (0..<n).map { _ in rng.uniform() }
    func loss() -> Double {
        forward(a, b)
        var acc = 0.0
        for i in 0..<n { acc += Double(output.value[i]) * Double(r[i]) }
        return acc
    }
    _ = loss()
    for i in 0..<n { output.grad![i] = r[i] }
    let da0 = (0..<sa.count).map { _ in rng.uniform() }, db0 = (0..<sb.count).map { _ in rng.uniform() }
    for i in 0..<sa.count { a.grad![i] = da0[i] }
    for i in 0..<sb.count { b.grad![i] = db0[i] }
    backward(a, b)
    let da = (0..<sa.count).map { a.grad![$0] - da0[$0] }, db = (0..<sb.count).map { b.grad![$0] - db0[$0] }
    var bad = da.withUnsafeBufferPointer {
        numericCheck("a", pointer: a.value, analytic: $0.baseAddress!, count: sa.count,
                     eps: eps, atol: atol, rtol: rtol, value: loss)
    }
    bad += db.withUnsafeBufferPointer {
        numericCheck("b", pointer: b.value, analytic: $0.baseAddress!, count: sb.count,
                     eps: eps, atol: atol, rtol: rtol, value: loss)
    }
    if !bad.isEmpty {
        XCTFail("\(label): \(bad.count) gradient mismatches, first: \(bad.prefix(4).map(\.description))",
                file: file, line: line)
    }
}

/// Replaces the n values by distinct values spaced 0.05 apart in a random order (centred on 0,
/// offset by 0.025 so none is 0): no ties or kinks within a finite-difference step of 1e-2.
func makeDistinct(_ p: UnsafeMutablePointer<Float>, _ n: Int, seed: UInt64 = 99) {
    var order = Array(0..<n)
    var g = SplitMix64(seed: seed)
    order.shuffle(using: &g)
    for i in 0..<n { p[i] = (Float(order[i]) - Float(n / 2)) * 0.05 + 0.025 }
}

/// Keeps values at least `margin` away from 0 (for ReLU/PReLU kinks).
func awayFromZero(_ p: UnsafeMutablePointer<Float>, _ n: Int, margin: Float = 0.05) {
    for i in 0..<n { p[i] = p[i] >= 0 ? p[i] + margin : p[i] - margin }
}

/// Max |a - b| over n values.
func maxAbsDiff(_ a: UnsafePointer<Float>, _ b: [Float]) -> Float {
    var m: Float = 0
    for i in b.indices { m = max(m, abs(a[i] - b[i])) }
    return m
}
