// Reducer equivalence on a realistic small model: linear regression followed by batch norm
// (synchronized, per-rank or none) and an affine output, trained by momentum SGD with global batch
// B on W ranks. The global batch of every step is the same set of samples for every W (see
// DistributedSampler), so W ranks must reproduce the 1-rank parameters up to float rounding, and
// the ranks must agree bitwise after every step.
//
//   N = 240 samples, D = 37 features; params (P = D + 2): w (D) | gamma | beta; buffers (Q = 2):
//   running mean | running var of z. Forward: z = w·x, zhat = (z - mu) / sqrt(var + eps),
//   yhat = gamma * zhat + beta, loss = mean (yhat - y)^2 / 2. Backward reports layers ready in
//   reverse order: BN affine (from D), w[20..<D] (from 20), w[0..<20] (from 0).

import Dist
import Foundation
import KDCore

func runEquivalence(_ comm: Communicator, _ options: DistHarness.Equivalence) throws {
    let steps = options.steps
    let globalBatch = options.globalBatch
    let micro = options.micro
    let overlap = options.overlap != 0
    let bn = options.bn
    guard micro >= 1 else { throw HarnessError("--micro must be at least 1") }
    let w = comm.size, r = comm.rank
    let n = 240, d = 37, p = d + 2, split = 20
    let lr: Float = 0.05, beta1: Float = 0.9, eps = 1e-5

    // Data, identical on every rank.
    var rng = SplitMix64(seed: 7)
    func uniform() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) }
    let x = (0..<(n * d)).map { _ in uniform() }
    let truth = (0..<d).map { Float(sin(Double($0))) }
    let y = (0..<n).map { i in (0..<d).reduce(Float(0.5)) { $0 + truth[$1] * x[i * d + $1] } + 0.1 * uniform() }

    let params = UnsafeMutablePointer<Float>.allocate(capacity: p)
    let grads = UnsafeMutablePointer<Float>.allocate(capacity: p)
    let momentum = UnsafeMutablePointer<Float>.allocate(capacity: p)
    let buffers = UnsafeMutablePointer<Float>.allocate(capacity: 2)
    defer { params.deallocate(); grads.deallocate(); momentum.deallocate(); buffers.deallocate() }
    // Deliberately different initial state on every rank: the broadcast must make them identical.
    var initRng = SplitMix64(seed: 1000 + UInt64(r))
    for i in 0..<d { params[i] = 0.1 * Float(Double(initRng.next() >> 11) / Double(1 << 53)) }
    params[d] = 1
    params[d + 1] = 0
    for i in 0..<p { momentum[i] = Float(r); grads[i] = 0 }
    buffers[0] = Float(r)
    buffers[1] = 1
    try comm.broadcast(params, count: p)
    try comm.broadcast(momentum, count: p)
    try comm.broadcast(buffers, count: 2)

    let reducer = GradientReducer(communicator: comm, gradients: grads, count: p,
                                  options: ReducerOptions(bucketFloats: 8, firstBucketFloats: 3, overlap: overlap))
    var sampler = try DistributedSampler(datasetSize: n, globalBatch: globalBatch, worldSize: w, rank: r, seed: 1234)
    let b = sampler.perRankBatch
    guard b % micro == 0 else { throw HarnessError("per-rank batch \(b) not divisible by --micro \(micro)") }
    if bn != .none && micro > 1 { throw HarnessError("--micro > 1 changes the batch-norm groups; use --bn none") }
    let mb = b / micro
    var indices: [Int] = []
    var z = [Float](repeating: 0, count: mb), zhat = z, dyhat = z, dz = z
    var position = SamplerPosition(epoch: 0, step: 0)
    var lastLoss = 0.0

    for step in 0..<steps {
        sampler.indices(epoch: position.epoch, step: position.step, into: &indices)
        for i in 0..<p { grads[i] = 0 }
        var loss = 0.0
        for m in 0..<micro {
            reducer.beginMicroBatch(m, of: micro)
            let rows = Array(indices[(m * mb)..<((m + 1) * mb)])
            // Forward.
            for (k, i) in rows.enumerated() {
                var s: Float = 0
                for j in 0..<d { s += params[j] * x[i * d + j] }
                z[k] = s
            }
            var inv = 1.0, count = Double(mb)
            if bn != .none {
                var stats = [z.reduce(0.0) { $0 + Double($1) }, z.reduce(0.0) { $0 + Double($1) * Double($1) }, Double(mb)]
                if bn == .sync { try stats.withUnsafeMutableBufferPointer { try comm.allReduceSum($0.baseAddress!, count: 3) } }
                count = stats[2]
                let mu = stats[0] / count
                let variance = max(0, stats[1] / count - mu * mu)
                inv = 1 / (variance + eps).squareRoot()
                buffers[0] = 0.9 * buffers[0] + 0.1 * Float(mu)
                buffers[1] = 0.9 * buffers[1] + 0.1 * Float(variance * count / max(1, count - 1))
                for k in 0..<mb { zhat[k] = Float((Double(z[k]) - mu) * inv) }
            } else {
                for k in 0..<mb { zhat[k] = z[k] }
            }
            let gamma = bn == .none ? 1 : params[d], betaOut = params[d + 1]
            for (k, i) in rows.enumerated() {
                let e = gamma * zhat[k] + betaOut - y[i]
                loss += Double(e * e) / Double(2 * mb * micro)
                dyhat[k] = e / Float(mb * micro)
            }
            // Backward: BN affine, then the two halves of w.
            var dgamma: Float = 0, dbeta: Float = 0
            for k in 0..<mb { dgamma += dyhat[k] * zhat[k]; dbeta += dyhat[k] }
            if bn != .none { grads[d] += dgamma }
            grads[d + 1] += dbeta
            try reducer.gradientsReady(from: d)
            if bn != .none {
                var sums = [0.0, 0.0]
                for k in 0..<mb {
                    let g = Double(gamma * dyhat[k])
                    sums[0] += g
                    sums[1] += g * Double(zhat[k])
                }
                if bn == .sync { try sums.withUnsafeMutableBufferPointer { try comm.allReduceSum($0.baseAddress!, count: 2) } }
                for k in 0..<mb {
                    dz[k] = Float(inv * (Double(gamma * dyhat[k]) - sums[0] / count - Double(zhat[k]) * sums[1] / count))
                }
            } else {
                for k in 0..<mb { dz[k] = dyhat[k] }
            }
            for (lo, hi) in [(split, d), (0, split)] {
                for j in lo..<hi {
                    var g: Float = 0
                    for (k, i) in rows.enumerated() { g += dz[k] * x[i * d + j] }
                    grads[j] += g
                }
                try reducer.gradientsReady(from: lo)
            }
        }
        try reducer.finish()
        for i in 0..<p {
            momentum[i] = beta1 * momentum[i] + grads[i]
            params[i] -= lr * momentum[i]
        }
        var sum = ReplicaChecksum()
        sum.combine(params, count: p)
        sum.combine(momentum, count: p)
        if bn != .local { sum.combine(buffers, count: 2) }
        try comm.verifyReplicas(checksum: sum.value, what: "parameters after step \(step)")
        lastLoss = try comm.mean(loss)
        position = sampler.advance(position)
    }
    // Before a checkpoint: average the running statistics, then all replicas must agree.
    try comm.allReduceMean(buffers, count: 2)
    try comm.verifyReplicas(checksum: ReplicaChecksum.of(buffers, count: 2), what: "batch-norm buffers before checkpoint")
    say(comm, "WEIGHTS " + hex(UnsafeBufferPointer(start: params, count: p)))
    say(comm, "BUFFERS " + hex(UnsafeBufferPointer(start: buffers, count: 2)))
    say(comm, "OK equivalence size=\(w) bn=\(bn.rawValue) overlap=\(overlap) micro=\(micro) steps=\(steps) loss=\(lastLoss)")
}
