// `bench` mode: the distributed figures of `kdtrain bench`, with a simulated backward until the
// real one can be passed in (DistBenchmark takes the backward as a closure).

import Dist
import DistBench
import Foundation

func runBench(_ comm: Communicator, _ options: DistHarness.Bench) throws {
    let count = options.params
    let layers = options.layers
    let backwardMs = options.backwardMs
    let forwardMs = options.forwardMs
    let iterations = options.iterations
    let maxFloats = options.maxFloats
    let bucket = options.bucket
    let first = options.firstBucket

    say(comm, "bench ranks=\(comm.size) localRanks=\(comm.localSize) threads/rank=\(comm.recommendedThreads()) (simulated compute is single-threaded)")
    var sizes: [Int] = []
    var s = 1024
    while s <= maxFloats { sizes.append(s); s *= 4 }
    let sweep = try DistBenchmark.allReduceSweep(comm, sizes: sizes, iterations: iterations)
    say(comm, "allreduce floats bytes median_ms min_ms busbw_GB/s")
    for point in sweep {
        say(comm, String(format: "allreduce %d %d %.3f %.3f %.2f", point.floats, point.bytes,
                         point.seconds * 1e3, point.minSeconds * 1e3, point.busGBs))
    }

    // Same compute on every rank: rank 0 calibrates, everyone uses its figure.
    // --layer-units/--forward-units fix the work exactly (comparable across runs with 1 and 2
    // ranks on a loaded machine); otherwise rank 0 calibrates against the requested times.
    let layerUnits = options.layerUnits, forwardUnits = options.forwardUnits
    var units = [Int64(layerUnits > 0 ? layerUnits : SimulatedBackward.calibrate(seconds: backwardMs / 1e3 / Double(layers))),
                 Int64(forwardUnits > 0 ? forwardUnits : SimulatedBackward.calibrate(seconds: forwardMs / 1e3))]
    try units.withUnsafeMutableBytes { try comm.broadcast(bytes: $0.baseAddress!, count: 16, root: 0) }
    say(comm, "calibrated work units: \(units[0]) per layer, \(units[1]) per forward")
    let backward = SimulatedBackward(count: count, layers: layers, workPerLayer: Int(units[0]))
    let grads = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
    defer { grads.deallocate() }
    grads.initialize(repeating: 0, count: max(1, count))
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: SimulatedBackward.scratchCount)
    defer { scratch.deallocate() }
    scratch.initialize(repeating: 1, count: SimulatedBackward.scratchCount)
    let reducerOptions = ReducerOptions(bucketFloats: bucket, firstBucketFloats: first, overlap: true)
    let o = try DistBenchmark.overlap(comm, gradients: grads, count: count, options: reducerOptions,
                                      iterations: iterations) { reducer in
        try backward.run(gradients: grads, scratch: scratch, reducer: reducer)
    }
    say(comm, String(format: "overlap params=%d buckets=%d layers=%d backward_ms=%.1f allreduce_ms=%.1f sequential_ms=%.1f overlapped_ms=%.1f exposed_finish_ms=%.1f buckets_done_before_finish=%.1f hidden_fraction=%.2f exposed_fraction=%.2f | best: backward_ms=%.1f allreduce_ms=%.1f overlapped_ms=%.1f hidden_fraction=%.2f",
                     o.floats, o.buckets, layers, o.computeSeconds * 1e3, o.allReduceSeconds * 1e3, o.sequentialSeconds * 1e3,
                     o.overlappedSeconds * 1e3, o.exposedFinishSeconds * 1e3, o.bucketsDoneBeforeFinish, o.hiddenFraction, o.exposedFraction,
                     o.bestSeconds.compute * 1e3, o.bestSeconds.allReduce * 1e3, o.bestSeconds.overlapped * 1e3, o.hiddenFractionBest))

    // Weak scaling: the same per-rank work at any world size (run with -n 1 and -n 2).
    let reducer = GradientReducer(communicator: comm, gradients: grads, count: count, options: reducerOptions)
    let steps = try DistBenchmark.timed(comm, iterations: iterations) {
        SimulatedBackward.work(units: Int(units[1]), scratch: scratch)   // forward
        try backward.run(gradients: grads, scratch: scratch, reducer: reducer)
        try reducer.finish()
    }
    say(comm, String(format: "step ranks=%d params=%d step_ms=%.1f best_step_ms=%.1f (forward %.0f ms + backward %.0f ms simulated per rank)",
                     comm.size, count, DistBenchmark.median(steps) * 1e3, (steps.min() ?? 0) * 1e3, forwardMs, backwardMs))
}
