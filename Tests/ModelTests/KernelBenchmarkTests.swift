// A manual kernel throughput benchmark (KD_BENCH=1); asserts nothing about time.
import XCTest
import Foundation
import CKernels
import Model

/// Throughput of the memory-bound kernels, run by hand (no timed assertions; skipped in CI):
///   KD_BENCH=1 swift test -c release --disable-swift-testing --filter KernelBenchmarkTests
/// GB/s counts the bytes each kernel must move once (4 bytes per float read or written).
final class KernelBenchmarkTests: XCTestCase {
    func time(_ reps: Int, _ body: () -> Void) -> Double {
        body()   // warm-up
        var best = Double.infinity
        for _ in 0..<reps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        return best
    }

    func testKernelThroughput() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["KD_BENCH"] != nil, "set KD_BENCH=1 to run")
        let s = Shape(n: 64, c: 64, h: 28, w: 28)
        let mb = Double(s.count * 4) / 1e9   // GB per full pass over the tensor
        let store = ParamStore()
        let bn = BatchNorm(store, name: "bn", channels: s.c)
        store.allocate(); store.initialize(seed: 1)
        let x = Tensor(s, needsGrad: true)
        var rng = TestRNG(1); rng.fill(x.value, s.count)
        let relu = ReLU(), pool = MaxPool2d(kernel: 3, stride: 2, padding: 1)
        bn.plan(s, needsGrad: true); relu.plan(s, needsGrad: true); pool.plan(s, needsGrad: true)
        for threads in [1, 2] {
            kd_set_threads(Int32(threads))
            let tf = time(10) { bn.forward(x, training: true) }
            let tb = time(10) { bn.backward(x) }
            // forward: stats read x, affine read x + write y (3 passes); backward: reduce reads
            // dy, x; dx pass reads dy, x, dx and writes dx (6 passes).
            print(String(format: "threads %d  BN fwd %.2f ms (%.1f GB/s)  bwd %.2f ms (%.1f GB/s)  fwd+bwd %.2f ms (%.1f GB/s)",
                         threads, tf * 1e3, 3 * mb / tf, tb * 1e3, 6 * mb / tb, (tf + tb) * 1e3, 9 * mb / (tf + tb)))
            let rf = time(10) { relu.forward(x, training: true) }
            let rb = time(10) { relu.backward(x) }
            print(String(format: "threads %d  ReLU fwd %.2f ms (%.1f GB/s)  bwd %.2f ms (%.1f GB/s)",
                         threads, rf * 1e3, 2 * mb / rf, rb * 1e3, 4 * mb / rb))
            let pf = time(10) { pool.forward(x, training: true) }
            let pb = time(10) { pool.backward(x) }
            // forward reads x, writes y and idx (1/4 of x each); backward reads dy, idx, rmw dx.
            print(String(format: "threads %d  MaxPool3s2 fwd %.2f ms (%.1f GB/s)  bwd %.2f ms",
                         threads, pf * 1e3, 1.5 * mb / pf, pb * 1e3))
        }
        kd_set_threads(1)
    }
}
