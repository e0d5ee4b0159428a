// Measurements for `kdtrain bench` distributed mode: all-reduce time against message size, the
// fraction of all-reduce time hidden behind backward, and step time for weak scaling. Every
// function is collective (all ranks call it with the same arguments) and returns the same figures
// on every rank; times are the slowest rank's (max over ranks), median over iterations.
//
// The backward used by `overlap` and `stepTime` is a closure: `kdtrain bench --dist` passes the
// student's real backward (calling `reducer?.gradientsReady(from:)` after each layer); the MPI test
// harness (kdtrain-dist-harness bench) passes `SimulatedBackward` (calibrated compute, equal time
// per layer), which needs no model.

import Dist
import Foundation

public enum DistBenchmark {
    /// One message size of `allReduceSweep`.
    public struct AllReducePoint: Sendable, Equatable {
        public var floats: Int
        public var bytes: Int { floats * 4 }
        /// Median seconds of one in-place MPI_Allreduce (sum) over the private communicator.
        public var seconds: Double
        public var minSeconds: Double
        /// NCCL-style bus bandwidth 2(W-1)/W · bytes / seconds, in GB/s (0 for one rank).
        public var busGBs: Double
    }

    /// Result of `overlap`.
    public struct OverlapResult: Sendable, Equatable {
        public var floats: Int
        public var buckets: Int
        /// Backward alone (no communication).
        public var computeSeconds: Double
        /// One blocking all-reduce + averaging of the whole buffer alone.
        public var allReduceSeconds: Double
        /// Backward then one blocking all-reduce (overlap off).
        public var sequentialSeconds: Double
        /// Backward with bucketed overlapped all-reduce + finish (overlap on).
        public var overlappedSeconds: Double
        /// Median time spent in `finish()` with overlap on (the exposed part of communication).
        public var exposedFinishSeconds: Double
        /// Mean buckets already complete when `finish()` was called.
        public var bucketsDoneBeforeFinish: Double
        /// (compute + allReduce − overlapped) / allReduce, clamped to 0...1: the share of
        /// communication time that disappeared behind backward.
        public var hiddenFraction: Double
        /// exposedFinish / allReduce: the share of a blocking all-reduce's time still paid after
        /// backward (less sensitive to load noise than `hiddenFraction`, but it does not count the
        /// MPI work done inside `gradientsReady` calls during backward).
        public var exposedFraction: Double
        /// `hiddenFraction` computed from the fastest iteration of each measurement instead of
        /// the median (closer to the uncontended figure on a loaded machine).
        public var hiddenFractionBest: Double
        /// Fastest iteration of compute, all-reduce and overlapped step.
        public var bestSeconds: (compute: Double, allReduce: Double, overlapped: Double)

        public static func == (a: OverlapResult, b: OverlapResult) -> Bool {
            a.floats == b.floats && a.buckets == b.buckets && a.computeSeconds == b.computeSeconds
                && a.allReduceSeconds == b.allReduceSeconds && a.sequentialSeconds == b.sequentialSeconds
                && a.overlappedSeconds == b.overlappedSeconds && a.exposedFinishSeconds == b.exposedFinishSeconds
                && a.bucketsDoneBeforeFinish == b.bucketsDoneBeforeFinish && a.hiddenFraction == b.hiddenFraction
                && a.exposedFraction == b.exposedFraction && a.hiddenFractionBest == b.hiddenFractionBest
                && a.bestSeconds == b.bestSeconds
        }
    }

    /// Median of `xs` (0 when empty).
    public static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        if s.isEmpty { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Times `body` `iterations` times after `warmup` runs, each preceded by a barrier; returns the
    /// per-iteration max over ranks.
    public static func timed(_ comm: Communicator, iterations: Int, warmup: Int = 1,
                             _ body: () throws -> Void) throws -> [Double] {
        for _ in 0..<warmup {
            try comm.barrier()
            try body()
        }
        var times = [Double](repeating: 0, count: iterations)
        for i in 0..<iterations {
            try comm.barrier()
            let t0 = Communicator.now()
            try body()
            times[i] = Communicator.now() - t0
        }
        try comm.allReduce(&times, op: .max)
        return times
    }

    /// All-reduce time against message size (`sizes` in floats).
    public static func allReduceSweep(_ comm: Communicator, sizes: [Int], iterations: Int = 10) throws -> [AllReducePoint] {
        let maxCount = sizes.max() ?? 0
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, maxCount))
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: Swift.max(1, maxCount))
        var out: [AllReducePoint] = []
        for n in sizes {
            let times = try timed(comm, iterations: iterations, warmup: 2) { try comm.allReduceSum(buffer, count: n) }
            let med = median(times)
            let w = Double(comm.size)
            let bus = comm.size > 1 && med > 0 ? 2 * (w - 1) / w * Double(n * 4) / med / 1e9 : 0
            out.append(AllReducePoint(floats: n, seconds: med, minSeconds: times.min() ?? 0, busGBs: bus))
        }
        return out
    }

    /// Measures how much of the gradient all-reduce is hidden behind backward.
    ///
    /// - Parameter backward: runs one backward over `gradients`; writes each layer's gradients and
    ///   then calls `reducer?.gradientsReady(from: layerOffset)`; `nil` means no communication.
    public static func overlap(_ comm: Communicator, gradients: UnsafeMutablePointer<Float>, count: Int,
                               options: ReducerOptions, iterations: Int = 10,
                               backward: (GradientReducer?) throws -> Void) throws -> OverlapResult {
        var on = options
        on.overlap = true
        var off = options
        off.overlap = false
        let overlapped = GradientReducer(communicator: comm, gradients: gradients, count: count, options: on)
        let blocking = GradientReducer(communicator: comm, gradients: gradients, count: count, options: off)
        // The four measurements are interleaved per iteration so that a change in machine load
        // affects them alike (this benchmark often runs on shared machines).
        var compute = [Double](), reduce = [Double](), sequential = [Double](), over = [Double]()
        var finishTimes = [Double]()
        var done = 0.0
        func once(_ body: () throws -> Void) throws -> Double {
            try comm.barrier()
            let t0 = Communicator.now()
            try body()
            return Communicator.now() - t0
        }
        for iteration in 0...iterations {  // iteration 0 is a warmup
            let c = try once { try backward(nil) }
            let a = try once { try blocking.finish() }
            let s = try once {
                try backward(nil)
                try blocking.finish()
            }
            let o = try once {
                try backward(overlapped)
                try overlapped.finish()
            }
            if iteration > 0 {
                compute.append(c); reduce.append(a); sequential.append(s); over.append(o)
                finishTimes.append(overlapped.lastStep.finishSeconds)
                done += Double(overlapped.lastStep.bucketsDoneBeforeFinish)
            }
        }
        for i in 0..<4 {
            var xs = [compute, reduce, sequential, over][i]
            try comm.allReduce(&xs, op: .max)
            switch i {
            case 0: compute = xs
            case 1: reduce = xs
            case 2: sequential = xs
            default: over = xs
            }
        }
        try comm.allReduce(&finishTimes, op: .max)
        let tc = median(compute), ta = median(reduce), to = median(over), tf = median(finishTimes)
        // With one rank nothing is communicated: both fractions are 0 by definition.
        let bc = compute.min() ?? 0, ba = reduce.min() ?? 0, bo = over.min() ?? 0
        let communicates = comm.size > 1 && ta > 0 && ba > 0
        let hidden = communicates ? Swift.min(1, Swift.max(0, (tc + ta - to) / ta)) : 0
        return OverlapResult(floats: count, buckets: overlapped.buckets.count, computeSeconds: tc,
                             allReduceSeconds: ta, sequentialSeconds: median(sequential), overlappedSeconds: to,
                             exposedFinishSeconds: tf,
                             bucketsDoneBeforeFinish: done / Double(Swift.max(1, iterations)), hiddenFraction: hidden,
                             exposedFraction: communicates ? tf / ta : 0,
                             hiddenFractionBest: communicates ? Swift.min(1, Swift.max(0, (bc + ba - bo) / ba)) : 0,
                             bestSeconds: (bc, ba, bo))
    }

    /// Median step time (max over ranks) of `step`, which runs one full training step including
    /// `reducer.finish()`. Run it with 1 and with W ranks at the same per-rank batch: weak-scaling
    /// efficiency = time(1 rank) / time(W ranks).
    public static func stepTime(_ comm: Communicator, iterations: Int = 10, step: () throws -> Void) throws -> Double {
        median(try timed(comm, iterations: iterations, step))
    }
}

/// A stand-in backward pass: `layers` layers splitting the buffer evenly, each burning
/// `workPerLayer` units of cache-resident floating-point work (`work`), writing its gradients, then
/// reporting them ready (high offsets first, like a real backward).
public struct SimulatedBackward: Sendable {
    public let count: Int
    public let layers: Int
    public var workPerLayer: Int
    public init(count: Int, layers: Int, workPerLayer: Int) {
        precondition(layers >= 1)
        self.count = count
        self.layers = layers
        self.workPerLayer = workPerLayer
    }

    /// Offsets where layer `l` (0 = first in forward) starts.
    public func layerStart(_ l: Int) -> Int { count * l / layers }

    /// One unit of work: one multiply-add sweep over a caller-owned 4 KiB scratch buffer
    /// (`scratchCount` floats; it stays in L1, so it does not compete with MPI's copies for
    /// memory bandwidth). Writing caller memory keeps the optimizer from removing the work.
    @inline(never)
    public static func work(units: Int, scratch: UnsafeMutablePointer<Float>) {
        for u in 0..<units {
            let a: Float = u & 1 == 0 ? 0.999_999 : 1.000_001
            for i in 0..<scratchCount { scratch[i] = scratch[i] * a + 1e-7 }
        }
    }

    /// Floats `work` needs in its scratch buffer.
    public static let scratchCount = 1024

    /// Units of `work` that take about `seconds` on this core (best of a few runs).
    public static func calibrate(seconds: Double) -> Int {
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
        defer { scratch.deallocate() }
        scratch.initialize(repeating: 1, count: scratchCount)
        let probe = 20_000
        var best = Double.infinity
        for _ in 0..<5 {
            let t0 = Communicator.now()
            work(units: probe, scratch: scratch)
            best = Swift.min(best, Communicator.now() - t0)
        }
        return Swift.max(1, Int(seconds / (Swift.max(best, 1e-9) / Double(probe))))
    }

    /// Runs the backward over `gradients`, reporting each finished layer to `reducer`.
    /// - Parameter scratch: `scratchCount` floats of working memory.
    public func run(gradients: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                    reducer: GradientReducer?) throws {
        for l in stride(from: layers - 1, through: 0, by: -1) {
            let lo = layerStart(l), hi = layerStart(l + 1)
            Self.work(units: workPerLayer, scratch: scratch)
            let v = scratch[l % Self.scratchCount]
            for i in lo..<hi { gradients[i] = v * 1e-3 + Float(i & 15) }
            try reducer?.gradientsReady(from: lo)
        }
    }
}
