// Bucketed, overlapped gradient averaging over the flat gradient store.
//
// Layout (P = number of trainable floats): layers register parameters in forward order, so
// backward finishes gradients from high offsets toward low ones. Buckets are therefore cut from
// the END of the buffer: bucket 0 = grads[P - first ..< P] (small, so communication starts early),
// then buckets of `bucketFloats` going down to offset 0. The last bucket may be shorter.
//
//   offset 0                                                        P
//   | bucket n-1 | ... | bucket 2 | bucket 1         | bucket 0 (small) |
//                                  <- backward proceeds this way --
//
// Each bucket's MPI_Iallreduce (in place, sum) starts as soon as `gradientsReady(from:)` reports
// an offset at or below the bucket's lower bound. OpenMPI progresses non-blocking collectives
// only inside MPI calls, so every `gradientsReady` also tests the oldest in-flight buckets
// (MPI_Test), which drives the progress engine. `finish()` starts what is left, waits for all
// (polling with MPI_Test and sleeping, under the stall watchdog: Watchdog.swift) and multiplies
// by 1/worldSize. Buckets and requests are allocated once: a step allocates nothing.

import CMPI

/// Configuration of a `GradientReducer`.
public struct ReducerOptions: Sendable, Equatable {
    /// Floats per bucket after the first (default 1 Mi floats = 4 MiB).
    public var bucketFloats: Int
    /// Floats in the first bucket (the last layers' gradients), default 64 Ki floats = 256 KiB.
    public var firstBucketFloats: Int
    /// Overlap communication with backward. When false, `gradientsReady` does nothing and
    /// `finish()` runs one blocking all-reduce of the whole buffer (for comparison).
    public var overlap: Bool

    public init(bucketFloats: Int = 1 << 20, firstBucketFloats: Int = 1 << 16, overlap: Bool = true) {
        self.bucketFloats = bucketFloats
        self.firstBucketFloats = firstBucketFloats
        self.overlap = overlap
    }
}

/// Figures about the last completed step (for the benchmark and logs).
public struct ReducerStepStats: Sendable, Equatable {
    /// Buckets whose all-reduce had completed before `finish()` was called.
    public var bucketsDoneBeforeFinish = 0
    /// Buckets started before `finish()` was called.
    public var bucketsStartedBeforeFinish = 0
    /// Seconds spent inside `finish()` (waiting + averaging).
    public var finishSeconds = 0.0
}

/// Averages the gradient buffer across ranks every optimizer step, overlapping the all-reduce
/// with backward.
///
/// A training step (k micro-batches, k = 1 without accumulation):
///
///     store.zeroGrad()
///     for m in 0..<k {
///         reducer.beginMicroBatch(m, of: k)
///         forward(...)
///         for layer in layers.reversed() {
///             layer.backward(...)                               // adds into grads
///             try reducer.gradientsReady(from: layer.paramOffset) // grads[offset..<P] final
///         }
///     }
///     try reducer.finish()   // grads = mean over ranks of each rank's grads
///     optimizer.step()
///
/// Only the last micro-batch communicates; earlier ones just accumulate locally. For the mean
/// over the whole per-rank batch pass `scale: 1/k` to `finish()`, which applies it together with
/// the 1/worldSize factor once the sums are in: the gradients must not be scaled before (on the
/// last micro-batch some of them are in flight in MPI).
///
/// - Precondition: within a micro-batch, `gradientsReady` offsets never increase; on the last
///   micro-batch nothing may write grads[offset..<P] after `gradientsReady(from: offset)` until
///   `finish()` returns (those floats may be in flight in MPI).
/// - Note: an error thrown mid-step leaves requests in flight; the caller is expected to end the
///   job (`Communicator.abortJob`), not to retry the step.
public final class GradientReducer {
    /// The buckets, bucket 0 first (highest offsets).
    public let buckets: [Range<Int>]
    public let count: Int
    public let options: ReducerOptions
    public private(set) var lastStep = ReducerStepStats()

    private let communicator: Communicator
    private let grads: UnsafeMutablePointer<Float>
    private let requests: UnsafeMutablePointer<MPI_Request?>
    private var started = 0
    private var completed = 0
    private var readyFrom: Int
    private var microBatch = 0
    private var microBatches = 1

    /// - Parameters:
    ///   - gradients: the flat gradient buffer (P floats); it must outlive the reducer.
    ///   - count: P.
    /// - Precondition: bucket sizes positive and at most Int32.max.
    public init(communicator: Communicator, gradients: UnsafeMutablePointer<Float>, count: Int,
                options: ReducerOptions = ReducerOptions()) {
        precondition(count >= 0, "negative gradient count")
        precondition(options.bucketFloats > 0 && options.bucketFloats <= Int(Int32.max), "bucketFloats must be in 1...Int32.max")
        precondition(options.firstBucketFloats > 0 && options.firstBucketFloats <= Int(Int32.max), "firstBucketFloats must be in 1...Int32.max")
        self.communicator = communicator
        self.grads = gradients
        self.count = count
        self.options = options
        self.buckets = Self.layout(count: count, first: options.firstBucketFloats, size: options.bucketFloats)
        requests = .allocate(capacity: Swift.max(1, buckets.count))
        requests.initialize(repeating: kd_mpi_request_null(), count: Swift.max(1, buckets.count))
        readyFrom = count
    }

    deinit {
        // After a thrown error requests may still be in flight; the job is aborted in that case,
        // so the handles are simply dropped with the memory.
        requests.deallocate()
    }

    /// Bucket ranges from the end of a buffer of `count` floats: first bucket `first` floats,
    /// the rest `size` floats, the lowest one possibly shorter. Empty for `count == 0`.
    public static func layout(count: Int, first: Int, size: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var hi = count
        var width = first
        while hi > 0 {
            let lo = Swift.max(0, hi - width)
            out.append(lo..<hi)
            hi = lo
            width = size
        }
        return out
    }

    /// Whether the current micro-batch communicates (the last one, with more than one rank).
    private var communicating: Bool { communicator.size > 1 && microBatch == microBatches - 1 }

    /// Declares that micro-batch `index` of `count` starts. Call before its forward; without
    /// accumulation it may be omitted (every step is micro-batch 0 of 1).
    public func beginMicroBatch(_ index: Int, of count: Int) {
        precondition(count >= 1 && index >= 0 && index < count, "micro-batch \(index) of \(count)")
        precondition(index == 0 || (index == microBatch + 1 && count == microBatches),
                     "micro-batches must be declared in order: got \(index) of \(count) after \(microBatch) of \(microBatches)")
        precondition(started == 0, "beginMicroBatch while a step's all-reduce is in flight")
        microBatch = index
        microBatches = count
        readyFrom = self.count
    }

    /// Reports that backward has finished every gradient at `offset` and above
    /// (grads[offset..<P] are final for this step). Starts the all-reduce of each bucket that is
    /// now complete and tests the in-flight ones so MPI makes progress. Cheap enough to call
    /// after every layer.
    public func gradientsReady(from offset: Int) throws {
        precondition(offset >= 0 && offset <= count, "gradientsReady offset \(offset) outside 0...\(count)")
        precondition(offset <= readyFrom, "gradientsReady(from: \(offset)) after \(readyFrom): offsets must not increase")
        readyFrom = offset
        guard communicating && options.overlap else { return }
        while started < buckets.count && buckets[started].lowerBound >= offset {
            try start(started)
            started += 1
        }
        try progress()
    }

    /// Tests in-flight buckets in order (drives MPI progress). Call it from long stretches of
    /// compute that report no offset, if any.
    public func progress() throws {
        var flag: Int32 = 0
        while completed < started {
            try communicator.check(MPI_Test(requests + completed, &flag, kd_mpi_status_ignore()), "MPI_Test")
            if flag == 0 { break }
            completed += 1
        }
    }

    private func start(_ b: Int) throws {
        let range = buckets[b]
        try communicator.check(MPI_Iallreduce(kd_mpi_in_place(), grads + range.lowerBound, Int32(range.count),
                                              kd_mpi_float(), kd_mpi_sum(), communicator.comm, requests + b),
                               "MPI_Iallreduce")
    }

    /// Completes the step: starts every bucket not yet started, waits for all, and multiplies the
    /// gradients by `scale / worldSize`. Call once per optimizer step, after the last micro-batch's
    /// backward. Afterwards grads[i] holds `scale` x the mean over ranks and is bitwise identical on
    /// every rank.
    public func finish(scale extra: Float = 1) throws {
        precondition(microBatch == microBatches - 1,
                     "finish() after micro-batch \(microBatch) of \(microBatches): only the last micro-batch finishes a step")
        let t0 = Communicator.now()
        var stats = ReducerStepStats()
        defer {
            started = 0
            completed = 0
            readyFrom = count
            microBatch = 0
            microBatches = 1
        }
        let size = communicator.size
        if size > 1 {
            if options.overlap {
                try progress()
                stats.bucketsDoneBeforeFinish = completed
                stats.bucketsStartedBeforeFinish = started
                while started < buckets.count {
                    try start(started)
                    started += 1
                }
                // Waits without burning a core and under the stall deadline (Watchdog.swift);
                // counted as one collective on every rank even when all buckets are done.
                try communicator.wait(requests + completed, count: started - completed, what: .gradientAllReduce,
                                      call: "MPI_Waitall")
                completed = started
            } else {
                try communicator.allReduceSum(grads, count: count, what: .gradientAllReduce)
            }
        }
        if size > 1 || extra != 1 {
            let scale = extra / Float(size)
            for i in 0..<count { grads[i] *= scale }
        }
        stats.finishSeconds = Communicator.now() - t0
        lastStep = stats
    }
}
