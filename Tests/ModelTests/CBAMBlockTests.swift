// Finite-difference checks of CBAM (including gradients injected into its attention maps, as
// the distillation losses do) and of the ResNeXt-CBAM bottleneck block.
import XCTest
import Model

final class CBAMBlockTests: XCTestCase {
    /// (n, c, h, w, reduction, kernel)
    let cbamSweep: [(Int, Int, Int, Int, Int, Int)] = [
        (2, 8, 5, 5, 4, 3), (1, 4, 3, 4, 2, 3), (3, 6, 4, 3, 3, 1), (2, 8, 7, 7, 2, 7),
    ]

    func testCBAMGradients() {
        for (n, c, h, w, r, k) in cbamSweep {
            let store = ParamStore(), scratch = Scratch()
            let cbam = CBAM(store, scratch: scratch, name: "cbam", channels: c, reduction: r, kernel: k)
            store.allocate(); store.initialize(seed: 11)
            checkLayer(cbam, store: store, input: Shape(n: n, c: c, h: h, w: w),
                       label: "cbam n\(n) c\(c) \(h)x\(w) r\(r) k\(k)", eps: 1e-3)
        }
    }

    /// L = sum(out * r) + sum(ca * q) + sum(caLogit * q2) + sum(sa * u) + sum(saLogit * u2): the map
    /// gradients written into caGrad/caLogitGrad/saGrad/saLogitGrad must reach the input and the
    /// parameters correctly.
    func testCBAMAttentionMapGradients() {
        for (n, c, h, w, r, k) in cbamSweep {
            let label = "cbam maps n\(n) c\(c) \(h)x\(w) r\(r) k\(k)"
            let store = ParamStore(), scratch = Scratch()
            let cbam = CBAM(store, scratch: scratch, name: "cbam", channels: c, reduction: r, kernel: k)
            store.allocate(); store.initialize(seed: 12)
            let s = Shape(n: n, c: c, h: h, w: w)
            let x = Tensor(s, needsGrad: true); x.plan(s, needsGrad: true)
            var rng = TestRNG(13); rng.fill(x.value, s.count)
            cbam.plan(s, needsGrad: true)
            let cn = c * n, np = n * h * w
            let rOut = (0..<s.count).map { _ in rng.uniform() }
            let q = (0..<cn).map { _ in rng.uniform() }, q2 = (0..<cn).map { _ in rng.uniform() }
            let u = (0..<np).map { _ in rng.uniform() }, u2 = (0..<np).map { _ in rng.uniform() }
            func loss() -> Double {
                cbam.forward(x, training: true)
                var acc = 0.0
                for i in 0..<s.count { acc += Double(cbam.output.value[i]) * Double(rOut[i]) }
                for i in 0..<cn { acc += Double(cbam.ca.value[i] * q[i] + cbam.caLogit.value[i] * q2[i]) }
                for i in 0..<np { acc += Double(cbam.sa.value[i] * u[i] + cbam.saLogit.value[i] * u2[i]) }
                return acc
            }
            _ = loss()
            for i in 0..<s.count { cbam.output.grad![i] = rOut[i] }
            for i in 0..<cn { cbam.caGrad.value[i] = q[i]; cbam.caLogitGrad.value[i] = q2[i] }
            for i in 0..<np { cbam.saGrad.value[i] = u[i]; cbam.saLogitGrad.value[i] = u2[i] }
            x.zeroGrad(); store.zeroGrad()
            cbam.backward(x)
            let dx = Array(UnsafeBufferPointer(start: x.grad!, count: s.count))
            let dp = Array(UnsafeBufferPointer(start: store.grads, count: store.paramCount))
            var bad = dx.withUnsafeBufferPointer {
                numericCheck("input", pointer: x.value, analytic: $0.baseAddress!, count: s.count, eps: 1e-3, value: loss)
            }
            for e in store.entries where e.region == .param {
                bad += dp.withUnsafeBufferPointer {
                    numericCheck(e.name, pointer: store.params + e.offset, analytic: $0.baseAddress! + e.offset,
                                 count: e.count, eps: 1e-3, value: loss)
                }
            }
            XCTAssert(bad.isEmpty, "\(label): \(bad.count) mismatches, first: \(bad.prefix(4))")
        }
    }

    /// (n, cin, cout, h, w, width, stride, cardinality)
    func testResNeXtBlockGradients() {
        let sweep: [(Int, Int, Int, Int, Int, Int, Int, Int)] = [
            (2, 8, 8, 5, 5, 8, 1, 4),      // identity shortcut
            (2, 4, 8, 6, 5, 8, 2, 2),      // projection shortcut, stride 2, odd width
            (3, 6, 12, 4, 4, 6, 1, 3),     // projection shortcut (channels change), stride 1
        ]
        for (n, cin, cout, h, w, width, st, card) in sweep {
            let store = ParamStore(), scratch = Scratch()
            let block = ResNeXtBlock(store, scratch: scratch, name: "b", inChannels: cin, outChannels: cout, width: width,
                                     stride: st, cardinality: card, cbamReduction: 2, cbamKernel: 3)
            store.allocate(); store.initialize(seed: 21)
            checkLayer(block, store: store, input: Shape(n: n, c: cin, h: h, w: w),
                       label: "block n\(n) \(cin)->\(cout) \(h)x\(w) width\(width) s\(st) C\(card)", eps: 1e-3,
                       atol: 3e-3, rtol: 3e-2)
        }
    }
}
