// Activations (ReLU, sigmoid, PReLU): forward values and finite-difference gradients.
import XCTest
import Model

final class ActivationTests: XCTestCase {
    /// (n, c, h, w): planes, vectors, batch 1, odd sizes.
    let sweep: [(Int, Int, Int, Int)] = [(2, 3, 4, 5), (1, 2, 3, 3), (4, 5, 1, 1), (3, 1, 7, 3)]

    func forwardValues(_ layer: Layer, _ s: Shape, seed: UInt64 = 4) -> (Tensor, [Float]) {
        let x = Tensor(s); var rng = TestRNG(seed); rng.fill(x.value, s.count, -4, 4)
        layer.plan(s, needsGrad: false)
        layer.forward(x, training: false)
        return (x, Array(UnsafeBufferPointer(start: layer.output.value, count: s.count)))
    }

    func testReLU() {
        for (n, c, h, w) in sweep {
            let s = Shape(n: n, c: c, h: h, w: w), label = "relu n\(n) c\(c) \(h)x\(w)"
            let relu = ReLU()
            let (x, y) = forwardValues(relu, s)
            XCTAssertEqual(y, (0..<s.count).map { max(x.value[$0], 0) }, label)
            checkLayer(ReLU(), store: ParamStore(), input: s, label: label, prepareInput: { awayFromZero($0, $1) })
        }
    }

    func testSigmoid() {
        for (n, c, h, w) in sweep {
            let s = Shape(n: n, c: c, h: h, w: w), label = "sigmoid n\(n) c\(c) \(h)x\(w)"
            let (x, y) = forwardValues(Sigmoid(), s)
            let ref = (0..<s.count).map { Float(1 / (1 + exp(-Double(x.value[$0])))) }
            XCTAssertLessThan(maxAbsDiff(y, ref), 1e-6, label)
            checkLayer(Sigmoid(), store: ParamStore(), input: s, label: label)
        }
        // Saturation neither overflows nor produces NaN.
        let s = Shape(n: 1, c: 1, h: 1, w: 4), sig = Sigmoid(), x = Tensor(s)
        for (i, v) in [Float(-200), -90, 90, 200].enumerated() { x.value[i] = v }
        sig.plan(s, needsGrad: false); sig.forward(x, training: false)
        let y = Array(UnsafeBufferPointer(start: sig.output.value, count: 4))
        XCTAssertEqual(y[0], 0); XCTAssertLessThan(y[1], 1e-38); XCTAssertGreaterThanOrEqual(y[1], 0)
        XCTAssertEqual(y[2], 1); XCTAssertEqual(y[3], 1)
    }

    func testPReLU() {
        for (n, c, h, w) in sweep {
            let s = Shape(n: n, c: c, h: h, w: w), label = "prelu n\(n) c\(c) \(h)x\(w)"
            let store = ParamStore()
            let pr = PReLU(store, name: "act", channels: c)
            store.allocate(); store.initialize(seed: 1)
            XCTAssertEqual(store.params[pr.slopeOffset], 0.25)
            XCTAssertEqual(store.entry(named: "act.weight")?.decay, false)
            for i in 0..<c { store.params[pr.slopeOffset + i] = 0.1 + 0.2 * Float(i) }
            let (x, y) = forwardValues(pr, s)
            let m = n * h * w
            let ref = (0..<s.count).map { i in x.value[i] > 0 ? x.value[i] : store.params[pr.slopeOffset + i / m] * x.value[i] }
            XCTAssertEqual(y, ref, label)
            checkLayer(pr, store: store, input: s, label: label, prepareInput: { awayFromZero($0, $1) })
        }
    }
}
