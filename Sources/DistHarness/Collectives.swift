// Collective checks on odd sizes and empty buffers, and the bucketed reducer against a blocking
// all-reduce of the whole buffer.

import Dist
import Foundation
import KDCore

func runCollectives(_ comm: Communicator) throws {
    let w = comm.size, r = comm.rank
    try runInfo(comm)
    try comm.barrier()

    // Broadcast floats, doubles, bytes: odd sizes and empty, from the first and the last rank.
    for n in [0, 1, 7, 1023, 100_003] {
        for root in (w > 1 ? [0, w - 1] : [0]) {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            defer { p.deallocate() }
            for i in 0..<n { p[i] = Float(r * 1_000_000 + i) }
            try comm.broadcast(p, count: n, root: root)
            for i in 0..<n where p[i] != Float(root * 1_000_000 + i) {
                try expect(false, comm, "broadcast n=\(n) root=\(root): element \(i) = \(p[i])")
            }
            var d = (0..<n).map { Double(r) + Double($0) / 3 }
            try d.withUnsafeMutableBufferPointer { if n > 0 { try comm.broadcast($0.baseAddress!, count: n, root: root) } }
            try expect(d == (0..<n).map { Double(root) + Double($0) / 3 }, comm, "broadcast double n=\(n) root=\(root)")
            var bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &+ r) }
            try bytes.withUnsafeMutableBytes { if n > 0 { try comm.broadcast(bytes: $0.baseAddress!, count: n, root: root) } }
            try expect(bytes == (0..<n).map { UInt8(truncatingIfNeeded: $0 &+ root) }, comm, "broadcast bytes n=\(n) root=\(root)")
        }
    }
    // Variable-length byte broadcast: only the root's length counts.
    let message = try comm.broadcast(r == 0 ? Array("resume at step 1200".utf8) : [1, 2, 3], root: 0)
    try expect(String(decoding: message, as: UTF8.self) == "resume at step 1200", comm, "broadcast [UInt8]")
    let empty = try comm.broadcast(r == 0 ? [] : [9, 9], root: 0)
    try expect(empty.isEmpty, comm, "broadcast empty [UInt8] gave \(empty)")

    // All-reduce sums (exact in Float: small integers), mean, Double, odd sizes and 0.
    for n in [0, 1, 3, 17, 4099, 1_000_003] {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        defer { p.deallocate() }
        for i in 0..<n { p[i] = Float(r + 1 + i % 7) }
        try comm.allReduceSum(p, count: n)
        let base = Float(w * (w + 1) / 2)
        for i in 0..<n where p[i] != base + Float(w * (i % 7)) {
            try expect(false, comm, "allReduceSum n=\(n): element \(i) = \(p[i])")
        }
        for i in 0..<n { p[i] = Float(2 * r) }
        try comm.allReduceMean(p, count: n)
        for i in 0..<n where p[i] != Float(w - 1) {
            try expect(false, comm, "allReduceMean n=\(n): element \(i) = \(p[i]), want \(w - 1)")
        }
        var d = (0..<n).map { Double($0) + Double(r) * 0.5 }
        try d.withUnsafeMutableBufferPointer { if n > 0 { try comm.allReduceSum($0.baseAddress!, count: n) } }
        let shift = 0.5 * Double(w * (w - 1) / 2)
        try expect(d == (0..<n).map { Double(w) * Double($0) + shift }, comm, "allReduceSum double n=\(n)")
    }

    // Scalar and vector metrics.
    try expect(try comm.sum(Double(r)) == Double(w * (w - 1) / 2), comm, "sum")
    try expect(try comm.mean(Double(r)) == Double(w - 1) / 2, comm, "mean")
    try expect(try comm.max(Double(r) * 1.5) == Double(w - 1) * 1.5, comm, "max")
    try expect(try comm.min(Double(r) - 3) == -3, comm, "min")
    var v = [Double(r), -Double(r), 1]
    try comm.allReduce(&v, op: .max)
    try expect(v == [Double(w - 1), 0, 1], comm, "vector max \(v)")
    var none: [Double] = []
    try comm.allReduce(&none, op: .sum)

    // Gather / all-gather of variable lengths; rank 1 contributes nothing.
    func contribution(_ q: Int) -> [Float] {
        if q == 1 { return [] }
        return (0..<(2 * q + 3)).map { (i: Int) -> Float in Float(q * 100 + i) }
    }
    let mine = contribution(r)
    let expected: [[Float]] = (0..<w).map(contribution)
    for root in (w > 1 ? [0, w - 1] : [0]) {
        let got = try comm.gather(mine, root: root)
        try expect(r == root ? got == expected : got.isEmpty, comm, "gather root=\(root): \(got)")
    }
    try expect(try comm.allGather(mine) == expected, comm, "allGather")
    try expect(try comm.allGather([Float]()) == Array(repeating: [], count: w), comm, "allGather of empties")

    // Evaluation gather restores dataset order, with empty shards when N < W.
    for (n, width) in [(10, 3), (3, 2), (0, 4), (101, 1)] {
        let shard = EvaluationShard(datasetSize: n, worldSize: w, rank: r).range
        let local = shard.flatMap { i in (0..<width).map { Float(i * 10 + $0) } }
        let all = try comm.gatherEvaluation(local, width: width, datasetSize: n)
        let want = (0..<n).flatMap { i in (0..<width).map { Float(i * 10 + $0) } }
        try expect(r == 0 ? all == want : all.isEmpty, comm, "gatherEvaluation n=\(n) width=\(width)")
    }

    // Replicas equal: no error.
    try comm.verifyReplicas(checksum: 0x1234_5678_9ABC_DEF0, what: "identical values")

    try checkReducer(comm)
    say(comm, "OK collectives size=\(w)")
}

/// The bucketed reducer against one blocking all-reduce of the whole buffer.
func checkReducer(_ comm: Communicator) throws {
    let w = comm.size, r = comm.rank
    var rng = SplitMix64(seed: 99 + UInt64(r))
    var configurations = 0
    for count in [0, 1, 5, 38, 1000, 100_003] {
        for (first, bucket) in [(1, 1), (3, 8), (64, 1000), (1 << 16, 1 << 20)] where count <= 1000 || first >= 64 {
            for overlap in [true, false] {
                for micro in [1, 3] {
                    for exact in [true, false] {
                        configurations += 1
                        let grads = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
                        let reference = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
                        defer { grads.deallocate(); reference.deallocate() }
                        grads.initialize(repeating: 0, count: max(count, 1))
                        let reducer = GradientReducer(communicator: comm, gradients: grads, count: count,
                                                      options: ReducerOptions(bucketFloats: bucket, firstBucketFloats: first, overlap: overlap))
                        let name = "count=\(count) first=\(first) bucket=\(bucket) overlap=\(overlap) micro=\(micro) exact=\(exact)"
                        // Layer boundaries (forward order), with empty layers; same on all ranks.
                        var bounds = [0]
                        var b = 0
                        var layerRng = SplitMix64(seed: UInt64(count * 31 + first))
                        while b < count {
                            b = min(count, b + Int(layerRng.uniform(below: UInt64(max(2, count / 4)))))
                            bounds.append(b)
                        }
                        if bounds.last != count { bounds.append(count) }
                        for _ in 0..<2 {  // two steps: the reducer resets between steps
                            for i in 0..<count { reference[i] = 0 }
                            for m in 0..<micro {
                                reducer.beginMicroBatch(m, of: micro)
                                for l in stride(from: bounds.count - 2, through: 0, by: -1) {
                                    for i in bounds[l]..<bounds[l + 1] {
                                        let g: Float = exact ? Float(Int(rng.uniform(below: 64)) - 32) / 8
                                                             : Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1)
                                        grads[i] += g
                                        reference[i] += g
                                    }
                                    try reducer.gradientsReady(from: bounds[l])
                                    if m < micro - 1 {
                                        // Non-final micro-batches must not communicate.
                                        for i in bounds[l]..<count where grads[i] != reference[i] {
                                            try expect(false, comm, "\(name): micro-batch \(m) changed grads[\(i)]")
                                        }
                                    }
                                }
                                try reducer.gradientsReady(from: 0)
                            }
                            try reducer.finish()
                            try comm.allReduceSum(reference, count: count)
                            for i in 0..<count { reference[i] *= 1 / Float(w) }
                            var worst: Float = 0
                            for i in 0..<count {
                                if exact || w <= 2 {
                                    if grads[i].bitPattern != reference[i].bitPattern {
                                        try expect(false, comm, "\(name): grads[\(i)] = \(grads[i]) but blocking all-reduce gives \(reference[i])")
                                    }
                                } else {
                                    worst = max(worst, abs(grads[i] - reference[i]))
                                }
                            }
                            try expect(worst <= 4e-7 * Float(micro), comm, "\(name): max difference \(worst) to the blocking all-reduce")
                            try comm.verifyReplicas(checksum: ReplicaChecksum.of(grads, count: count), what: "averaged gradients (\(name))")
                            for i in 0..<count { grads[i] = 0 }
                        }
                    }
                }
            }
        }
    }
    say(comm, "OK reducer configurations=\(configurations)")
}
