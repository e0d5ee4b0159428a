// kd_sgemm (GEMM sliced over kdtrain's worker pool) against a naive double-precision product,
// for every transpose combination, both slicing directions (wide C by columns, tall C by rows),
// ragged edges, leading dimensions larger than the matrix, beta = 0 and beta = 1, and 1, 2 and 3
// threads; and bitwise agreement of repeated calls at a fixed thread count.
import XCTest
import CKernels
import Model
import KDCore

final class GemmTests: XCTestCase {
    override func tearDown() { Compute.setThreads(1) }

    func check(ta: Bool, tb: Bool, m: Int, n: Int, k: Int, beta: Float, threads: Int,
               file: StaticString = #filePath, line: UInt = #line) {
        var rng = SplitMix64(seed: UInt64(m * 131 + n * 17 + k))
        let pad = 3
        // Stored shapes (row-major): A is (m, k) or (k, m) when transposed; B is (k, n) or (n, k).
        let (ar, ac) = ta ? (k, m) : (m, k), (br, bc) = tb ? (n, k) : (k, n)
        let lda = ac + pad, ldb = bc + pad, ldc = n + pad
        let a = (0..<(ar * lda)).map { _ in Float(rng.nextUnit()) - 0.5 }
        let b = (0..<(br * ldb)).map { _ in Float(rng.nextUnit()) - 0.5 }
        let c0 = (0..<(m * ldc)).map { _ in Float(rng.nextUnit()) - 0.5 }
        var c = c0
        Compute.setThreads(threads)
        kd_sgemm(ta ? 1 : 0, tb ? 1 : 0, Int32(m), Int32(n), Int32(k), 0.75, a, Int32(lda), b, Int32(ldb), beta, &c, Int32(ldc))
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = ta ? a[p * lda + i] : a[i * lda + p], bv = tb ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                let want = 0.75 * s + Double(beta) * Double(c0[i * ldc + j])
                worst = max(worst, abs(Double(c[i * ldc + j]) - want))
            }
            for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j], "padding column written", file: file, line: line) }
        }
        XCTAssertLessThan(worst, 1e-4 * Double(k).squareRoot(),
                          "ta \(ta) tb \(tb) \(m)x\(n)x\(k) beta \(beta) threads \(threads)", file: file, line: line)
    }

    func testMatchesNaiveProductForEveryLayoutAndThreadCount() {
        // (m, n, k): wide (column slices, ragged last slice), tall (row slices), tiny (inline: below
        // the 4 MFLOP slicing threshold), and a near-square product at the threshold.
        for (m, n, k) in [(24, 1000, 200), (300, 70, 120), (5, 7, 3), (64, 129, 256)] {
            for ta in [false, true] { for tb in [false, true] {
                for threads in [1, 2, 3] {
                    check(ta: ta, tb: tb, m: m, n: n, k: k, beta: 0, threads: threads)
                    check(ta: ta, tb: tb, m: m, n: n, k: k, beta: 1, threads: threads)
                }
            } }
        }
    }

    func testRepeatableAtFixedThreadCount() {
        let m = 48, n = 3000, k = 64
        var rng = SplitMix64(seed: 9)
        let a = (0..<(m * k)).map { _ in Float(rng.nextUnit()) }, b = (0..<(k * n)).map { _ in Float(rng.nextUnit()) }
        Compute.setThreads(2)
        var c1 = [Float](repeating: 0, count: m * n), c2 = c1
        kd_sgemm(0, 0, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &c1, Int32(n))
        kd_sgemm(0, 0, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &c2, Int32(n))
        XCTAssertEqual(c1.map(\.bitPattern), c2.map(\.bitPattern))
    }
}
