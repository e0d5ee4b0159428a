// What the modes share: the failed-check error, MPI start-up and the abort-on-error policy
// (`runJob`), the launcher rank for rank-0-only usage errors, rank-0 printing, and the `info` mode.

import Dist
import Foundation

/// A failed check, naming the rank.
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// The rank mpirun (or srun) gave this process, before MPI is initialized; 0 when alone.
func launcherRank() -> Int {
    let env = ProcessInfo.processInfo.environment
    for key in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"] {
        if let v = env[key], let r = Int(v) { return r }
    }
    return 0
}

/// Initializes MPI (after the command line was parsed), runs one mode and finalizes. Like the
/// Launcher's top level, any error ends the whole job (MPI_Abort) with "rank R: message", instead
/// of leaving the other ranks waiting in a collective.
func runJob(_ body: (Communicator) throws -> Void) {
    do {
        let comm = try Communicator(threadLevel: .funneled)
        try body(comm)
        try comm.finalize()
    } catch {
        Communicator.abortJob(message: "\(error)", code: 1)
    }
}

func expect(_ condition: Bool, _ comm: Communicator, _ message: @autoclosure () -> String) throws {
    if !condition { throw HarnessError("rank \(comm.rank): check failed: \(message())") }
}

/// Prints on rank 0 only (and flushes, so mpirun relays it before exit).
func say(_ comm: Communicator, _ line: String) {
    if comm.isRoot {
        print(line)
        fflush(nil)
    }
}

func hex(_ xs: UnsafeBufferPointer<Float>) -> String {
    xs.map { String($0.bitPattern, radix: 16) }.joined(separator: " ")
}

func runInfo(_ comm: Communicator) throws {
    let ranks = try comm.allGather(Int64(comm.rank))
    try expect(ranks == (0..<comm.size).map(Int64.init), comm, "ranks \(ranks)")
    try expect(comm.localRank >= 0 && comm.localRank < comm.localSize && comm.localSize <= comm.size, comm,
               "local rank \(comm.localRank) of \(comm.localSize)")
    let threads = comm.recommendedThreads()
    try expect(threads >= 1, comm, "threads \(threads)")
    let allThreads = try comm.allGather(Int64(threads))
    say(comm, "OK info size=\(comm.size) localSize=\(comm.localSize) cores=\(Communicator.coresOnNode()) threads=\(allThreads.map(String.init).joined(separator: ",")) threadLevel=\(comm.providedThreadLevel)")
}
