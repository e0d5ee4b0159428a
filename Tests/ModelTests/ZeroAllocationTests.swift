// The steady-state distillation step allocates nothing: after planning and a warm-up step,
// teacher forward + student forward/losses/backward + SGD make no heap allocation on any thread
// (counted by interposing malloc, Tests/AllocCounter), with 1 and 2 worker threads, for the
// default recipe's terms (CE, KD, A-SKD on every block, attention transfer).
import XCTest
import AllocCounter
import CKernels
import Model
import KDCore

final class ZeroAllocationTests: XCTestCase {
    override func tearDown() { Compute.setThreads(1) }

    func testCounterSeesAnAllocation() {
        kd_alloc_count_start()
        let p = UnsafeMutablePointer<Float>.allocate(capacity: 1000)
        let n = kd_alloc_count_stop()
        p.deallocate()
        XCTAssertGreaterThanOrEqual(n, 1, "the counter must see Swift's allocations")
    }

    func testSteadyStateStepAllocatesNothing() {
        let cfg = NetworkConfig.tiny, tcfg = NetworkConfig.tinyTeacher
        for threads in [1, 2] {
            Compute.setThreads(threads)
            let s = FaceModel(config: cfg, classes: 20, margin: .arcFace(s: 64, m: 0.5), seed: 1, trainable: true)
            let t = FaceModel(config: tcfg, classes: 20, margin: .arcFace(s: 64, m: 0.5), seed: 2, trainable: false)
            var loss = LossConfig()
            loss.kd = 1; loss.attentionSimilarity = 5; loss.attentionTransfer = 50
            loss.attention = AttentionDistillConfig(stages: [0, 1], blocks: .every, beforeSigmoid: true)
            let step = DistillationStep(student: s, teacher: t, loss: loss)
            let sgd = SGD(store: s.store, config: SGDConfig())
            let n = 16
            step.plan(batch: n)
            var rng = SplitMix64(seed: 5)
            let img = (0..<(n * 3 * cfg.inputSize * cfg.inputSize)).map { _ in Float(rng.nextUnit()) }
            let labels = (0..<n).map { Int32($0 % 20) }
            img.withUnsafeBufferPointer { s.net.input.loadNCHW($0.baseAddress!); t.net.input.loadNCHW($0.baseAddress!) }
            labels.withUnsafeBufferPointer { lb in
                func oneStep() {
                    step.teacherForward()
                    s.store.zeroGrad()
                    _ = step.studentForwardBackward(labels: lb.baseAddress!)
                    sgd.step(lr: 0.01)
                }
                oneStep()   // warm-up: lazily created worker threads and OpenBLAS buffers
                kd_alloc_count_start()
                for _ in 0..<3 { oneStep() }
                let count = kd_alloc_count_stop()
                XCTAssertEqual(count, 0, "\(threads) thread(s): \(count) heap allocations in 3 steady-state steps")
            }
        }
    }
}
