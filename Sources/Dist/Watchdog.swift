// The stall watchdog: how a rank waits for a collective without burning a core, and how the job
// ends, naming the missing rank, when a rank stops making progress (SIGSTOP, a hung filesystem, a
// rank that took another code path). Horovod's stall inspector is the model.
//
// Waiting. Every collective of `Communicator` and the gradient reducer's `finish()` start a
// non-blocking MPI call and wait for it here: MPI_Test in a tight loop for the first `spinSeconds`
// (a collective between ranks in step completes in that window, at the latency of a blocking
// call), then MPI_Test between sleeps that double from 20 µs to `maxSleepSeconds` (1 ms). OpenMPI
// progresses a request only inside MPI calls, so each wake-up also drives the transfer; a rank
// waiting for a slow or stopped peer wakes about 1000 times a second instead of polling
// continuously (a blocking MPI_Allreduce of OpenMPI 4.1 spins at 80-100% of a core).
//
// Deadline. After `Communicator.stallTimeout` seconds in one wait (0 = no deadline) the rank
// declares a stall: it sends its position (collective number, kind, step, seconds waited) to every
// other rank on a private duplicate communicator, where every rank keeps a receive posted from
// every other rank since start-up. A rank that waits in a collective and sees such a report
// answers with its own position at once (it need not reach its own deadline). After a grace
// period, or as soon as every other rank has reported, the lowest-numbered rank that reached the
// deadline (or had waited at least half of it when it answered) throws `DistError.stalled` naming the ranks that never reported (they did not
// reach the collective: stopped, hung outside MPI, or in code that does not wait here) and where
// the others wait; the caller ends the job through `Communicator.abortJob` (MPI_Abort). The other
// ranks print where they wait, keep waiting for that abort, and throw the same error themselves
// only if it does not come. (A rank that came late never reports: a stopped rank that mpirun
// resumes while killing the job sees the others' reports and must not report a second time.)
//
// Cost in the steady state: one MPI_Test per collective that completes at once, no allocation;
// the side channel is touched only after `spinSeconds` of waiting.

import CMPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The kind of collective a rank waits in, for the stall report (sent between ranks as its code).
public enum Collective: Int64, Sendable, CustomStringConvertible, CaseIterable {
    case barrier = 1
    case broadcast
    case allReduce
    case allGather
    case gather
    case gradientAllReduce
    case batchNormStatistics
    case syncBatchNorm
    case stopSignalCheck
    case metrics
    case replicaCheck
    case checkpointBarrier
    case agreement

    public var description: String {
        switch self {
        case .barrier: return "barrier"
        case .broadcast: return "broadcast"
        case .allReduce: return "all-reduce"
        case .allGather: return "all-gather"
        case .gather: return "gather"
        case .gradientAllReduce: return "gradient all-reduce"
        case .batchNormStatistics: return "batch-norm statistics all-reduce"
        case .syncBatchNorm: return "synchronized batch-norm all-reduce"
        case .stopSignalCheck: return "stop-signal all-reduce"
        case .metrics: return "metric all-reduce"
        case .replicaCheck: return "replica checksum all-gather"
        case .checkpointBarrier: return "checkpoint barrier"
        case .agreement: return "agreement all-reduce (checks every rank makes alike)"
        }
    }
}

/// Where a rank waits: what the stall report says about it.
public struct StallPosition: Sendable, Equatable {
    /// The rank.
    public var rank: Int
    /// 1-based number of the collective on this communicator (the same on every rank for the
    /// same collective).
    public var sequence: Int64
    public var collective: Collective?
    /// The training step the rank was at (`Communicator.progressStep`), -1 outside training.
    public var step: Int64
    /// Seconds it had waited when it reported.
    public var waited: Double
    /// Whether it reached the deadline itself (rather than answering another rank's report).
    public var timedOut: Bool

    /// "the gradient all-reduce of step 37 (collective #412)".
    public var what: String {
        let name = collective.map { "\($0)" } ?? "collective"
        return "the \(name)" + (step >= 0 ? " of step \(step)" : "") + " (collective #\(sequence))"
    }
}

/// The private side channel of the watchdog: a duplicate communicator, one receive posted from
/// every other rank, one send to every other rank once a stall is declared.
final class StallChannel {
    static let tag: Int32 = 4711
    static let fields = 5   // sequence, collective code, step, milliseconds waited, timed out

    let comm: MPI_Comm
    let rank: Int, size: Int
    private let recvBuffers: UnsafeMutablePointer<Int64>
    private let recvRequests: UnsafeMutablePointer<MPI_Request?>
    private let sendBuffer: UnsafeMutablePointer<Int64>
    private let sendRequests: UnsafeMutablePointer<MPI_Request?>
    private let indices: UnsafeMutablePointer<Int32>
    private(set) var received: [StallPosition?]
    private(set) var sent = false
    private var freed = false

    /// Collective over `parent` (duplicates it). Call only with more than one rank.
    init(parent: MPI_Comm, rank: Int, size: Int) throws {
        self.rank = rank; self.size = size
        var dup: MPI_Comm? = nil
        var rc = MPI_Comm_dup(parent, &dup)
        guard rc == kd_mpi_success(), let dup else {
            throw DistError.mpi(rank: rank, call: "MPI_Comm_dup(watchdog)", code: rc, message: mpiErrorString(rc))
        }
        _ = MPI_Comm_set_errhandler(dup, kd_mpi_errors_return())
        comm = dup
        recvBuffers = .allocate(capacity: size * Self.fields)
        recvBuffers.initialize(repeating: 0, count: size * Self.fields)
        recvRequests = .allocate(capacity: size)
        recvRequests.initialize(repeating: kd_mpi_request_null(), count: size)
        sendBuffer = .allocate(capacity: Self.fields)
        sendBuffer.initialize(repeating: 0, count: Self.fields)
        sendRequests = .allocate(capacity: size)
        sendRequests.initialize(repeating: kd_mpi_request_null(), count: size)
        indices = .allocate(capacity: size)
        indices.initialize(repeating: 0, count: size)
        received = Array(repeating: nil, count: size)
        for r in 0..<size where r != rank {
            rc = MPI_Irecv(recvBuffers + r * Self.fields, Int32(Self.fields), kd_mpi_int64(), Int32(r), Self.tag, comm,
                           recvRequests + r)
            if rc != kd_mpi_success() {
                throw DistError.mpi(rank: rank, call: "MPI_Irecv(watchdog)", code: rc, message: mpiErrorString(rc))
            }
        }
    }

    deinit {
        recvBuffers.deallocate(); recvRequests.deallocate(); sendBuffer.deallocate()
        sendRequests.deallocate(); indices.deallocate()
    }

    /// Collects the reports that have arrived; returns whether any rank has reported so far.
    @discardableResult
    func poll() -> Bool {
        var outCount: Int32 = 0
        let rc = MPI_Testsome(Int32(size), recvRequests, &outCount, indices, kd_mpi_statuses_ignore())
        if rc == kd_mpi_success() && outCount > 0 && outCount != kd_mpi_undefined() {
            for i in 0..<Int(outCount) {
                let r = Int(indices[i])
                let b = recvBuffers + r * Self.fields
                received[r] = StallPosition(rank: r, sequence: b[0], collective: Collective(rawValue: b[1]), step: b[2],
                                            waited: Double(b[3]) / 1000, timedOut: b[4] != 0)
            }
        }
        return received.contains { $0 != nil }
    }

    /// Sends `position` to every other rank (once; later calls do nothing).
    func send(_ position: StallPosition) {
        if sent { return }
        sent = true
        sendBuffer[0] = position.sequence
        sendBuffer[1] = position.collective?.rawValue ?? 0
        sendBuffer[2] = position.step
        sendBuffer[3] = Int64((position.waited * 1000).rounded())
        sendBuffer[4] = position.timedOut ? 1 : 0
        for r in 0..<size where r != rank {
            _ = MPI_Isend(sendBuffer, Int32(Self.fields), kd_mpi_int64(), Int32(r), Self.tag, comm, sendRequests + r)
        }
    }

    /// Cancels the posted receives and frees the communicator (at finalize, when no stall happened).
    func free() throws {
        if freed { return }
        freed = true
        for r in 0..<size where r != rank && recvRequests[r] != kd_mpi_request_null() {
            _ = MPI_Cancel(recvRequests + r)
            _ = MPI_Wait(recvRequests + r, kd_mpi_status_ignore())
        }
        var c: MPI_Comm? = comm
        let rc = MPI_Comm_free(&c)
        if rc != kd_mpi_success() {
            throw DistError.mpi(rank: rank, call: "MPI_Comm_free(watchdog)", code: rc, message: mpiErrorString(rc))
        }
    }
}

/// The stall report: the ranks that never reported and where the others wait.
func stallMessage(me: StallPosition, known: [StallPosition?], size: Int, timeout: Double) -> String {
    var positions = known
    positions[me.rank] = me
    let missing = (0..<size).filter { positions[$0] == nil }
    let present = positions.compactMap { $0 }
    func list(_ ranks: [Int]) -> String {
        (ranks.count == 1 ? "rank " : "ranks ") + ranks.map(String.init).joined(separator: ", ")
    }
    let limit = timeout > 0 ? String(format: "%g s", timeout) : "the deadline"
    var text: String
    if missing.isEmpty && present.allSatisfy({ $0.sequence == me.sequence }) {
        return "stalled: every rank reached \(me.what), but it did not complete within \(limit)"
    } else if missing.isEmpty {
        text = "stalled: every rank waits, but not in the same collective:"
    } else {
        text = "stalled: \(list(missing)) did not reach \(me.what) within \(limit)"
        let same = present.filter { $0.sequence == me.sequence }.map(\.rank)
        text += " (\(list(same)) reached it)"
        if present.count == same.count { return text }
        text += ";"
    }
    let elsewhere = present.filter { missing.isEmpty || $0.sequence != me.sequence }
    text += elsewhere.map { " rank \($0.rank) waits in \($0.what) since \(String(format: "%.1f", $0.waited)) s" }
        .joined(separator: ",")
    return text
}
