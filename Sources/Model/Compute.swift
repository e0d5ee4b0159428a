// Process-wide compute settings: OpenBLAS threads and kdtrain's kernel worker pool.
import COpenBLAS
import CKernels
import Foundation
import KDCore

public enum Compute {
    /// Sets the threads kdtrain's kernels use (>= 1). Every kernel, GEMM included (`kd_sgemm`
    /// slices it), runs on kdtrain's one worker pool; OpenBLAS itself runs single-threaded, so
    /// its spinning workers never compete with the pool for a core.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(1)
        kd_set_threads(Int32(max(1, n)))
    }
    public static var threads: Int { Int(kd_get_threads()) }
    /// The OpenBLAS kernel family in use (e.g. "Haswell"), as the library reports it.
    public static var blasCore: String { String(cString: openblas_get_corename()) }
    public static var blasConfig: String { String(cString: openblas_get_config()) }

    /// OpenBLAS cores that mean "CPU not recognized, generic SSE kernels" on x86-64.
    static let genericCores: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai",
                                            "Coppermine", "Northwood", "Banias", "Opteron", "Barcelona"]

    /// When OpenBLAS (0.3.21 and older) does not recognize a recent CPU it falls back to generic SSE
    /// kernels, 4-5x slower. If that happened, the CPU has AVX2+FMA and the user did not choose a
    /// core (OPENBLAS_CORETYPE), returns the core to re-run with ("Haswell": AVX2/FMA kernels,
    /// correct on every AVX2 CPU); else nil. OpenBLAS reads the variable only when it loads, so
    /// the launcher re-executes itself with it set.
    public static func blasCoreOverride(environment: [String: String]) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, genericCores.contains(blasCore),
              kd_cpu_supports_avx2_fma() != 0 else { return nil }
        return "Haswell"
    }

    /// Measures single-precision GEMM throughput (kd_sgemm, as the layers call it) on square
    /// matrices of side `n` with the current thread setting: best of `repeats` runs, in GFLOP/s.
    public static func sgemmPeak(n: Int = 2048, repeats: Int = 5) -> Double {
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        var rng = SplitMix64(seed: 1)
        for i in 0..<(n * n) { a[i] = Float(rng.nextUnit()) - 0.5; b[i] = Float(rng.nextUnit()) - 0.5; c[i] = 0 }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = Profiler.now()
            kd_sgemm(0, 0, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0, c, Int32(n))
            best = min(best, Profiler.now() - t0)
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }
}
