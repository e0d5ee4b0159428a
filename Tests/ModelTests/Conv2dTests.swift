// Conv2d (im2col + GEMM): forward against a direct convolution, finite-difference gradients.
import XCTest
import Model

final class Conv2dTests: XCTestCase {
    /// Direct (naive) convolution in CNHW (`referenceConv`), with its output shape.
    func naiveConv(x: UnsafePointer<Float>, s: Shape, w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                   co: Int, k: Int, stride: Int, pad: Int, groups: Int) -> (Shape, [Float]) {
        let ho = (s.h + 2 * pad - k) / stride + 1, wo = (s.w + 2 * pad - k) / stride + 1
        return (Shape(n: s.n, c: co, h: ho, w: wo),
                referenceConv(x: x, s: s, w: w, b: b, co: co, k: k, stride: stride, pad: pad, groups: groups))
    }

    /// (n, ci, co, h, w, k, stride, pad, groups, bias)
    let sweep: [(Int, Int, Int, Int, Int, Int, Int, Int, Int, Bool)] = [
        (2, 3, 4, 5, 5, 3, 1, 1, 1, true),
        (1, 4, 6, 7, 6, 3, 2, 1, 2, false),
        (3, 8, 8, 4, 4, 1, 1, 0, 1, false),    // pointwise fast path
        (2, 6, 4, 5, 7, 1, 2, 0, 2, true),     // strided 1x1 (projection shortcut)
        (2, 8, 8, 6, 6, 3, 1, 1, 4, false),    // ResNeXt-style grouped 3x3
        (1, 2, 2, 9, 9, 7, 1, 3, 1, false),    // CBAM spatial 7x7
        (2, 3, 5, 6, 5, 3, 2, 0, 1, true),     // odd sizes, no padding
    ]

    func testForwardMatchesDirectConvolution() {
        for (n, ci, co, h, w, k, st, p, g, bias) in sweep {
            let label = "n\(n) ci\(ci) co\(co) \(h)x\(w) k\(k) s\(st) p\(p) g\(g) bias\(bias)"
            let store = ParamStore(), scratch = Scratch()
            let conv = Conv2d(store, scratch: scratch, name: "c", inChannels: ci, outChannels: co,
                              kernel: k, stride: st, padding: p, groups: g, bias: bias)
            store.allocate(); store.initialize(seed: 3)
            if let bo = conv.biasOffset { for i in 0..<co { store.params[bo + i] = Float(i) * 0.1 - 0.2 } }
            let s = Shape(n: n, c: ci, h: h, w: w)
            let x = Tensor(s); x.plan(s, needsGrad: false)
            var rng = TestRNG(7); rng.fill(x.value, s.count)
            conv.plan(s, needsGrad: false)
            conv.forward(x, training: false)
            let (os, ref) = naiveConv(x: x.value, s: s, w: store.params + conv.weightOffset,
                                      b: conv.biasOffset.map { UnsafePointer(store.params + $0) },
                                      co: co, k: k, stride: st, pad: p, groups: g)
            XCTAssertEqual(conv.output.shape, os, label)
            var maxErr: Float = 0
            for i in 0..<ref.count { maxErr = max(maxErr, abs(ref[i] - conv.output.value[i])) }
            XCTAssertLessThan(maxErr, 1e-4, label)
        }
    }

    func testGradientsMatchFiniteDifferences() {
        for (n, ci, co, h, w, k, st, p, g, bias) in sweep {
            let label = "conv n\(n) ci\(ci) co\(co) \(h)x\(w) k\(k) s\(st) p\(p) g\(g) bias\(bias)"
            let store = ParamStore(), scratch = Scratch()
            let conv = Conv2d(store, scratch: scratch, name: "c", inChannels: ci, outChannels: co,
                              kernel: k, stride: st, padding: p, groups: g, bias: bias)
            store.allocate(); store.initialize(seed: 5)
            checkLayer(conv, store: store, input: Shape(n: n, c: ci, h: h, w: w), label: label)
        }
    }
}
