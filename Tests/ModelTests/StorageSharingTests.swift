// Shared activation storage (FaceNet.sharesStorage: arenas, in-place ReLUs, ping-pong block
// buffers) must compute exactly what every-tensor-owns-its-storage computes: the same bits for
// the teacher's inference maps and embeddings, and for the student's losses, gradients and
// updated weights over several steps (stale arena contents from an earlier block, step or
// batch shape would show up as a difference).
import XCTest
import Model
import KDCore

final class StorageSharingTests: XCTestCase {
    /// Two stages, two blocks each (identity and downsampling shortcuts, lent and kept outputs).
    let student = NetworkConfig(inputSize: 32, stemChannels: 8, depths: [2, 2], widths: [16, 32], strides: [1, 2],
                                cardinality: 4, groupWidth: 2, cbamReduction: 4, cbamKernel: 3, embeddingSize: 32,
                                dropout: 0)
    let teacher = NetworkConfig(inputSize: 32, stemChannels: 8, depths: [3, 2], widths: [16, 32], strides: [1, 2],
                                cardinality: 4, groupWidth: 2, cbamReduction: 4, cbamKernel: 3, embeddingSize: 32,
                                dropout: 0)

    func images(_ n: Int, _ c: NetworkConfig, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<(n * 3 * c.inputSize * c.inputSize)).map { _ in Float(rng.nextUnit()) * 2 - 1 }
    }

    func bits(_ p: UnsafePointer<Float>, _ n: Int) -> [UInt32] { (0..<n).map { p[$0].bitPattern } }

    func testInferenceForwardIsBitwiseTheOwnedStorageForward() {
        var outputs: [[UInt32]] = []
        var memory: [Int] = []
        for shares in [false, true] {
            let before = ActivationMemory.bytes
            let m = FaceModel(config: teacher, classes: 10, margin: .arcFace(s: 64, m: 0.5), seed: 7, trainable: false)
            m.net.sharesStorage = shares
            var out: [UInt32] = []
            for (n, seed) in [(6, 1), (4, 2), (6, 3)] as [(Int, UInt64)] {    // re-planning reuses the arena
                m.plan(batch: n, needsGrad: false)
                images(n, teacher, seed: seed).withUnsafeBufferPointer { m.net.input.loadNCHW($0.baseAddress!) }
                m.forward(training: false)
                out += bits(m.embeddingRows, n * teacher.embeddingSize)
                for b in m.net.allBlocks {
                    out += bits(b.cbam.ca.value, b.cbam.ca.shape.count) + bits(b.cbam.saLogit.value, b.cbam.saLogit.shape.count)
                }
                for t in m.net.stageOutputs { out += bits(t.value, t.shape.count) }
            }
            memory.append(ActivationMemory.bytes - before)
            outputs.append(out)
            withExtendedLifetime(m) {}
        }
        XCTAssertEqual(outputs[0].count, outputs[1].count)
        XCTAssert(outputs[0] == outputs[1], "inference with shared storage differs from owned storage")
        XCTAssertLessThan(memory[1], memory[0] / 2, "shared storage should at least halve inference memory (\(memory))")
    }

    func testTrainingStepsAreBitwiseTheOwnedStorageSteps() {
        var results: [[UInt32]] = []
        var memory: [Int] = []
        for shares in [false, true] {
            let before = ActivationMemory.bytes
            let s = FaceModel(config: student, classes: 10, margin: .arcFace(s: 64, m: 0.5), seed: 1, trainable: true)
            let t = FaceModel(config: teacher, classes: 10, margin: .arcFace(s: 64, m: 0.5), seed: 2, trainable: false)
            s.net.sharesStorage = shares; t.net.sharesStorage = shares
            var loss = LossConfig()
            loss.kd = 1; loss.attentionSimilarity = 5; loss.attentionTransfer = 50; loss.embedding = 1
            loss.attention = AttentionDistillConfig(stages: [0, 1], blocks: .every, beforeSigmoid: true)
            let step = DistillationStep(student: s, teacher: t, loss: loss)
            let sgd = SGD(store: s.store, config: SGDConfig())
            var out: [UInt32] = []
            for (n, seed) in [(6, 11), (6, 12), (4, 13)] as [(Int, UInt64)] {
                step.plan(batch: n)
                let img = images(n, student, seed: seed)
                img.withUnsafeBufferPointer { s.net.input.loadNCHW($0.baseAddress!); t.net.input.loadNCHW($0.baseAddress!) }
                let labels = (0..<n).map { Int32(($0 * 3 + Int(seed)) % 10) }
                step.teacherForward()
                s.store.zeroGrad()
                let l = labels.withUnsafeBufferPointer { step.studentForwardBackward(labels: $0.baseAddress!) }
                out += [l.total, l.recognition, l.kd, l.attentionSimilarity, l.attentionTransfer, l.embedding].map(\.bitPattern)
                out += bits(s.store.grads, s.store.paramCount)
                sgd.step(lr: 0.05)
                out += bits(s.store.params, s.store.paramCount)
            }
            memory.append(ActivationMemory.bytes - before)
            results.append(out)
            withExtendedLifetime((s, t, step)) {}
        }
        XCTAssertEqual(results[0].count, results[1].count)
        let firstDiff = zip(results[0], results[1]).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        XCTAssertNil(firstDiff, "training with shared storage differs from owned storage at value \(firstDiff ?? -1)")
        XCTAssertLessThan(memory[1], memory[0] * 7 / 10, "shared storage should save at least 30% in training (\(memory))")
    }
}
