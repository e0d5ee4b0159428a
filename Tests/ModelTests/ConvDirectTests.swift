// The direct convolution path (kd_conv_direct_*) against a naive reference, finite differences,
// the im2col path, and itself at another thread count; plus a manual per-layer benchmark.
//
// Legend: N batch, Ci/Co channels, G groups, K kernel, s stride, p padding. CNHW activations.
import XCTest
import Foundation
import Model

/// Naive CNHW convolution in double (reference for both algorithms and for Conv2dTests).
func referenceConv(x: UnsafePointer<Float>, s: Shape, w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                           co: Int, k: Int, stride: Int, pad: Int, groups: Int) -> [Float] {
    let ho = (s.h + 2 * pad - k) / stride + 1, wo = (s.w + 2 * pad - k) / stride + 1
    let cig = s.c / groups, cog = co / groups
    var y = [Float](repeating: 0, count: co * s.n * ho * wo)
    for oc in 0..<co { let g = oc / cog
        for n in 0..<s.n { for oy in 0..<ho { for ox in 0..<wo {
            var acc = Double(b?[oc] ?? 0)
            for ci in 0..<cig { for ky in 0..<k { for kx in 0..<k {
                let iy = oy * stride - pad + ky, ix = ox * stride - pad + kx
                if iy < 0 || iy >= s.h || ix < 0 || ix >= s.w { continue }
                acc += Double(x[((g * cig + ci) * s.n + n) * s.h * s.w + iy * s.w + ix])
                     * Double(w[((oc * cig + ci) * k + ky) * k + kx])
            } } }
            y[((oc * s.n + n) * ho + oy) * wo + ox] = Float(acc)
        } } }
    }
    return y
}

/// One convolution geometry of the sweep.
private struct ConvCase: CustomStringConvertible {
    var n: Int, ci: Int, co: Int, h: Int, w: Int, k: Int, stride: Int, pad: Int, groups: Int, bias: Bool
    var description: String {
        "n\(n) ci\(ci) co\(co) \(h)x\(w) k\(k) s\(stride) p\(pad) g\(groups) bias\(bias)"
    }
    var input: Shape { Shape(n: n, c: ci, h: h, w: w) }
    func make(_ store: ParamStore, _ scratch: Scratch, _ algorithm: ConvAlgorithm) -> Conv2d {
        let c = Conv2d(store, scratch: scratch, name: "c", inChannels: ci, outChannels: co, kernel: k,
                       stride: stride, padding: pad, groups: groups, bias: bias)
        c.algorithm = algorithm
        return c
    }
}

final class ConvDirectTests: XCTestCase {
    /// Odd sizes, padding 0/1/3, groups 1/2/4/8, kernel 1/3/7, stride 1/2, batch 1 and 3.
    private let sweep: [ConvCase] = [
        ConvCase(n: 1, ci: 2, co: 1, h: 9, w: 11, k: 7, stride: 1, pad: 3, groups: 1, bias: false),   // CBAM spatial
        ConvCase(n: 3, ci: 2, co: 1, h: 13, w: 7, k: 7, stride: 1, pad: 3, groups: 1, bias: true),
        ConvCase(n: 3, ci: 16, co: 16, h: 9, w: 7, k: 3, stride: 1, pad: 1, groups: 4, bias: false),  // width 4
        ConvCase(n: 1, ci: 16, co: 16, h: 11, w: 9, k: 3, stride: 2, pad: 1, groups: 4, bias: true),  // width 4, s2
        ConvCase(n: 3, ci: 16, co: 16, h: 7, w: 10, k: 3, stride: 2, pad: 1, groups: 2, bias: false), // width 8, s2
        ConvCase(n: 1, ci: 16, co: 16, h: 5, w: 19, k: 3, stride: 1, pad: 1, groups: 8, bias: false), // width 2
        ConvCase(n: 3, ci: 3, co: 5, h: 6, w: 5, k: 3, stride: 2, pad: 0, groups: 1, bias: true),     // odd Cog
        ConvCase(n: 1, ci: 6, co: 6, h: 5, w: 5, k: 3, stride: 1, pad: 0, groups: 2, bias: false),    // Cog 3
        ConvCase(n: 3, ci: 8, co: 8, h: 7, w: 5, k: 1, stride: 2, pad: 0, groups: 4, bias: false),    // 1x1 s2
        ConvCase(n: 1, ci: 4, co: 8, h: 5, w: 7, k: 1, stride: 1, pad: 0, groups: 2, bias: true),     // pointwise
        ConvCase(n: 3, ci: 4, co: 2, h: 8, w: 9, k: 7, stride: 2, pad: 3, groups: 2, bias: false),    // 7x7 s2
        ConvCase(n: 1, ci: 8, co: 8, h: 23, w: 37, k: 3, stride: 1, pad: 1, groups: 2, bias: false),  // > 1 tile
        ConvCase(n: 3, ci: 8, co: 16, h: 17, w: 35, k: 5, stride: 2, pad: 2, groups: 4, bias: false), // Cog 4, s2
    ]

    private var savedThreads = 1
    override func setUp() { savedThreads = Compute.threads }
    override func tearDown() { Compute.setThreads(savedThreads) }

    private func fill(_ store: ParamStore, _ conv: Conv2d, seed: UInt64) {
        store.allocate(); store.initialize(seed: seed)
        if let bo = conv.biasOffset { for i in 0..<conv.outChannels { store.params[bo + i] = Float(i) * 0.1 - 0.2 } }
    }

    func testBothAlgorithmsMatchReferenceForward() {
        for c in sweep {
            for alg in [ConvAlgorithm.im2col, .direct] {
                let label = "\(c) \(alg)"
                let store = ParamStore(), scratch = Scratch()
                let conv = c.make(store, scratch, alg)
                fill(store, conv, seed: 3)
                let x = Tensor(c.input); var rng = TestRNG(7); rng.fill(x.value, c.input.count)
                conv.plan(c.input, needsGrad: false)
                XCTAssertEqual(conv.usesDirect, alg == .direct, label)
                conv.forward(x, training: false)
                let ref = referenceConv(x: x.value, s: c.input, w: store.params + conv.weightOffset,
                                        b: conv.biasOffset.map { UnsafePointer(store.params + $0) }, co: c.co,
                                        k: c.k, stride: c.stride, pad: c.pad, groups: c.groups)
                XCTAssertEqual(conv.output.shape.count, ref.count, label)
                XCTAssertLessThan(maxAbsDiff(conv.output.value, ref), 1e-4, label)
            }
        }
    }

    func testDirectGradientsMatchFiniteDifferences() {
        for c in sweep {
            let store = ParamStore(), scratch = Scratch()
            let conv = c.make(store, scratch, .direct)
            fill(store, conv, seed: 5)
            checkLayer(conv, store: store, input: c.input, label: "direct \(c)")
            XCTAssertTrue(conv.usesDirect, "\(c)")
        }
    }

    /// Runs forward + backward from fixed dy, pre-filled dx and dw; returns (y, dx, grads).
    private func run(_ c: ConvCase, _ alg: ConvAlgorithm, threads: Int) -> ([Float], [Float], [Float]) {
        Compute.setThreads(threads)
        let store = ParamStore(), scratch = Scratch()
        let conv = c.make(store, scratch, alg)
        fill(store, conv, seed: 11)
        let x = Tensor(c.input, needsGrad: true)
        var rng = TestRNG(13); rng.fill(x.value, c.input.count); rng.fill(x.grad!, c.input.count)
        rng.fill(store.grads, store.paramCount)
        let out = conv.plan(c.input, needsGrad: true)
        conv.forward(x, training: true)
        rng.fill(conv.output.grad!, out.count)
        conv.backward(x)
        return (Array(UnsafeBufferPointer(start: conv.output.value, count: out.count)),
                Array(UnsafeBufferPointer(start: x.grad!, count: c.input.count)),
                Array(UnsafeBufferPointer(start: store.grads, count: store.paramCount)))
    }

    func testDirectAndIm2colGradientsAgree() {
        for c in sweep {
            let (y1, dx1, dp1) = run(c, .im2col, threads: 1)
            let (y2, dx2, dp2) = run(c, .direct, threads: 1)
            y1.withUnsafeBufferPointer { XCTAssertLessThan(maxAbsDiff($0.baseAddress!, y2), 1e-4, "y \(c)") }
            dx1.withUnsafeBufferPointer { XCTAssertLessThan(maxAbsDiff($0.baseAddress!, dx2), 1e-4, "dx \(c)") }
            // dw sums over N*Ho*Wo products in different orders: allow for the magnitude.
            let scale = max(1, dp1.map { abs($0) }.max() ?? 1)
            dp1.withUnsafeBufferPointer { XCTAssertLessThan(maxAbsDiff($0.baseAddress!, dp2), 1e-4 * scale, "dw \(c)") }
        }
    }

    func testDirectIsIndependentOfThreadCount() {
        for c in sweep {
            let one = run(c, .direct, threads: 1), two = run(c, .direct, threads: 2)
            XCTAssertEqual(one.0, two.0, "y \(c)")
            XCTAssertEqual(one.1, two.1, "dx \(c)")
            XCTAssertEqual(one.2, two.2, "dw \(c)")
        }
        // Batch 64 CBAM-like shape: more image blocks than threads, several items per thread.
        let big = ConvCase(n: 20, ci: 2, co: 1, h: 12, w: 12, k: 7, stride: 1, pad: 3, groups: 1, bias: false)
        let one = run(big, .direct, threads: 1), two = run(big, .direct, threads: 2)
        XCTAssertEqual(one.0, two.0); XCTAssertEqual(one.1, two.1); XCTAssertEqual(one.2, two.2)
    }

    func testAutoSelectsDirectForSmallGroupsOnly() {
        let store = ParamStore(), scratch = Scratch()
        func conv(_ ci: Int, _ co: Int, k: Int, s: Int = 1, p: Int, g: Int) -> Conv2d {
            let c = Conv2d(store, scratch: scratch, name: "auto\(ci)_\(co)_\(k)_\(s)_\(g)", inChannels: ci,
                           outChannels: co, kernel: k, stride: s, padding: p, groups: g)
            c.plan(Shape(n: 2, c: ci, h: 12, w: 12), needsGrad: false)
            return c
        }
        XCTAssertTrue(conv(2, 1, k: 7, p: 3, g: 1).usesDirect, "CBAM spatial 2->1 7x7")
        XCTAssertTrue(conv(128, 128, k: 3, p: 1, g: 32).usesDirect, "group width 4")
        XCTAssertTrue(conv(256, 256, k: 3, s: 2, p: 1, g: 32).usesDirect, "group width 8, stride 2")
        XCTAssertFalse(conv(512, 512, k: 3, p: 1, g: 32).usesDirect, "group width 16")
        XCTAssertFalse(conv(64, 64, k: 1, p: 0, g: 1).usesDirect, "pointwise")
        XCTAssertFalse(conv(8, 8, k: 3, s: 3, p: 1, g: 4).usesDirect, "stride 3 unsupported")
        XCTAssertFalse(conv(8, 8, k: 9, p: 4, g: 4).usesDirect, "kernel 9 unsupported")
    }

    /// Per-layer timings of both algorithms on the presets' shapes, run by hand (no timed assertions):
    ///   KD_BENCH=1 swift test -c release --disable-swift-testing --filter ConvDirectTests/testLayerBenchmark
    func testLayerBenchmark() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["KD_BENCH"] != nil, "set KD_BENCH=1 to run")
        let cases: [(String, ConvCase)] = [
            ("small cbam 7x7 56", ConvCase(n: 64, ci: 2, co: 1, h: 56, w: 56, k: 7, stride: 1, pad: 3, groups: 1, bias: false)),
            ("small grouped s1 56", ConvCase(n: 64, ci: 16, co: 16, h: 56, w: 56, k: 3, stride: 1, pad: 1, groups: 4, bias: false)),
            ("small grouped s2 56->28", ConvCase(n: 64, ci: 32, co: 32, h: 56, w: 56, k: 3, stride: 2, pad: 1, groups: 4, bias: false)),
            ("small grouped s2 28->14", ConvCase(n: 64, ci: 64, co: 64, h: 28, w: 28, k: 3, stride: 2, pad: 1, groups: 4, bias: false)),
            ("small stem 3->16 56", ConvCase(n: 64, ci: 3, co: 16, h: 56, w: 56, k: 3, stride: 1, pad: 1, groups: 1, bias: false)),
            ("r50 cbam 7x7 56", ConvCase(n: 4, ci: 2, co: 1, h: 56, w: 56, k: 7, stride: 1, pad: 3, groups: 1, bias: false)),
            ("r50 w4 s1 56", ConvCase(n: 4, ci: 128, co: 128, h: 56, w: 56, k: 3, stride: 1, pad: 1, groups: 32, bias: false)),
            ("r50 w8 s1 28", ConvCase(n: 4, ci: 256, co: 256, h: 28, w: 28, k: 3, stride: 1, pad: 1, groups: 32, bias: false)),
            ("r50 w8 s2 56->28", ConvCase(n: 4, ci: 256, co: 256, h: 56, w: 56, k: 3, stride: 2, pad: 1, groups: 32, bias: false)),
            ("r50 w16 s1 14", ConvCase(n: 4, ci: 512, co: 512, h: 14, w: 14, k: 3, stride: 1, pad: 1, groups: 32, bias: false)),
            ("r50 w32 s1 7", ConvCase(n: 4, ci: 1024, co: 1024, h: 7, w: 7, k: 3, stride: 1, pad: 1, groups: 32, bias: false)),
        ]
        let threadCounts = (ProcessInfo.processInfo.environment["KD_BENCH_THREADS"] ?? "1,2")
            .split(separator: ",").compactMap { Int($0) }
        print("OpenBLAS core \(Compute.blasCore); best of 5; ms forward / backward (dx + dw)")
        for threads in threadCounts {
            Compute.setThreads(threads)
            for (name, c) in cases {
                var line = "threads \(threads) \(name.padding(toLength: 24, withPad: " ", startingAt: 0))"
                for alg in [ConvAlgorithm.im2col, .direct] {
                    let store = ParamStore(), scratch = Scratch()
                    let conv = c.make(store, scratch, alg)
                    store.allocate(); store.initialize(seed: 1)
                    let x = Tensor(c.input, needsGrad: true)
                    var rng = TestRNG(1); rng.fill(x.value, c.input.count)
                    let out = conv.plan(c.input, needsGrad: true)
                    conv.forward(x, training: true)
                    rng.fill(conv.output.grad!, out.count)
                    var tf = Double.infinity, tb = Double.infinity
                    for _ in 0..<5 {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        conv.forward(x, training: false)
                        let t1 = DispatchTime.now().uptimeNanoseconds
                        conv.backward(x)
                        let t2 = DispatchTime.now().uptimeNanoseconds
                        tf = min(tf, Double(t1 - t0) * 1e-6); tb = min(tb, Double(t2 - t1) * 1e-6)
                    }
                    line += String(format: "  %@ %7.2f / %7.2f", alg == .direct ? "direct" : "im2col", tf, tb)
                }
                print(line)
            }
        }
    }
}
