// Pooling: max (ties, NaN), average and global pools, values and gradients.
import XCTest
import Model

final class PoolingTests: XCTestCase {
    /// Naive pooling of each (c, n) plane: max (with -inf padding) or average.
    func naivePool(_ x: UnsafePointer<Float>, _ s: Shape, k: Int, stride: Int, pad: Int, max isMax: Bool,
                   includePad: Bool = true) -> [Float] {
        let ho = (s.h + 2 * pad - k) / stride + 1, wo = (s.w + 2 * pad - k) / stride + 1
        var y: [Float] = []
        for q in 0..<(s.c * s.n) { for oy in 0..<ho { for ox in 0..<wo {
            var best = -Float.infinity, sum = 0.0, cnt = 0
            for ky in 0..<k { for kx in 0..<k {
                let iy = oy * stride - pad + ky, ix = ox * stride - pad + kx
                guard iy >= 0, iy < s.h, ix >= 0, ix < s.w else { continue }
                let v = x[q * s.plane + iy * s.w + ix]
                best = max(best, v); sum += Double(v); cnt += 1
            } }
            y.append(isMax ? best : Float(sum / Double(includePad ? k * k : cnt)))
        } } }
        return y
    }

    /// (n, c, h, w, k, stride, pad)
    let sweep: [(Int, Int, Int, Int, Int, Int, Int)] = [
        (2, 3, 6, 6, 2, 2, 0), (1, 2, 7, 5, 3, 2, 1), (2, 2, 5, 5, 3, 1, 1),
        (3, 1, 8, 7, 3, 3, 0), (1, 3, 4, 4, 1, 1, 0), (2, 2, 9, 9, 5, 2, 2),
    ]

    func testMaxPool2d() {
        for (n, c, h, w, k, st, p) in sweep {
            let s = Shape(n: n, c: c, h: h, w: w), label = "maxpool n\(n) c\(c) \(h)x\(w) k\(k) s\(st) p\(p)"
            let pool = MaxPool2d(kernel: k, stride: st, padding: p)
            let x = Tensor(s); var rng = TestRNG(2); rng.fill(x.value, s.count)
            pool.plan(s, needsGrad: false); pool.forward(x, training: false)
            let ref = naivePool(x.value, s, k: k, stride: st, pad: p, max: true)
            XCTAssertEqual(pool.output.shape.count, ref.count, label)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: pool.output.value, count: ref.count)), ref, label)
            checkLayer(MaxPool2d(kernel: k, stride: st, padding: p), store: ParamStore(), input: s, label: label,
                       prepareInput: { makeDistinct($0, $1) })
        }
    }

    func testMaxPoolTieGoesToFirstMaximum() {
        let s = Shape(n: 1, c: 1, h: 2, w: 2), pool = MaxPool2d(kernel: 2)
        let x = Tensor(s, needsGrad: true)
        for i in 0..<4 { x.value[i] = 1 }
        pool.plan(s, needsGrad: true); pool.forward(x, training: true)
        pool.output.grad![0] = 3
        pool.backward(x)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: x.grad!, count: 4)), [3, 0, 0, 0])
    }

    func testMaxPoolPropagatesNaN() {
        let s = Shape(n: 1, c: 1, h: 2, w: 4), pool = MaxPool2d(kernel: 2)
        let x = Tensor(s)
        for (i, v) in [Float(1), .nan, 3, 2, 5, 0, 1, 0].enumerated() { x.value[i] = v }
        pool.plan(s, needsGrad: false); pool.forward(x, training: false)
        XCTAssertTrue(pool.output.value[0].isNaN)
        XCTAssertEqual(pool.output.value[1], 3)
    }

    func testAvgPool2d() {
        for (n, c, h, w, k, st, p) in sweep {
            for include in [true, false] {
                let s = Shape(n: n, c: c, h: h, w: w)
                let label = "avgpool n\(n) c\(c) \(h)x\(w) k\(k) s\(st) p\(p) includePad \(include)"
                let pool = AvgPool2d(kernel: k, stride: st, padding: p, countIncludePad: include)
                let x = Tensor(s); var rng = TestRNG(2); rng.fill(x.value, s.count)
                pool.plan(s, needsGrad: false); pool.forward(x, training: false)
                let ref = naivePool(x.value, s, k: k, stride: st, pad: p, max: false, includePad: include)
                XCTAssertEqual(pool.output.shape.count, ref.count, label)
                XCTAssertLessThan(maxAbsDiff(pool.output.value, ref), 1e-6, label)
                checkLayer(AvgPool2d(kernel: k, stride: st, padding: p, countIncludePad: include),
                           store: ParamStore(), input: s, label: label)
            }
        }
    }

    func testGlobalPools() {
        for (n, c, h, w) in [(2, 3, 4, 5), (1, 4, 7, 7), (3, 2, 1, 1), (2, 2, 3, 1)] {
            let s = Shape(n: n, c: c, h: h, w: w), x = Tensor(s)
            var rng = TestRNG(6); rng.fill(x.value, s.count)
            let avg = GlobalAvgPool(), mx = GlobalMaxPool()
            XCTAssertEqual(avg.plan(s, needsGrad: false), Shape(n: n, c: c, h: 1, w: 1))
            mx.plan(s, needsGrad: false)
            avg.forward(x, training: false); mx.forward(x, training: false)
            for q in 0..<(c * n) {
                let plane = (0..<s.plane).map { x.value[q * s.plane + $0] }
                XCTAssertEqual(avg.output.value[q], plane.reduce(0, +) / Float(s.plane), accuracy: 1e-6)
                XCTAssertEqual(mx.output.value[q], plane.max()!)
            }
            checkLayer(GlobalAvgPool(), store: ParamStore(), input: s, label: "global avg n\(n) c\(c) \(h)x\(w)")
            checkLayer(GlobalMaxPool(), store: ParamStore(), input: s, label: "global max n\(n) c\(c) \(h)x\(w)",
                       prepareInput: { makeDistinct($0, $1) })
        }
    }
}
