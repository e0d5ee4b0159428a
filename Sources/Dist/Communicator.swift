// The MPI context: initialization, the private communicator, node topology, blocking collectives,
// replica checks and job abort. This file, GradientReducer.swift and Watchdog.swift are the only
// places in kdtrain that call MPI (Horovod's habit: one context owns the communicator; every return code is
// checked and turned into a thrown `DistError` carrying MPI's error string).
//
// One code path serves `mpirun -n N kdtrain`, `srun --mpi=pmix kdtrain` and `kdtrain` started
// alone: without a launcher MPI initializes as a singleton and the world has one rank; every
// collective then returns at once with the local data.
//
// Failure policy: the private communicator uses MPI_ERRORS_RETURN, so an MPI error is thrown as
// a Swift error on the rank that saw it. An error on one rank must not leave the others waiting in
// a collective: the Launcher's top level catches every error and, when `size > 1`, calls
// `Communicator.abortJob(message:code:)`, which prints "rank R: message" to stderr and calls
// MPI_Abort, which makes mpirun/srun kill every rank within seconds and exit non-zero.
//
// Waiting: every collective below is blocking for its caller but runs as the non-blocking MPI call
// (MPI_Ibarrier, MPI_Ibcast, MPI_Iallreduce, ...) completed by `wait(_:count:what:)`, which polls
// with MPI_Test and sleeps between polls once a wait is longer than a millisecond, so a rank
// waiting for a slow or stopped peer does not burn a core; past `stallTimeout` seconds it ends the
// job naming the rank that did not arrive (Watchdog.swift). The reduced values are those of the
// corresponding blocking call's definition (in place, same datatype and operation).

import CMPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import KDCore

/// The thread level Dist asks MPI for. Only the main thread calls MPI (`funneled`), or several
/// threads call it one at a time (`serialized`).
public enum ThreadLevel: Sendable {
    case funneled
    case serialized

    var mpiValue: Int32 {
        switch self {
        case .funneled: return kd_mpi_thread_funneled()
        case .serialized: return kd_mpi_thread_serialized()
        }
    }
}

/// Element-wise reduction for metric reductions.
public enum ReduceOp: Sendable {
    case sum, max, min

    var mpiValue: MPI_Op {
        switch self {
        case .sum: return kd_mpi_sum()
        case .max: return kd_mpi_max()
        case .min: return kd_mpi_min()
        }
    }
}

/// The MPI string for an error code.
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(kd_mpi_max_error_string()) + 1)
    var length: Int32 = 0
    _ = MPI_Error_string(code, &buffer, &length)
    let bytes = buffer.prefix(Int(max(0, length))).map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes one line to stderr without buffering (stderr the C global is not concurrency-safe).
func writeStderr(_ line: String) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    text.utf8CString.withUnsafeBufferPointer { buffer in
        var offset = 0
        let total = buffer.count - 1
        while offset < total {
            let n = write(2, buffer.baseAddress! + offset, total - offset)
            if n <= 0 { break }
            offset += n
        }
    }
}

/// The distributed context: a private duplicate of MPI_COMM_WORLD and the collectives kdtrain
/// needs. Create one per process, on the thread that will call MPI; call `finalize()` at exit.
///
/// Not thread-safe: with `.funneled` only the creating thread may call it; with `.serialized`
/// callers must serialize.
public final class Communicator {
    /// This process's rank in the world, 0..<size.
    public let rank: Int
    /// Number of ranks in the job (1 when started without a launcher).
    public let size: Int
    /// Rank among the ranks on this node (MPI_Comm_split_type SHARED).
    public let localRank: Int
    /// Number of ranks on this node.
    public let localSize: Int
    /// The thread level MPI granted (at least the one requested).
    public let providedThreadLevel: Int32
    /// The private duplicate of MPI_COMM_WORLD (MPI_ERRORS_RETURN).
    let comm: MPI_Comm
    private let initializedMPI: Bool
    public private(set) var isFinalized = false

    /// Seconds one collective may wait before the job is ended as stalled, naming the ranks that
    /// did not reach it (0 = wait forever; waiting never burns a core either way). Must be the
    /// same on every rank. The Launcher sets it from `dist.stallTimeout`.
    public var stallTimeout: Double = 0
    /// The training step the caller is at, for the stall report (-1: not training).
    public var progressStep: Int = -1
    /// Collectives waited for so far on this communicator (the same on every rank).
    public private(set) var collectiveCount: Int64 = 0
    /// The watchdog's side channel (nil with one rank).
    private var stallChannel: StallChannel?
    /// The report of a stall this rank declared: every later wait throws it at once.
    private var stallReport: String?
    /// Tight MPI_Test polling for this long before sleeping between polls.
    static let spinSeconds = 0.001
    /// Longest sleep between two polls.
    static let maxSleepNanoseconds = 1_000_000

    /// Initializes MPI (unless already initialized), checks the thread level, duplicates
    /// MPI_COMM_WORLD and reads the node topology.
    ///
    /// - Throws: `DistError.threadLevel` when MPI cannot provide `threadLevel`;
    ///   `DistError.mpi` on any MPI failure; `DistError.invalidConfiguration` after MPI_Finalize.
    public init(threadLevel: ThreadLevel = .funneled) throws {
        var initialized: Int32 = 0
        var finalized: Int32 = 0
        _ = MPI_Initialized(&initialized)
        _ = MPI_Finalized(&finalized)
        if finalized != 0 {
            throw DistError.invalidConfiguration("MPI was already finalized; a Communicator cannot be created again")
        }
        var provided: Int32 = 0
        if initialized == 0 {
            let rc = MPI_Init_thread(nil, nil, threadLevel.mpiValue, &provided)
            if rc != kd_mpi_success() {
                throw DistError.mpi(rank: 0, call: "MPI_Init_thread", code: rc, message: mpiErrorString(rc))
            }
            initializedMPI = true
        } else {
            _ = MPI_Query_thread(&provided)
            initializedMPI = false
        }
        let world = kd_mpi_comm_world()
        var worldRank: Int32 = 0
        _ = MPI_Comm_rank(world, &worldRank)
        func check(_ rc: Int32, _ call: String) throws {
            if rc != kd_mpi_success() {
                throw DistError.mpi(rank: Int(worldRank), call: call, code: rc, message: mpiErrorString(rc))
            }
        }
        if provided < threadLevel.mpiValue {
            throw DistError.threadLevel(rank: Int(worldRank), requested: threadLevel.mpiValue, provided: provided)
        }
        providedThreadLevel = provided
        // Errors on the world communicator return too (the duplicate inherits the handler).
        try check(MPI_Comm_set_errhandler(world, kd_mpi_errors_return()), "MPI_Comm_set_errhandler")
        var dup: MPI_Comm? = nil
        try check(MPI_Comm_dup(world, &dup), "MPI_Comm_dup")
        guard let dup else {
            throw DistError.mpi(rank: Int(worldRank), call: "MPI_Comm_dup", code: -1, message: "returned a null communicator")
        }
        try check(MPI_Comm_set_errhandler(dup, kd_mpi_errors_return()), "MPI_Comm_set_errhandler")
        comm = dup
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(dup, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(dup, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        var local: MPI_Comm? = nil
        try check(MPI_Comm_split_type(dup, kd_mpi_comm_type_shared(), r, kd_mpi_info_null(), &local),
                  "MPI_Comm_split_type")
        var lr: Int32 = 0, ls: Int32 = 1
        try check(MPI_Comm_rank(local, &lr), "MPI_Comm_rank(node)")
        try check(MPI_Comm_size(local, &ls), "MPI_Comm_size(node)")
        try check(MPI_Comm_free(&local), "MPI_Comm_free(node)")
        localRank = Int(lr)
        localSize = Int(ls)
        if size > 1 { stallChannel = try StallChannel(parent: dup, rank: rank, size: size) }
    }

    /// Frees the private communicator and, if this instance initialized MPI, calls MPI_Finalize.
    /// Collective. Idempotent.
    public func finalize() throws {
        if isFinalized { return }
        isFinalized = true
        try stallChannel?.free()
        stallChannel = nil
        var c: MPI_Comm? = comm
        try check(MPI_Comm_free(&c), "MPI_Comm_free")
        if initializedMPI {
            try check(MPI_Finalize(), "MPI_Finalize")
        }
    }

    /// Whether this is rank 0 (the rank that logs and writes checkpoints).
    public var isRoot: Bool { rank == 0 }

    /// Throws `DistError.mpi` naming this rank and the call when `rc` is not MPI_SUCCESS.
    @inline(__always)
    func check(_ rc: Int32, _ call: StaticString) throws {
        if rc != kd_mpi_success() {
            throw DistError.mpi(rank: rank, call: "\(call)", code: rc, message: mpiErrorString(rc))
        }
    }

    @inline(__always)
    func precheck() {
        precondition(!isFinalized, "Communicator used after finalize()")
    }

    /// Largest element count passed to one MPI call; larger buffers are split (MPI counts are Int32).
    static let maxChunk = 1 << 30

    // MARK: Barrier and broadcast

    /// Blocks until every rank has entered the barrier.
    public func barrier(_ what: Collective = .barrier) throws {
        precheck()
        if size == 1 { return }
        var request: MPI_Request? = kd_mpi_request_null()
        try check(MPI_Ibarrier(comm, &request), "MPI_Ibarrier")
        try wait(&request, count: 1, what: what, call: "MPI_Barrier")
    }

    // MARK: Waiting (the watchdog)

    /// Waits for `count` requests of one collective: MPI_Test in a tight loop for
    /// `spinSeconds`, then between sleeps growing to `maxSleepNanoseconds`; after `stallTimeout`
    /// seconds, or when another rank reports a stall, it declares the stall (see Watchdog.swift).
    /// Counts one collective even when `count` is 0, so every rank numbers collectives alike.
    /// Allocates nothing.
    /// An error completing a request is reported as `call` failing (the blocking call's name).
    func wait(_ requests: UnsafeMutablePointer<MPI_Request?>, count: Int, what: Collective,
              call: StaticString) throws {
        collectiveCount += 1
        if let stallReport { throw DistError.stalled(stallReport) }
        // Requests are tested in order with MPI_Test (MPI_Testall would hide an error's code
        // behind MPI_ERR_IN_STATUS); `done` of them have completed.
        var done = 0
        var flag: Int32 = 0
        while done < count {
            try check(MPI_Test(requests + done, &flag, kd_mpi_status_ignore()), call)
            if flag == 0 { break }
            done += 1
        }
        if done == count { return }
        let start = MPI_Wtime()
        var sleep = 0
        while true {
            if sleep == 0 {
                if MPI_Wtime() - start >= Self.spinSeconds { sleep = 20_000 }
            } else {
                var ts = timespec(tv_sec: 0, tv_nsec: sleep)
                _ = nanosleep(&ts, nil)
                sleep = Swift.min(2 * sleep, Self.maxSleepNanoseconds)
            }
            while done < count {
                try check(MPI_Test(requests + done, &flag, kd_mpi_status_ignore()), call)
                if flag == 0 { break }
                done += 1
            }
            if done == count { return }
            if sleep > 0, let channel = stallChannel {
                let waited = MPI_Wtime() - start
                let timedOut = stallTimeout > 0 && waited >= stallTimeout
                if timedOut || channel.poll() {
                    try declareStall(what, waited: waited, timedOut: timedOut, channel: channel)
                }
            }
        }
    }

    /// Tells every rank where this one waits, collects their positions for a grace period (or
    /// until all have reported), and throws the stall report on the lowest-numbered rank that
    /// reached the deadline itself; the other ranks print where they wait, wait for that rank to
    /// end the job, and throw the report themselves only if it does not.
    private func declareStall(_ what: Collective, waited: Double, timedOut: Bool, channel: StallChannel) throws -> Never {
        let me = StallPosition(rank: rank, sequence: collectiveCount, collective: what, step: Int64(progressStep),
                               waited: waited, timedOut: timedOut)
        channel.send(me)
        let grace = Swift.min(10, Swift.max(2, stallTimeout))
        let t0 = MPI_Wtime()
        while MPI_Wtime() - t0 < grace {
            channel.poll()
            if (0..<size).allSatisfy({ $0 == rank || channel.received[$0] != nil }) { break }
            usleep(2_000)
        }
        let report = stallMessage(me: me, known: channel.received, size: size, timeout: stallTimeout)
        stallReport = report
        // The lowest rank that reached the deadline, or had waited at least half of it when it
        // answered (ranks that time out within moments of each other), reports. A rank that came
        // late to the collective (a stopped rank that mpirun resumes while it kills the job) never
        // does, unless the reporter fails to end the job.
        func eligible(_ p: StallPosition) -> Bool { p.timedOut || (stallTimeout > 0 && p.waited >= stallTimeout / 2) }
        let reporter = ([me] + channel.received.compactMap { $0 }).filter(eligible).map(\.rank).min()
        if rank != reporter {
            writeStderr("rank \(rank): waits in \(me.what) since \(String(format: "%.1f", waited)) s; "
                        + (reporter.map { "rank \($0) reports the stall" } ?? "no rank reports the stall"))
            let t1 = MPI_Wtime()
            while MPI_Wtime() - t1 < grace + 10 { usleep(20_000) }
        }
        throw DistError.stalled(report)
    }

    /// Broadcasts `count` elements of `type` (each `stride` bytes) from `root`, in chunks.
    private func broadcastRaw(_ p: UnsafeMutableRawPointer?, count: Int, stride: Int, type: MPI_Datatype,
                              root: Int, what: Collective = .broadcast) throws {
        precheck()
        precondition(count >= 0, "negative count")
        precondition(root >= 0 && root < size, "broadcast root \(root) outside 0..<\(size)")
        if count == 0 || size == 1 { return }
        var done = 0
        while done < count {
            let n = Swift.min(Self.maxChunk, count - done)
            var request: MPI_Request? = kd_mpi_request_null()
            try check(MPI_Ibcast(p! + done * stride, Int32(n), type, Int32(root), comm, &request), "MPI_Bcast")
            try wait(&request, count: 1, what: what, call: "MPI_Bcast")
            done += n
        }
    }

    /// Overwrites `p[0..<count]` on every rank with rank `root`'s values (parameters, momentum).
    public func broadcast(_ p: UnsafeMutablePointer<Float>, count: Int, root: Int = 0) throws {
        try broadcastRaw(UnsafeMutableRawPointer(p), count: count, stride: 4, type: kd_mpi_float(), root: root)
    }

    /// Overwrites `p[0..<count]` on every rank with rank `root`'s values.
    public func broadcast(_ p: UnsafeMutablePointer<Double>, count: Int, root: Int = 0) throws {
        try broadcastRaw(UnsafeMutableRawPointer(p), count: count, stride: 8, type: kd_mpi_double(), root: root)
    }

    /// Overwrites `count` bytes at `p` on every rank with rank `root`'s bytes.
    public func broadcast(bytes p: UnsafeMutableRawPointer, count: Int, root: Int = 0) throws {
        try broadcastRaw(p, count: count, stride: 1, type: kd_mpi_byte(), root: root)
    }

    /// Returns rank `root`'s byte array on every rank (length sent first; other ranks' input is
    /// ignored). For small metadata: a resumed step counter, a serialized configuration.
    public func broadcast(_ bytes: [UInt8], root: Int = 0) throws -> [UInt8] {
        var length = [Int64(bytes.count)]
        try length.withUnsafeMutableBytes {
            try broadcastRaw($0.baseAddress!, count: 1, stride: 8, type: kd_mpi_int64(), root: root)
        }
        var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length[0]))
        try out.withUnsafeMutableBytes { buffer in
            if buffer.count > 0 {
                try broadcastRaw(buffer.baseAddress!, count: buffer.count, stride: 1, type: kd_mpi_byte(), root: root)
            }
        }
        return out
    }

    // MARK: All-reduce

    private func allReduceRaw(_ p: UnsafeMutableRawPointer?, count: Int, stride: Int, type: MPI_Datatype,
                              op: MPI_Op, what: Collective) throws {
        precheck()
        precondition(count >= 0, "negative count")
        if count == 0 || size == 1 { return }
        var done = 0
        while done < count {
            let n = Swift.min(Self.maxChunk, count - done)
            var request: MPI_Request? = kd_mpi_request_null()
            try check(MPI_Iallreduce(kd_mpi_in_place(), p! + done * stride, Int32(n), type, op, comm, &request),
                      "MPI_Allreduce")
            try wait(&request, count: 1, what: what, call: "MPI_Allreduce")
            done += n
        }
    }

    /// In-place sum across ranks (blocking). The primitive behind synchronized batch norm:
    /// per-channel sums of x and x² in forward, of dy and dy·x̂ in backward.
    public func allReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, what: Collective = .allReduce) throws {
        try allReduceRaw(UnsafeMutableRawPointer(p), count: count, stride: 4, type: kd_mpi_float(), op: kd_mpi_sum(), what: what)
    }

    /// In-place sum across ranks (blocking), in double precision.
    public func allReduceSum(_ p: UnsafeMutablePointer<Double>, count: Int, what: Collective = .allReduce) throws {
        try allReduceRaw(UnsafeMutableRawPointer(p), count: count, stride: 8, type: kd_mpi_double(), op: kd_mpi_sum(), what: what)
    }

    /// In-place mean across ranks: used on the batch-norm running statistics (`buffers`, Q floats)
    /// after every step (and after re-estimation), so replicas stay identical in every tensor and
    /// the saved model does not depend on which rank saved it.
    public func allReduceMean(_ p: UnsafeMutablePointer<Float>, count: Int, what: Collective = .allReduce) throws {
        try allReduceSum(p, count: count, what: what)
        if size > 1 {
            let scale = 1 / Float(size)
            for i in 0..<count { p[i] *= scale }
        }
    }

    /// Element-wise reduction of a small vector of metrics (loss components, counts, timings).
    public func allReduce(_ values: inout [Double], op: ReduceOp, what: Collective = .metrics) throws {
        let n = values.count
        try values.withUnsafeMutableBytes {
            try allReduceRaw($0.baseAddress, count: n, stride: 8, type: kd_mpi_double(), op: op.mpiValue, what: what)
        }
    }

    /// Sum of `value` over all ranks, on every rank.
    public func sum(_ value: Double) throws -> Double {
        var v = [value]
        try allReduce(&v, op: .sum)
        return v[0]
    }

    /// Mean of `value` over all ranks, on every rank.
    public func mean(_ value: Double) throws -> Double {
        try sum(value) / Double(size)
    }

    /// Maximum of `value` over all ranks, on every rank (e.g. the slowest rank's step time).
    public func max(_ value: Double) throws -> Double {
        var v = [value]
        try allReduce(&v, op: .max)
        return v[0]
    }

    /// Minimum of `value` over all ranks, on every rank.
    public func min(_ value: Double) throws -> Double {
        var v = [value]
        try allReduce(&v, op: .min)
        return v[0]
    }

    // MARK: Gather

    /// The `Int64` contributed by each rank, on every rank.
    public func allGather(_ value: Int64, what: Collective = .allGather) throws -> [Int64] {
        precheck()
        var out = [Int64](repeating: value, count: size)
        if size == 1 { return out }
        var send = value
        try out.withUnsafeMutableBytes { recv in
            var request: MPI_Request? = kd_mpi_request_null()
            try check(MPI_Iallgather(&send, 1, kd_mpi_int64(), recv.baseAddress, 1, kd_mpi_int64(), comm, &request),
                      "MPI_Allgather")
            try wait(&request, count: 1, what: what, call: "MPI_Allgather")
        }
        return out
    }

    /// The `UInt64` contributed by each rank, on every rank.
    public func allGather(_ value: UInt64, what: Collective = .allGather) throws -> [UInt64] {
        try allGather(Int64(bitPattern: value), what: what).map { UInt64(bitPattern: $0) }
    }

    private func displacements(_ counts: [Int64]) throws -> (counts: [Int32], displs: [Int32], total: Int) {
        var displs = [Int32](repeating: 0, count: counts.count)
        var total = 0
        for (i, c) in counts.enumerated() {
            guard total <= Int(Int32.max) else { break }
            displs[i] = Int32(clamping: total)
            total += Int(c)
        }
        guard total <= Int(Int32.max) else {
            throw DistError.invalidConfiguration("rank \(rank): gather of \(total) floats exceeds MPI's Int32 count; gather in pieces")
        }
        return (counts.map { Int32($0) }, displs, total)
    }

    /// Gathers variable-length float arrays to `root`: returns each rank's array (in rank order)
    /// on `root` and `[]` elsewhere. Ranks may contribute nothing. Used for evaluation embeddings.
    public func gather(_ local: [Float], root: Int = 0) throws -> [[Float]] {
        precheck()
        precondition(root >= 0 && root < size, "gather root \(root) outside 0..<\(size)")
        // Counts to the root (an all-gather keeps the code simple; the message is tiny).
        let counts64 = try allGather(Int64(local.count))
        let (counts, displs, total) = try displacements(counts64)
        var flat = [Float](repeating: 0, count: rank == root ? Swift.max(total, 1) : 1)
        var send = local.isEmpty ? [Float(0)] : local
        try send.withUnsafeMutableBufferPointer { s in
            try flat.withUnsafeMutableBufferPointer { r in
                try counts.withUnsafeBufferPointer { c in
                    try displs.withUnsafeBufferPointer { d in
                        var request: MPI_Request? = kd_mpi_request_null()
                        try check(MPI_Igatherv(s.baseAddress, Int32(local.count), kd_mpi_float(),
                                               r.baseAddress, c.baseAddress, d.baseAddress, kd_mpi_float(),
                                               Int32(root), comm, &request), "MPI_Gatherv")
                        try wait(&request, count: 1, what: .gather, call: "MPI_Gatherv")
                    }
                }
            }
        }
        if rank != root { return [] }
        return (0..<size).map { i in Array(flat[Int(displs[i])..<(Int(displs[i]) + Int(counts[i]))]) }
    }

    /// Every rank's float array (variable lengths, possibly empty), in rank order, on every rank.
    public func allGather(_ local: [Float]) throws -> [[Float]] {
        precheck()
        let counts64 = try allGather(Int64(local.count))
        let (counts, displs, total) = try displacements(counts64)
        var flat = [Float](repeating: 0, count: Swift.max(total, 1))
        var send = local.isEmpty ? [Float(0)] : local
        try send.withUnsafeMutableBufferPointer { s in
            try flat.withUnsafeMutableBufferPointer { r in
                try counts.withUnsafeBufferPointer { c in
                    try displs.withUnsafeBufferPointer { d in
                        var request: MPI_Request? = kd_mpi_request_null()
                        try check(MPI_Iallgatherv(s.baseAddress, Int32(local.count), kd_mpi_float(),
                                                  r.baseAddress, c.baseAddress, d.baseAddress, kd_mpi_float(),
                                                  comm, &request), "MPI_Allgatherv")
                        try wait(&request, count: 1, what: .allGather, call: "MPI_Allgatherv")
                    }
                }
            }
        }
        return (0..<size).map { i in Array(flat[Int(displs[i])..<(Int(displs[i]) + Int(counts[i]))]) }
    }

    /// Gathers evaluation results sharded by `EvaluationShard` to `root`, restoring dataset order:
    /// each rank passes `width` floats per sample of its shard, in shard order. Returns the
    /// `datasetSize × width` matrix on `root` and `[]` elsewhere.
    ///
    /// - Throws: `DistError.protocolViolation` when a rank's contribution does not match its shard.
    public func gatherEvaluation(_ local: [Float], width: Int, datasetSize: Int, root: Int = 0) throws -> [Float] {
        let mine = EvaluationShard(datasetSize: datasetSize, worldSize: size, rank: rank).range
        // Every rank checks its own contribution; the gather itself still runs so no rank waits
        // on a rank that returned early, and the error is then raised consistently.
        let ok = local.count == mine.count * width
        let allOK = try self.min(ok ? 1 : 0) == 1
        if !ok {
            throw DistError.protocolViolation(rank: rank, "evaluation shard \(mine) × width \(width) needs \(mine.count * width) floats, got \(local.count)")
        }
        if !allOK {
            throw DistError.protocolViolation(rank: rank, "another rank contributed a malformed evaluation shard")
        }
        let parts = try gather(local, root: root)
        if rank != root { return [] }
        // Shards are contiguous blocks in rank order, so concatenation is dataset order.
        var out = [Float]()
        out.reserveCapacity(datasetSize * width)
        for part in parts { out.append(contentsOf: part) }
        return out
    }

    // MARK: Replica consistency

    /// Compares every rank's parameter checksum (see `ReplicaChecksum`). Collective; every rank
    /// throws the same error when the checksums differ, naming the ranks that differ from rank 0.
    ///
    /// - Parameter what: what was checked, for the message ("parameters after step 1200").
    public func verifyReplicas(checksum: UInt64, what: String) throws {
        let all = try allGather(checksum, what: .replicaCheck)
        let diverging = (0..<size).filter { all[$0] != all[0] }
        if !diverging.isEmpty {
            throw DistError.replicaDivergence(what: what, ranks: diverging, checksums: all)
        }
    }

    // MARK: Threads

    /// Threads this rank should give OpenBLAS and its worker pool: the value of
    /// OPENBLAS_NUM_THREADS when the user set it (a positive integer), otherwise the cores on the
    /// node divided by the ranks on the node, at least 1. Dist does not link OpenBLAS; the
    /// Launcher applies the number.
    public func recommendedThreads() -> Int {
        Self.recommendedThreads(environment: ProcessInfo.processInfo.environment,
                                coresOnNode: Self.coresOnNode(), localRanks: localSize)
    }

    /// The policy of `recommendedThreads()` as a pure function (for tests and the Launcher).
    public static func recommendedThreads(environment: [String: String], coresOnNode: Int, localRanks: Int) -> Int {
        if let text = environment["OPENBLAS_NUM_THREADS"],
           let n = Int(text.trimmingCharacters(in: .whitespaces)), n > 0 {
            return n
        }
        return Swift.max(1, coresOnNode / Swift.max(1, localRanks))
    }

    /// Online cores on this node (not this process's affinity mask: mpirun may bind a rank to one
    /// core, which would make the division count it twice).
    public static func coresOnNode() -> Int {
        Swift.max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    // MARK: Abort

    /// Prints "rank R: message" to stderr and aborts every rank of the job (MPI_Abort on the world
    /// communicator; mpirun/srun then kill the others and exit non-zero). Never returns.
    /// The Launcher's top level catches every error and calls this when `size > 1`; with one rank
    /// it prints the error and exits with `code` instead.
    public func abortJob(message: String, code: Int32 = 1) -> Never {
        Self.abortJob(message: message, code: code)
    }

    /// `abortJob` usable before a Communicator exists or after init failed.
    public static func abortJob(message: String, code: Int32 = 1) -> Never {
        var initialized: Int32 = 0
        var finalized: Int32 = 0
        _ = MPI_Initialized(&initialized)
        _ = MPI_Finalized(&finalized)
        let live = initialized != 0 && finalized == 0
        var rank: Int32 = 0
        if live { _ = MPI_Comm_rank(kd_mpi_comm_world(), &rank) }
        let prefix = "rank \(rank):"
        writeStderr(message.hasPrefix(prefix) ? message : "\(prefix) \(message)")
        fflush(nil)
        if live { _ = MPI_Abort(kd_mpi_comm_world(), code == 0 ? 1 : code) }
        exit(code == 0 ? 1 : code)
    }

    /// Seconds from an arbitrary origin (MPI_Wtime).
    public static func now() -> Double { MPI_Wtime() }
}
