// kdtrain-dist-harness: the mpirun-driven checks behind DistTests and the distributed benchmark.
//
//   mpirun -n 4 --oversubscribe kdtrain-dist-harness collectives
//   mpirun -n 2 kdtrain-dist-harness equivalence --steps 40 [--overlap 0] [--micro 2] [--bn local]
//   mpirun -n 4 --oversubscribe kdtrain-dist-harness sampler
//   mpirun -n 2 kdtrain-dist-harness fail --rank 1 --kind swift|mpi
//   mpirun -n 4 --oversubscribe kdtrain-dist-harness diverge --rank 2
//   mpirun -n 2 kdtrain-dist-harness stall --rank 1 --step 5 --how stop|sleep|none --timeout 3
//   kdtrain-dist-harness info                       (singleton, world of one)
//   mpirun -n 2 kdtrain-dist-harness bench [--params N] [--layers L] [--backward-ms T] [--batch-ms T]
//
// Each check prints "OK <mode> ..." on rank 0 and exits 0, or ends through the same path the
// Launcher uses: any error reaching the top level aborts the whole job with "rank R: message".

import Dist
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first else {
    Communicator.abortJob(message: "usage: kdtrain-dist-harness collectives|equivalence|sampler|fail|diverge|stall|info|bench [options]", code: 2)
}

do {
    let options = try HarnessOptions(Array(arguments.dropFirst()))
    let comm = try Communicator(threadLevel: .funneled)
    switch mode {
    case "info": try runInfo(comm)
    case "collectives": try runCollectives(comm, options)
    case "equivalence": try runEquivalence(comm, options)
    case "sampler": try runSampler(comm, options)
    case "fail": try runFail(comm, options)
    case "diverge": try runDiverge(comm, options)
    case "stall": try runStall(comm, options)
    case "bench": try runBench(comm, options)
    default: throw HarnessError("unknown mode \(mode)")
    }
    try options.checkAllUsed()
    try comm.finalize()
} catch {
    // The Launcher's top level does the same: with more than one rank an error must take the
    // whole job down (MPI_Abort) instead of leaving the other ranks waiting in a collective.
    Communicator.abortJob(message: "\(error)", code: 1)
}
