// Dropout: mask statistics and scaling, reproducible masks per step, gradients with the mask frozen.
import XCTest
import Model

final class DropoutTests: XCTestCase {
    func run(_ d: Dropout, _ x: Tensor, training: Bool) -> [Float] {
        d.forward(x, training: training)
        return Array(UnsafeBufferPointer(start: d.output.value, count: x.shape.count))
    }

    func testMaskStatisticsScalingAndInferenceIdentity() {
        let s = Shape(n: 8, c: 64, h: 4, w: 4), x = Tensor(s)
        var rng = TestRNG(1); rng.fill(x.value, s.count, 0.5, 1.5)
        for p: Float in [0.1, 0.5] {
            let d = Dropout(p: p, seed: 7)
            d.plan(s, needsGrad: false)
            let y = run(d, x, training: true)
            var kept = 0
            for i in 0..<s.count where y[i] != 0 {
                kept += 1
                XCTAssertEqual(y[i], x.value[i] / (1 - p), accuracy: 1e-6)
            }
            let frac = Double(kept) / Double(s.count)   // 8192 draws: sd ~ 0.0055
            XCTAssertEqual(frac, Double(1 - p), accuracy: 0.03, "p \(p)")
            XCTAssertEqual(run(d, x, training: false), Array(UnsafeBufferPointer(start: x.value, count: s.count)))
        }
    }

    func testMasksAreReproducibleAndChangeEveryStep() {
        let s = Shape(n: 4, c: 16, h: 1, w: 1), x = Tensor(s)
        var rng = TestRNG(2); rng.fill(x.value, s.count, 0.5, 1.5)
        let d = Dropout(p: 0.5, seed: 3)
        d.plan(s, needsGrad: false)
        d.seed(step: 10)
        let a = run(d, x, training: true)
        XCTAssertEqual(d.step, 11)
        let b = run(d, x, training: true)
        XCTAssertNotEqual(a, b, "consecutive steps draw different masks")
        d.seed(step: 10)
        XCTAssertEqual(run(d, x, training: true), a, "same (seed, step) gives the same mask")
        let other = Dropout(p: 0.5, seed: 4)
        other.plan(s, needsGrad: false); other.seed(step: 10)
        XCTAssertNotEqual(run(other, x, training: true), a, "another seed gives another mask")
    }

    func testGradientsWithFrozenMask() {
        for (n, c, h, w) in [(2, 3, 4, 5), (5, 7, 1, 1), (1, 2, 3, 3)] {
            let d = Dropout(p: 0.3, seed: 5)
            checkLayer(d, store: ParamStore(), input: Shape(n: n, c: c, h: h, w: w), label: "dropout n\(n) c\(c) \(h)x\(w)",
                       beforeForward: { d.seed(step: 42) })
        }
    }
}
