// Batch norm: finite-difference gradients, frozen mode, batch and running statistics as PyTorch has them.
import XCTest
import Foundation
import Model

/// Two in-process replicas of synchronized batch norm: each thread deposits its sums, waits for
/// the other, and both receive the same total (summed in rank order).
final class PairExchange: @unchecked Sendable {
    private let cond = NSCondition()
    private var slots: [[Double]] = [[], []]
    private var arrived = 0, generation = 0
    private var total: [Double] = []
    private(set) var timedOut = false
    private(set) var calls = 0

    func allReduce(rank: Int, _ p: UnsafeMutablePointer<Double>, count: Int) {
        cond.lock()
        let gen = generation
        slots[rank] = Array(UnsafeBufferPointer(start: p, count: count))
        arrived += 1
        if arrived == 2 {
            precondition(slots[0].count == slots[1].count, "PairExchange: replicas reduce different counts")
            total = zip(slots[0], slots[1]).map { $0 + $1 }
            arrived = 0; generation += 1; calls += 1
            cond.broadcast()
        } else {
            while generation == gen {
                if !cond.wait(until: Date().addingTimeInterval(20)) { timedOut = true; break }
            }
        }
        let t = total
        cond.unlock()
        if t.count == count { for i in 0..<count { p[i] = t[i] } }
    }
}

final class FakeReplica: CrossReplicaReducer, @unchecked Sendable {
    let rank: Int, exchange: PairExchange
    init(rank: Int, exchange: PairExchange) { self.rank = rank; self.exchange = exchange }
    var replicas: Int { 2 }
    func allReduceSum(_ p: UnsafeMutablePointer<Double>, count: Int) { exchange.allReduce(rank: rank, p, count: count) }
}

/// One replica's network state, handed to its thread.
final class ReplicaBox: @unchecked Sendable {
    let store = ParamStore()
    let bn: BatchNorm
    let x: Tensor
    init(channels: Int, shape: Shape) {
        bn = BatchNorm(store, name: "bn", channels: channels)
        store.allocate(); store.initialize(seed: 1)
        x = Tensor(shape, needsGrad: true)
        bn.plan(shape, needsGrad: true)
    }
}

final class BatchNormTests: XCTestCase {
    /// (n, c, h, w): 2-d and 1-d (h = w = 1) batch norm, odd sizes, batch 1 with a plane.
    let sweep: [(Int, Int, Int, Int)] = [
        (2, 3, 4, 5), (1, 2, 3, 3), (3, 4, 1, 1), (5, 2, 1, 1), (4, 3, 3, 2), (2, 1, 7, 1),
    ]

    /// Sets weight and bias to non-trivial values.
    func randomizeAffine(_ store: ParamStore, _ bn: BatchNorm, seed: UInt64 = 11) {
        var rng = TestRNG(seed)
        for c in 0..<bn.channels {
            store.params[bn.weightOffset + c] = rng.uniform(0.5, 1.5)
            store.params[bn.biasOffset + c] = rng.uniform(-0.5, 0.5)
        }
    }

    /// Per-channel (mean, biased var) in Double of a CNHW tensor.
    func channelStats(_ x: UnsafePointer<Float>, _ s: Shape) -> [(Double, Double)] {
        let m = s.n * s.plane
        return (0..<s.c).map { c in
            let row = (0..<m).map { Double(x[c * m + $0]) }
            let mu = row.reduce(0, +) / Double(m)
            return (mu, row.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(m))
        }
    }

    func testGradientsMatchFiniteDifferences() {
        for (n, c, h, w) in sweep {
            let store = ParamStore()
            let bn = BatchNorm(store, name: "bn", channels: c)
            store.allocate(); store.initialize(seed: 1); randomizeAffine(store, bn)
            checkLayer(bn, store: store, input: Shape(n: n, c: c, h: h, w: w), label: "batchnorm n\(n) c\(c) \(h)x\(w)",
                       eps: 1e-2, atol: 3e-3, rtol: 3e-2)
        }
    }

    func testFrozenGradientsAndBuffersUntouched() {
        for (n, c, h, w) in sweep {
            let store = ParamStore()
            let bn = BatchNorm(store, name: "bn", channels: c)
            store.allocate(); store.initialize(seed: 1); randomizeAffine(store, bn)
            for i in 0..<c {
                store.buffers[bn.runningMeanOffset + i] = 0.1 * Float(i) - 0.05
                store.buffers[bn.runningVarOffset + i] = 0.5 + 0.3 * Float(i)
            }
            bn.frozen = true
            checkLayer(bn, store: store, input: Shape(n: n, c: c, h: h, w: w),
                       label: "frozen batchnorm n\(n) c\(c) \(h)x\(w)", checkBuffersUntouched: true)
        }
    }

    func testTrainingForwardNormalizesWithBatchStatistics() {
        let s = Shape(n: 3, c: 4, h: 5, w: 3)
        let store = ParamStore()
        let bn = BatchNorm(store, name: "bn", channels: s.c)
        store.allocate(); store.initialize(seed: 1); randomizeAffine(store, bn)
        let x = Tensor(s); var rng = TestRNG(3); rng.fill(x.value, s.count, -2, 3)
        bn.plan(s, needsGrad: false)
        bn.forward(x, training: true)
        let stats = channelStats(x.value, s), m = s.n * s.plane
        var ref = [Float](repeating: 0, count: s.count)
        for c in 0..<s.c { for i in 0..<m {
            let xhat = (Double(x.value[c * m + i]) - stats[c].0) / (stats[c].1 + 1e-5).squareRoot()
            ref[c * m + i] = Float(xhat * Double(store.params[bn.weightOffset + c]) + Double(store.params[bn.biasOffset + c]))
        } }
        XCTAssertLessThan(maxAbsDiff(bn.output.value, ref), 1e-5)
    }

    func testRunningStatisticsUpdateLikePyTorch() {
        let s = Shape(n: 2, c: 3, h: 2, w: 3)
        let store = ParamStore()
        let bn = BatchNorm(store, name: "bn", channels: s.c)
        store.allocate(); store.initialize(seed: 1)
        XCTAssertEqual(store.entry(named: "bn.running_mean")?.region, .buffer)
        XCTAssertEqual(store.entry(named: "bn.running_var")?.region, .buffer)
        XCTAssertEqual(store.entry(named: "bn.weight")?.decay, false)
        XCTAssertEqual(store.entry(named: "bn.bias")?.decay, false)
        bn.plan(s, needsGrad: false)
        let m = Double(s.n * s.plane)
        var expMean = [Double](repeating: 0, count: s.c), expVar = [Double](repeating: 1, count: s.c)
        var rng = TestRNG(5)
        let x = Tensor(s)
        for step in 0..<3 {
            rng.fill(x.value, s.count, -1, 4)
            bn.forward(x, training: true)
            for (c, (mu, v)) in channelStats(x.value, s).enumerated() {
                expMean[c] = 0.9 * expMean[c] + 0.1 * mu
                expVar[c] = 0.9 * expVar[c] + 0.1 * v * m / (m - 1)   // unbiased
            }
            for c in 0..<s.c {
                XCTAssertEqual(Double(store.buffers[bn.runningMeanOffset + c]), expMean[c], accuracy: 1e-5, "step \(step) c\(c)")
                XCTAssertEqual(Double(store.buffers[bn.runningVarOffset + c]), expVar[c], accuracy: 1e-5, "step \(step) c\(c)")
            }
        }
        // Inference reads them and changes nothing.
        let before = Array(UnsafeBufferPointer(start: store.buffers, count: store.bufferCount))
        bn.forward(x, training: false)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: store.buffers, count: store.bufferCount)), before)
    }

    func testInferenceUsesRunningStatistics() {
        for frozenTraining in [false, true] {
            let s = Shape(n: 2, c: 3, h: 3, w: 3)
            let store = ParamStore()
            let bn = BatchNorm(store, name: "bn", channels: s.c)
            store.allocate(); store.initialize(seed: 1); randomizeAffine(store, bn)
            let rm: [Float] = [0.3, -1.2, 2], rv: [Float] = [0.25, 4, 1.5]
            for c in 0..<s.c { store.buffers[bn.runningMeanOffset + c] = rm[c]; store.buffers[bn.runningVarOffset + c] = rv[c] }
            let x = Tensor(s); var rng = TestRNG(8); rng.fill(x.value, s.count, -3, 3)
            bn.plan(s, needsGrad: frozenTraining)
            bn.frozen = frozenTraining
            bn.forward(x, training: frozenTraining)
            let m = s.n * s.plane
            var ref = [Float](repeating: 0, count: s.count)
            for c in 0..<s.c { for i in 0..<m {
                let xhat = (Double(x.value[c * m + i]) - Double(rm[c])) / (Double(rv[c]) + 1e-5).squareRoot()
                ref[c * m + i] = Float(xhat * Double(store.params[bn.weightOffset + c]) + Double(store.params[bn.biasOffset + c]))
            } }
            XCTAssertLessThan(maxAbsDiff(bn.output.value, ref), 1e-5, "frozen training \(frozenTraining)")
            XCTAssertEqual(store.buffers[bn.runningMeanOffset + 1], rm[1])
            XCTAssertEqual(store.buffers[bn.runningVarOffset + 1], rv[1])
        }
    }

    /// Two replicas with batches 2 and 3 (synchronized over a fake 2-replica reducer, on two
    /// threads) must reproduce one batch norm over the batch of 5: outputs, input gradients, the
    /// sum of parameter gradients and running statistics.
    func testSynchronizedMatchesSingleBatch() {
        for (h, w) in [(3, 2), (1, 1)] {
            let c = 3, n0 = 2, n1 = 3, n = n0 + n1, p = h * w
            let full = Shape(n: n, c: c, h: h, w: w)
            let ref = ReplicaBox(channels: c, shape: full)
            randomizeAffine(ref.store, ref.bn)
            var rng = TestRNG(21)
            rng.fill(ref.x.value, full.count, -1, 3)
            let dyFull = (0..<full.count).map { _ in rng.uniform() }
            ref.bn.forward(ref.x, training: true)
            for i in 0..<full.count { ref.bn.output.grad![i] = dyFull[i] }
            ref.x.zeroGrad(); ref.store.zeroGrad()
            ref.bn.backward(ref.x)

            let exchange = PairExchange()
            let reps = [(0, n0), (n0, n1)].enumerated().map { (rank, part) -> (ReplicaBox, Int, Int) in
                let b = ReplicaBox(channels: c, shape: Shape(n: part.1, c: c, h: h, w: w))
                randomizeAffine(b.store, b.bn)
                b.bn.reducer = FakeReplica(rank: rank, exchange: exchange)
                // Copy this replica's images out of the full CNHW batch.
                for ch in 0..<c { for i in 0..<part.1 {
                    (b.x.value + (ch * part.1 + i) * p).update(from: ref.x.value + (ch * n + part.0 + i) * p, count: p)
                } }
                return (b, part.0, part.1)
            }
            let done = DispatchSemaphore(value: 0)
            for (b, start, cnt) in reps {
                let dy = dyFull
                Thread {
                    b.bn.forward(b.x, training: true)
                    for ch in 0..<c { for i in 0..<cnt { for q in 0..<p {
                        b.bn.output.grad![(ch * cnt + i) * p + q] = dy[(ch * n + start + i) * p + q]
                    } } }
                    b.x.zeroGrad(); b.store.zeroGrad()
                    b.bn.backward(b.x)
                    done.signal()
                }.start()
            }
            for _ in 0..<2 { XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "replica thread hung") }
            XCTAssertFalse(exchange.timedOut, "reducer barrier timed out")
            XCTAssertEqual(exchange.calls, 2, "one all-reduce in forward and one in backward")
            var maxY: Float = 0, maxDx: Float = 0
            for (b, start, cnt) in reps {
                for ch in 0..<c { for i in 0..<cnt { for q in 0..<p {
                    let fi = (ch * n + start + i) * p + q, li = (ch * cnt + i) * p + q
                    maxY = max(maxY, abs(b.bn.output.value[li] - ref.bn.output.value[fi]))
                    maxDx = max(maxDx, abs(b.x.grad![li] - ref.x.grad![fi]))
                } } }
                for i in 0..<ref.store.bufferCount {
                    XCTAssertEqual(b.store.buffers[i], ref.store.buffers[i], accuracy: 1e-6, "running stat \(i) \(h)x\(w)")
                }
            }
            XCTAssertLessThan(maxY, 1e-5, "outputs \(h)x\(w)")
            XCTAssertLessThan(maxDx, 1e-5, "input gradients \(h)x\(w)")
            for i in 0..<ref.store.paramCount {
                XCTAssertEqual(reps[0].0.store.grads[i] + reps[1].0.store.grads[i], ref.store.grads[i], accuracy: 1e-4,
                               "parameter gradient \(i) \(h)x\(w)")
            }
        }
    }
}
