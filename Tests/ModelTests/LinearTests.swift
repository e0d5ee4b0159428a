// Linear: forward against loops and PyTorch's weight layout, gradients, shared parameters.
import XCTest
import Model

final class LinearTests: XCTestCase {
    /// (n, f, e, bias)
    let sweep: [(Int, Int, Int, Bool)] = [(1, 3, 2, true), (4, 5, 7, true), (3, 8, 1, false), (2, 1, 3, true)]

    func testForwardMatchesLoopsAndPyTorchLayout() {
        for (n, f, e, bias) in sweep {
            let label = "linear n\(n) f\(f) e\(e) bias\(bias)"
            let store = ParamStore()
            let lin = Linear(store, name: "fc", inFeatures: f, outFeatures: e, bias: bias)
            store.allocate(); store.initialize(seed: 2)
            XCTAssertEqual(store.entry(named: "fc.weight")?.shape, [e, f], label)
            let bound = 1 / Float(f).squareRoot()
            for i in 0..<(e * f) { XCTAssertLessThanOrEqual(abs(store.params[lin.weightOffset + i]), bound, label) }
            let s = Shape(n: n, c: f, h: 1, w: 1), x = Tensor(s)
            var rng = TestRNG(3); rng.fill(x.value, s.count)
            XCTAssertEqual(lin.plan(s, needsGrad: false), Shape(n: n, c: e, h: 1, w: 1), label)
            lin.forward(x, training: false)
            var ref: [Float] = []
            for o in 0..<e { for j in 0..<n {
                var acc = Double(lin.biasOffset.map { store.params[$0 + o] } ?? 0)
                for i in 0..<f { acc += Double(store.params[lin.weightOffset + o * f + i]) * Double(x.value[i * n + j]) }
                ref.append(Float(acc))
            } }
            XCTAssertLessThan(maxAbsDiff(lin.output.value, ref), 1e-5, label)
        }
    }

    func testGradientsMatchFiniteDifferences() {
        for (n, f, e, bias) in sweep {
            let store = ParamStore()
            let lin = Linear(store, name: "fc", inFeatures: f, outFeatures: e, bias: bias)
            store.allocate(); store.initialize(seed: 2)
            checkLayer(lin, store: store, input: Shape(n: n, c: f, h: 1, w: 1), label: "linear n\(n) f\(f) e\(e) bias\(bias)")
        }
    }

    func testSharedParametersAccumulateGradients() {
        let store = ParamStore()
        let a = Linear(store, name: "mlp", inFeatures: 4, outFeatures: 3)
        let b = Linear(sharing: a)
        store.allocate(); store.initialize(seed: 9)
        XCTAssertEqual(store.paramCount, 4 * 3 + 3, "sharing registers nothing")
        let s = Shape(n: 2, c: 4, h: 1, w: 1)
        let x1 = Tensor(s, needsGrad: true), x2 = Tensor(s, needsGrad: true)
        var rng = TestRNG(4); rng.fill(x1.value, s.count); rng.fill(x2.value, s.count)
        a.plan(s, needsGrad: true); b.plan(s, needsGrad: true)
        // Gradients of each application alone...
        func gradsOf(_ layer: Linear, _ x: Tensor) -> [Float] {
            store.zeroGrad(); layer.forward(x, training: true)
            for i in 0..<6 { layer.output.grad![i] = Float(i) - 2.5 }
            layer.backward(x)
            return Array(UnsafeBufferPointer(start: store.grads, count: store.paramCount))
        }
        let ga = gradsOf(a, x1), gb = gradsOf(b, x2)
        // ...add up when both run in one step.
        store.zeroGrad()
        a.forward(x1, training: true); b.forward(x2, training: true)
        for i in 0..<6 { a.output.grad![i] = Float(i) - 2.5; b.output.grad![i] = Float(i) - 2.5 }
        a.backward(x1); b.backward(x2)
        let both = Array(UnsafeBufferPointer(start: store.grads, count: store.paramCount))
        XCTAssertLessThan(maxAbsDiff(both, zip(ga, gb).map { $0 + $1 }), 1e-5)
        XCTAssertNotEqual(ga, gb)
    }
}
