// Each fused forward kernel against the unfused kernels it replaces: the same bits, on data with
// ties, signed zeros and NaNs, plane sizes that are not multiples of the vector width, and
// 1 or 2 threads.
import XCTest
import CKernels
import Model
import KDCore

final class FusedKernelTests: XCTestCase {
    override func tearDown() { Compute.setThreads(1) }

    func data(_ n: Int, seed: UInt64, special: Bool) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { i in
            let u = Float(rng.nextUnit()) * 2 - 1
            guard special else { return u }
            switch i % 37 { case 3: return 0; case 5: return -0.0; case 7: return 0.5; case 11: return 0.5; default: return u }
        }
    }

    func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    func testAffineReLUIsAffineThenReLU() {
        for threads in [1, 2] {
            Compute.setThreads(threads)
            let C = 5, M = 40_003
            let x = data(C * M, seed: 1, special: true), sc = data(C, seed: 2, special: false), sh = data(C, seed: 3, special: false)
            var y1 = [Float](repeating: 9, count: C * M), y2 = y1
            kd_channel_affine(&y1, x, sc, sh, Int32(C), M)
            y1.withUnsafeMutableBufferPointer { kd_relu_forward($0.baseAddress!, $0.baseAddress!, C * M) }
            kd_channel_affine_relu(&y2, x, sc, sh, Int32(C), M)
            XCTAssertEqual(bits(y1), bits(y2), "threads \(threads)")
        }
    }

    func testGlobalAvgMaxIsAvgpoolAndMaxpool() {
        for (P, threads) in [(49, 1), (196, 2), (3136, 2), (7, 1)] {
            Compute.setThreads(threads)
            let planes = 12
            var x = data(planes * P, seed: UInt64(P), special: true)
            x[2 * P + P / 2] = .nan                        // plane 2: a NaN in the middle (it wins)
            x[5 * P] = .nan                                // plane 5: a NaN first
            for i in 0..<P { x[7 * P + i] = i % 2 == 0 ? -0.0 : 0 }   // plane 7: signed zeros only
            for i in 0..<P { x[8 * P + i] = 3 }            // plane 8: all ties
            var a1 = [Float](repeating: 0, count: planes), m1 = a1, a2 = a1, m2 = a1
            var i1 = [Int32](repeating: -1, count: planes), i2 = i1
            kd_global_avgpool_forward(&a1, x, planes, P)
            kd_global_maxpool_forward(&m1, &i1, x, planes, P)
            kd_global_avgmax_forward(&a2, &m2, &i2, x, planes, P)
            XCTAssertEqual(bits(a1), bits(a2), "avg P \(P)")
            XCTAssertEqual(bits(m1), bits(m2), "max P \(P)")
            XCTAssertEqual(i1, i2, "argmax P \(P)")
        }
    }

    func testChannelScalePoolIsScaleThenPool() {
        for (C, N, P, threads) in [(16, 3, 3136, 2), (7, 2, 49, 1), (32, 4, 196, 2)] {
            Compute.setThreads(threads)
            let x = data(C * N * P, seed: UInt64(C + P), special: true), s = data(C * N, seed: 5, special: true)
            var xs1 = [Float](repeating: 0, count: C * N * P), xs2 = xs1
            var p1 = [Float](repeating: 0, count: 2 * N * P), p2 = p1
            var g1 = [Int32](repeating: 0, count: N * P), g2 = g1
            kd_channel_scale_forward(&xs1, x, s, C * N, P)
            kd_channel_pool_forward(&p1, &g1, xs1, Int32(C), Int32(N), P)
            kd_channel_scale_pool_forward(&xs2, &p2, &g2, x, s, Int32(C), Int32(N), P)
            XCTAssertEqual(bits(xs1), bits(xs2)); XCTAssertEqual(bits(p1), bits(p2)); XCTAssertEqual(g1, g2)
        }
    }

    func testSpatialScaleAddReLUIsScaleAddReLU() {
        for (C, N, P, threads) in [(16, 3, 3136, 2), (8, 2, 49, 1)] {
            Compute.setThreads(threads)
            let n = C * N * P
            let x = data(n, seed: 8, special: true), m = data(N * P, seed: 9, special: true), r = data(n, seed: 10, special: true)
            var t = [Float](repeating: 0, count: n), y1 = t, y2 = t
            kd_spatial_scale_forward(&t, x, m, Int32(C), Int32(N), P)
            kd_add(&y1, t, r, n)
            y1.withUnsafeMutableBufferPointer { kd_relu_forward($0.baseAddress!, $0.baseAddress!, n) }
            kd_spatial_scale_add_relu(&y2, x, m, r, Int32(C), Int32(N), P)
            XCTAssertEqual(bits(y1), bits(y2))
        }
    }
}
