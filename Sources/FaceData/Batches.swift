// Batches for the trainer: aligned high-quality (teacher) and degraded low-quality (student) views.
//
// Legend: N samples in the batch, C = 3 channels, H, W the network input size. `hr` and `lr` are
// (N, C, H, W) row-major floats normalized as (x/255 - 0.5) / 0.5; `labels` (N) Int32; `factors` (N).
//
// Determinism: sample k of a step gets its own generator Rng(seed, epoch, index) where index is the
// sample's index in the data set. Flip, shift, down-sampling factor, blur, noise and JPEG quality are
// drawn from it, so a batch's content depends only on (seed, epoch, indices), never on the thread count,
// on the rank that loads it or on what was loaded before.
import Dispatch
import Foundation

/// Everything that decides how samples become batches.
public struct BatchConfig: Sendable, Equatable {
    /// Network input size (56x56 small preset, 112x112 paper preset).
    public var height: Int, width: Int
    /// Kernel that brings source images to the input size.
    public var resizeKernel: ResizeKernel
    public var augmentation: Augmentation
    public var degradation: Degradation
    public var seed: UInt64
    /// Worker threads that decode and degrade samples (the calls split each batch into `threads` parts).
    public var threads: Int
    public init(height: Int = 56, width: Int = 56, resizeKernel: ResizeKernel = .bilinear,
                augmentation: Augmentation = Augmentation(flip: true, maxShift: 2),
                degradation: Degradation = Degradation(), seed: UInt64 = 1, threads: Int = 2) {
        self.height = height; self.width = width; self.resizeKernel = resizeKernel
        self.augmentation = augmentation; self.degradation = degradation; self.seed = seed; self.threads = threads
    }
    public func validate() throws {
        guard (8...1024).contains(height), (8...1024).contains(width) else { throw DataError(.spec, "input size", "\(width)x\(height) must be within 8...1024") }
        guard threads >= 1 else { throw DataError(.spec, "threads", "must be at least 1") }
        guard augmentation.maxShift >= 0, augmentation.maxShift < min(height, width) / 2 else { throw DataError(.spec, "augmentation.maxShift", "must be in 0..<\(min(height, width) / 2)") }
        try degradation.validate()
    }
}

/// One batch's storage, allocated once for `capacity` samples and reused.
public final class Batch: @unchecked Sendable {
    // @unchecked: the buffers are written by producer threads only while the batch is owned by the
    // producer (before `Prefetcher.next` hands it out) and read by the trainer afterwards; ownership
    // passes through the prefetcher's lock, which orders the accesses.
    public let capacity: Int, height: Int, width: Int
    /// Samples in this batch (<= capacity).
    public internal(set) var count: Int = 0
    /// Teacher view (N, 3, H, W), normalized.
    public let hr: UnsafeMutableBufferPointer<Float>
    /// Student view (N, 3, H, W), normalized, degraded at `factors[k]`.
    public let lr: UnsafeMutableBufferPointer<Float>
    public internal(set) var labels: [Int32]
    public internal(set) var factors: [Float]
    /// Data-set indices of the samples, and the epoch they were drawn for.
    public internal(set) var indices: [Int]
    public internal(set) var epoch: Int = 0

    public init(capacity: Int, height: Int, width: Int) {
        self.capacity = capacity; self.height = height; self.width = width
        let n = capacity * 3 * height * width
        hr = .allocate(capacity: n); hr.initialize(repeating: 0)
        lr = .allocate(capacity: n); lr.initialize(repeating: 0)
        labels = [Int32](repeating: 0, count: capacity)
        factors = [Float](repeating: 1, count: capacity)
        indices = [Int](repeating: 0, count: capacity)
    }
    deinit { hr.deallocate(); lr.deallocate() }
    /// Floats per sample view (3*H*W).
    public var sampleSize: Int { 3 * height * width }
}

/// A small lock-protected slot for the first error thrown by worker threads.
final class ErrorSlot: @unchecked Sendable {
    private let lock = NSLock()
    private var error: Error?
    func set(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
    func get() -> Error? { lock.lock(); defer { lock.unlock() }; return error }
}

/// Turns lists of sample indices into batches, using `config.threads` threads.
public final class BatchProducer: @unchecked Sendable {
    // @unchecked: `pipelines[t]` is used only by part t of a `fill` call, and `fill` is not reentrant
    // (the lock serializes callers), so no pipeline is ever shared between threads.
    public let source: any TrainingSet
    public let config: BatchConfig
    private let pipelines: [SamplePipeline]
    private let lock = NSLock()

    public init(source: any TrainingSet, config: BatchConfig) throws {
        try config.validate()
        guard source.count > 0 else { throw DataError(.empty, source.summary, "the training set has no samples") }
        self.source = source; self.config = config
        pipelines = (0..<config.threads).map { _ in SamplePipeline(height: config.height, width: config.width, resizeKernel: config.resizeKernel) }
    }

    /// Fills `batch` with the samples `indices` for `epoch`.
    /// - Throws: the first `DataError` of any sample (naming its file/record), or `.spec` for an index out of range.
    /// - Precondition: indices.count <= batch.capacity and the batch has this producer's input size.
    public func fill(_ batch: Batch, indices: [Int], epoch: Int) throws {
        precondition(indices.count <= batch.capacity && batch.height == config.height && batch.width == config.width)
        lock.lock(); defer { lock.unlock() }
        let n = indices.count, parts = min(config.threads, max(n, 1))
        let errors = ErrorSlot()
        let d = config.degradation, a = config.augmentation, seed = config.seed, src = source, ss = batch.sampleSize
        nonisolated(unsafe) let hr = batch.hr.baseAddress!, lr = batch.lr.baseAddress!  // disjoint slices per sample
        var labels = [Int32](repeating: 0, count: n), factors = [Float](repeating: 1, count: n)
        labels.withUnsafeMutableBufferPointer { lb in
            factors.withUnsafeMutableBufferPointer { fb in
                nonisolated(unsafe) let lbp = lb, fbp = fb
                nonisolated(unsafe) let pipes = pipelines   // part t uses pipes[t] only
                DispatchQueue.concurrentPerform(iterations: parts) { part in
                    let pipe = pipes[part]
                    for k in stride(from: part, to: n, by: parts) {
                        let idx = indices[k]
                        do {
                            guard idx >= 0, idx < src.count else { throw DataError(.spec, "sample index", "\(idx) outside 0..<\(src.count)") }
                            let s = try src.sample(idx)
                            var rng = Rng(seed: seed, 0xBA7C, UInt64(epoch), UInt64(idx))
                            let f = d.factors[rng.int(d.factors.count)]
                            pipe.trainingViews(s.image, factor: f, augmentation: a, degradation: d, rng: &rng,
                                               hr: hr + k * ss, lr: lr + k * ss)
                            lbp[k] = Int32(s.label); fbp[k] = f
                        } catch { errors.set(error) }
                    }
                }
            }
        }
        if let e = errors.get() { throw e }
        batch.count = n; batch.epoch = epoch
        for k in 0..<n { batch.labels[k] = labels[k]; batch.factors[k] = factors[k]; batch.indices[k] = indices[k] }
    }
}

/// Background loading with prefetch. Feed it the index lists of upcoming steps with `enqueue`; `next`
/// returns them, in order, as filled batches. A batch returned by `next` stays valid until the
/// following call to `next` (its buffers are then reused), so steady state allocates nothing.
/// The background thread ends on `stop()` or when the prefetcher is released.
public final class Prefetcher: @unchecked Sendable {
    // @unchecked: all state lives in `core`, guarded by its condition variable.
    private let core: PrefetchCore
    public let batchCapacity: Int

    /// - Parameters: depth: batches prepared ahead of the consumer (>= 1); batchCapacity: largest step size.
    public init(producer: BatchProducer, batchCapacity: Int, depth: Int = 2) {
        self.batchCapacity = batchCapacity
        core = PrefetchCore(producer: producer, batches: (0..<(max(depth, 1) + 1)).map { _ in
            Batch(capacity: batchCapacity, height: producer.config.height, width: producer.config.width) })
        let c = core
        let t = Thread { c.loop() }          // the thread holds the core, not the prefetcher
        t.name = "kdtrain.prefetch"
        t.start()
    }

    deinit { core.stop() }

    /// Schedules one step. - Precondition: indices.count <= batchCapacity.
    public func enqueue(indices: [Int], epoch: Int) {
        precondition(indices.count <= batchCapacity, "Prefetcher: step larger than batchCapacity")
        core.enqueue(indices, epoch)
    }

    /// Steps scheduled and not yet returned by `next`.
    public var outstanding: Int { core.outstanding }

    /// The next scheduled step's batch (blocks until it is ready). Rethrows a loading error of that step;
    /// the prefetcher keeps working afterwards. - Precondition: a step was enqueued and not yet returned.
    public func next() throws -> Batch { try core.next() }

    /// Stops the background thread (pending steps are dropped). Idempotent.
    public func stop() { core.stop() }
}

final class PrefetchCore: @unchecked Sendable {
    // @unchecked: every mutable field is read and written with `cond` locked.
    private let producer: BatchProducer
    private let cond = NSCondition()
    private var pending: [(indices: [Int], epoch: Int)] = []
    private var ready: [Result<Batch, Error>] = []
    private var free: [Batch]
    private var handedOut: Batch?
    private var stopped = false
    private var inFlight = false

    init(producer: BatchProducer, batches: [Batch]) { self.producer = producer; free = batches }

    func enqueue(_ indices: [Int], _ epoch: Int) { cond.lock(); pending.append((indices, epoch)); cond.broadcast(); cond.unlock() }

    var outstanding: Int { cond.lock(); defer { cond.unlock() }; return pending.count + ready.count + (inFlight ? 1 : 0) }

    func next() throws -> Batch {
        cond.lock(); defer { cond.unlock() }
        if let h = handedOut { free.append(h); handedOut = nil; cond.broadcast() }
        precondition(!(pending.isEmpty && ready.isEmpty && !inFlight), "Prefetcher.next: no step enqueued")
        while ready.isEmpty { cond.wait() }
        switch ready.removeFirst() {
        case .success(let b): handedOut = b; return b
        case .failure(let e): throw e
        }
    }

    func stop() { cond.lock(); stopped = true; cond.broadcast(); cond.unlock() }

    func loop() {
        while true {
            cond.lock()
            while !stopped && (pending.isEmpty || free.isEmpty) { cond.wait() }
            if stopped { cond.unlock(); return }
            let job = pending.removeFirst(), b = free.removeLast()
            inFlight = true
            cond.unlock()
            let r: Result<Batch, Error>
            do { try producer.fill(b, indices: job.indices, epoch: job.epoch); r = .success(b) } catch { r = .failure(error) }
            cond.lock()
            inFlight = false
            if case .failure = r { free.append(b) }
            ready.append(r); cond.broadcast(); cond.unlock()
        }
    }
}

/// Loader throughput, for `kdtrain bench`.
public enum LoaderBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public var imagesPerSecond: Double
        public var batches: Int, batchSize: Int, threads: Int
        public var seconds: Double
        public var description: String {
            String(format: "loader: %.0f images/s (%d batches of %d, %d threads, %.2f s)", imagesPerSecond, batches, batchSize, threads, seconds)
        }
    }
    /// Runs the prefetching loader on `source` with `config` for about `seconds`, consuming batches as fast
    /// as they come (the consumer does nothing), and reports the rate. Indices are a seeded shuffle.
    public static func run(source: any TrainingSet, config: BatchConfig, batch: Int, seconds: Double) throws -> Result {
        let producer = try BatchProducer(source: source, config: config)
        let pf = Prefetcher(producer: producer, batchCapacity: batch, depth: 2)
        defer { pf.stop() }
        var rng = Rng(seed: config.seed, 0xBE4C)
        func step() -> [Int] { (0..<batch).map { _ in rng.int(source.count) } }
        for _ in 0..<3 { pf.enqueue(indices: step(), epoch: 0) }
        _ = try pf.next()                                  // warm-up
        let t0 = Date(); var n = 0
        while Date().timeIntervalSince(t0) < seconds {
            pf.enqueue(indices: step(), epoch: 0)
            _ = try pf.next(); n += 1
        }
        let dt = Date().timeIntervalSince(t0)
        return Result(imagesPerSecond: Double(n * batch) / dt, batches: n, batchSize: batch, threads: config.threads, seconds: dt)
    }
}
