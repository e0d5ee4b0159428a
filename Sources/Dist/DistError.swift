// Errors thrown by Dist. Every message names the rank that saw it, so the one line the Launcher
// prints (or passes to `Communicator.abortJob`) says where the job went wrong.

/// An error raised by the distributed layer.
public enum DistError: Error, CustomStringConvertible, Equatable, Sendable {
    /// An MPI call returned an error code; `message` is MPI's own error string.
    case mpi(rank: Int, call: String, code: Int32, message: String)
    /// MPI does not provide the thread level Dist needs.
    case threadLevel(rank: Int, requested: Int32, provided: Int32)
    /// The parameter checksums of the replicas disagree; `ranks` differ from rank 0.
    case replicaDivergence(what: String, ranks: [Int], checksums: [UInt64])
    /// A bad configuration (batch not divisible by the world size, ...).
    case invalidConfiguration(String)
    /// A rank contributed data that does not match what the protocol expects.
    case protocolViolation(rank: Int, String)
    /// A collective waited past `Communicator.stallTimeout`: the stall report (see Watchdog.swift),
    /// naming the ranks that did not reach it and where the others wait.
    case stalled(String)

    public var description: String {
        switch self {
        case let .mpi(rank, call, code, message):
            return "rank \(rank): \(call) failed (MPI error \(code)): \(message)"
        case let .threadLevel(rank, requested, provided):
            return "rank \(rank): MPI provides thread level \(provided), kdtrain needs \(requested) (FUNNELED or SERIALIZED)"
        case let .replicaDivergence(what, ranks, checksums):
            let list = ranks.map(String.init).joined(separator: ", ")
            let sums = ranks.map { "rank \($0)=0x" + String(checksums[$0], radix: 16) }.joined(separator: ", ")
            return "replica divergence in \(what): rank\(ranks.count == 1 ? "" : "s") \(list) differ\(ranks.count == 1 ? "s" : "") from rank 0 (rank 0=0x\(String(checksums[0], radix: 16)), \(sums))"
        case let .invalidConfiguration(message):
            return message
        case let .protocolViolation(rank, message):
            return "rank \(rank): \(message)"
        case let .stalled(message):
            return message
        }
    }
}
