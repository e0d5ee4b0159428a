// Flatten: PyTorch's feature order from kdtrain's channel-major activations.
import XCTest
import Model

final class FlattenTests: XCTestCase {
    func testPyTorchFeatureOrder() {
        for (n, c, h, w) in [(2, 3, 4, 5), (1, 2, 3, 3), (3, 4, 1, 1)] {
            let s = Shape(n: n, c: c, h: h, w: w), x = Tensor(s)
            var rng = TestRNG(1); rng.fill(x.value, s.count)
            let f = Flatten()
            XCTAssertEqual(f.plan(s, needsGrad: false), Shape(n: n, c: c * h * w, h: 1, w: 1))
            f.forward(x, training: false)
            // PyTorch: NCHW image j flattened to feature c*H*W + y*W + x; ours is feature-major (F, N).
            var nchw = [Float](repeating: 0, count: s.count)
            nchw.withUnsafeMutableBufferPointer { x.storeNCHW($0.baseAddress!) }
            let f0 = c * h * w
            for j in 0..<n { for i in 0..<f0 {
                XCTAssertEqual(f.output.value[i * n + j], nchw[j * f0 + i], "n\(n) c\(c) \(h)x\(w) feature \(i) image \(j)")
            } }
            checkLayer(Flatten(), store: ParamStore(), input: s, label: "flatten n\(n) c\(c) \(h)x\(w)")
        }
    }
}
