// The `sampler` mode: the sampler under real ranks, every sample exactly once per epoch across
// ranks (drop-last aside), a different order each epoch, the same number of steps on every rank,
// exact resume. Also the failure modes: `fail` (one rank's error must end the whole job) and
// `diverge` (a one-ulp replica difference must be detected, naming the rank).

import Dist
import Foundation
import KDCore

func runSampler(_ comm: Communicator, _ options: DistHarness.Sampler) throws {
    let w = comm.size, r = comm.rank
    let epochs = options.epochs
    var cases = 0
    for (n, batchPerRank) in [(240, 6), (1003, 3), (4 * w, 1), (10_000, 16)] {
        let globalBatch = batchPerRank * w
        var sampler = try DistributedSampler(datasetSize: n, globalBatch: globalBatch, worldSize: w, rank: r, seed: 42)
        let steps = sampler.stepsPerEpoch
        let allSteps = try comm.allGather(Int64(steps))
        try expect(Set(allSteps).count == 1, comm, "ranks disagree on steps per epoch: \(allSteps)")
        var previous: [Int]? = nil
        for epoch in 0..<epochs {
            var mine: [Float] = []
            var buffer: [Int] = []
            for step in 0..<steps {
                sampler.indices(epoch: epoch, step: step, into: &buffer)
                try expect(buffer.count == batchPerRank, comm, "batch of \(buffer.count), want \(batchPerRank)")
                mine.append(contentsOf: buffer.map { Float($0) })
                // Resume: a fresh sampler at the same global position yields the same indices.
                if step == steps / 2 {
                    var resumed = try DistributedSampler(datasetSize: n, globalBatch: globalBatch, worldSize: w, rank: r, seed: 42)
                    let position = resumed.position(afterSteps: epoch * steps + step)
                    try expect(position == SamplerPosition(epoch: epoch, step: step), comm, "position \(position)")
                    try expect(resumed.indices(at: position) == buffer, comm, "resume at epoch \(epoch) step \(step)")
                }
            }
            let parts = try comm.gather(mine, root: 0)
            if r == 0 {
                // Reassemble the global order: step s = rank 0's slice, rank 1's slice, ...
                var order: [Int] = []
                for s in 0..<steps {
                    for q in 0..<w { order.append(contentsOf: parts[q][(s * batchPerRank)..<((s + 1) * batchPerRank)].map { Int($0) }) }
                }
                var seen = [Int](repeating: 0, count: n)
                for i in order { seen[i] += 1 }
                let twice = seen.indices.filter { seen[$0] > 1 }
                try expect(twice.isEmpty, comm, "n=\(n) B=\(globalBatch) epoch \(epoch): samples visited twice: \(twice.prefix(5))")
                let visited = seen.filter { $0 == 1 }.count
                try expect(visited == steps * globalBatch && n - visited < globalBatch, comm,
                           "n=\(n) B=\(globalBatch) epoch \(epoch): visited \(visited) of \(n)")
                if n % globalBatch == 0 {
                    try expect(visited == n, comm, "n=\(n) B=\(globalBatch) epoch \(epoch): not every sample visited")
                }
                try expect(order == Array(DistributedSampler.permutation(datasetSize: n, seed: 42, epoch: epoch).prefix(steps * globalBatch).map { Int($0) }),
                           comm, "global order is not the epoch permutation")
                if let previous {
                    try expect(previous != order, comm, "n=\(n): epoch \(epoch) repeats the previous epoch's order")
                }
                previous = order
            }
            cases += 1
        }
    }
    // A global batch that does not split across the ranks is a clear error.
    if w > 1 {
        do {
            _ = try DistributedSampler(datasetSize: 100, globalBatch: w + 1, worldSize: w, rank: r, seed: 1)
            try expect(false, comm, "indivisible global batch accepted")
        } catch let error as DistError {
            try expect("\(error)".contains("not divisible by the \(w) ranks"), comm, "message: \(error)")
        }
    }
    say(comm, "OK sampler size=\(w) epochs=\(epochs) cases=\(cases)")
}

/// One rank fails while the others wait in a collective: the job must end, non-zero, with that
/// rank's message. `--kind swift`: a thrown Swift error (bad file); `--kind truncate`: a real MPI
/// error (the failing rank posts a broadcast receive too small for the root's message, so MPI
/// reports MPI_ERR_TRUNCATE on that rank only).
func runFail(_ comm: Communicator, _ options: DistHarness.Fail) throws {
    let bad = options.rank
    let kind = options.kind
    guard bad >= 0 && bad < comm.size else { throw HarnessError("--rank \(bad) outside 0..<\(comm.size)") }
    guard kind == .swift || bad != 0 else { throw HarnessError("--kind truncate needs --rank > 0") }
    for iteration in 0..<1000 {
        if iteration == 3 {
            if kind == .swift && comm.rank == bad {
                usleep(300_000)  // the others are inside MPI_Allreduce by now
                throw HarnessError("rank \(comm.rank): cannot open /data/faces/train.rec: No such file or directory")
            }
            if kind == .truncate {
                var bytes = [UInt8](repeating: 7, count: 64)
                let n = comm.rank == bad ? 16 : 64
                try bytes.withUnsafeMutableBytes { try comm.broadcast(bytes: $0.baseAddress!, count: n, root: 0) }
            }
        }
        _ = try comm.sum(1)
    }
    throw HarnessError("rank \(comm.rank): fail mode finished without failing")
}

/// One rank's parameters differ by one ulp in one element: every rank must see the divergence,
/// naming exactly that rank.
func runDiverge(_ comm: Communicator, _ options: DistHarness.Diverge) throws {
    let bad = options.rank ?? comm.size - 1
    let count = 10_001
    let params = UnsafeMutablePointer<Float>.allocate(capacity: count)
    defer { params.deallocate() }
    for i in 0..<count { params[i] = Float(i) * 0.001 - 3 }
    try comm.verifyReplicas(checksum: ReplicaChecksum.of(params, count: count), what: "identical parameters")
    if comm.rank == bad { params[count / 2] = params[count / 2].nextUp }
    do {
        try comm.verifyReplicas(checksum: ReplicaChecksum.of(params, count: count), what: "parameters after step 7")
        try expect(false, comm, "divergence of rank \(bad) not detected")
    } catch let error as DistError {
        guard case let .replicaDivergence(_, ranks, _) = error else { throw error }
        try expect(ranks == [bad], comm, "divergence names ranks \(ranks), want [\(bad)]")
        say(comm, "OK diverge detected: \(error)")
    }
}
