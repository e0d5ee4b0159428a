// Elementwise layers (residual add, CBAM channel and spatial scaling, channel pooling): values and gradients.
import XCTest
import Model

final class ElementwiseTests: XCTestCase {
    let shapes: [(Int, Int, Int, Int)] = [(2, 3, 4, 5), (1, 2, 3, 3), (3, 4, 1, 1), (2, 5, 7, 1)]

    func testAdd() {
        for (n, c, h, w) in shapes {
            let s = Shape(n: n, c: c, h: h, w: w), add = Add()
            add.plan(s, needsGrad: true)
            let a = Tensor(s), b = Tensor(s); var rng = TestRNG(1)
            rng.fill(a.value, s.count); rng.fill(b.value, s.count)
            add.forward(a, b, training: false)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: add.output.value, count: s.count)),
                           (0..<s.count).map { a.value[$0] + b.value[$0] })
            checkTwoInput(output: add.output, a: s, b: s, label: "add n\(n) c\(c) \(h)x\(w)",
                          forward: { add.forward($0, $1, training: true) }, backward: { add.backward($0, $1) })
        }
    }

    func testChannelScale() {
        for (n, c, h, w) in shapes {
            let s = Shape(n: n, c: c, h: h, w: w), ss = Shape(n: n, c: c, h: 1, w: 1), op = ChannelScale()
            op.plan(s, needsGrad: true)
            let x = Tensor(s), sc = Tensor(ss); var rng = TestRNG(2)
            rng.fill(x.value, s.count); rng.fill(sc.value, ss.count)
            op.forward(x, sc, training: false)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: op.output.value, count: s.count)),
                           (0..<s.count).map { x.value[$0] * sc.value[$0 / s.plane] })
            checkTwoInput(output: op.output, a: s, b: ss, label: "channel scale n\(n) c\(c) \(h)x\(w)",
                          forward: { op.forward($0, $1, training: true) }, backward: { op.backward($0, $1) })
        }
    }

    func testSpatialScale() {
        for (n, c, h, w) in shapes + [(2, 3, 50, 45)] {   // 2250 pixels: more than one pixel block
            let s = Shape(n: n, c: c, h: h, w: w), ms = Shape(n: n, c: 1, h: h, w: w), op = SpatialScale()
            op.plan(s, needsGrad: true)
            let x = Tensor(s), m = Tensor(ms); var rng = TestRNG(3)
            rng.fill(x.value, s.count); rng.fill(m.value, ms.count)
            op.forward(x, m, training: false)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: op.output.value, count: s.count)),
                           (0..<s.count).map { x.value[$0] * m.value[$0 % (n * s.plane)] })
            checkTwoInput(output: op.output, a: s, b: ms, label: "spatial scale n\(n) c\(c) \(h)x\(w)",
                          forward: { op.forward($0, $1, training: true) }, backward: { op.backward($0, $1) })
        }
    }

    func testChannelPoolMaxThenMean() {
        for (n, c, h, w) in shapes + [(1, 3, 50, 45)] {
            let s = Shape(n: n, c: c, h: h, w: w), x = Tensor(s), pool = ChannelPool()
            makeDistinct(x.value, s.count)
            XCTAssertEqual(pool.plan(s, needsGrad: false), Shape(n: n, c: 2, h: h, w: w))
            pool.forward(x, training: false)
            let np = n * s.plane
            for i in 0..<np {
                let column = (0..<c).map { x.value[$0 * np + i] }
                XCTAssertEqual(pool.output.value[i], column.max()!, "max n\(n) c\(c) \(h)x\(w) at \(i)")
                XCTAssertEqual(pool.output.value[np + i], column.reduce(0, +) / Float(c),
                               accuracy: 1e-5 * max(1, abs(pool.output.value[np + i])),
                               "mean n\(n) c\(c) \(h)x\(w) at \(i)")
            }
            checkLayer(ChannelPool(), store: ParamStore(), input: s, label: "channel pool n\(n) c\(c) \(h)x\(w)",
                       prepareInput: { makeDistinct($0, $1) })
        }
    }
}
