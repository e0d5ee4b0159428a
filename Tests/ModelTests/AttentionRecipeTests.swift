// A-SKD as the cited code runs it: the block pairing of student and teacher, finite differences of
// the whole distillation step with attention similarity on every block's pre-sigmoid maps, and
// the loss-balance measurement (which must leave the step it precedes bitwise unchanged).
import XCTest
import Model

final class AttentionRecipeTests: XCTestCase {
    func testBlockPairsMatchRelativeDepth() {
        let s = NetworkConfig.tiny, t = NetworkConfig.tinyTeacher     // depths [1, 1] vs [2, 1]
        let every = AttentionDistillConfig(stages: [0, 1], blocks: .every)
        XCTAssertEqual(every.blockPairs(student: s, teacher: t).map { "\($0.student)->\($0.teacher)" }, ["0.0->0.1", "1.0->1.0"])
        // Equal depths pair block for block; the teacher against itself, every block.
        XCTAssertEqual(every.blockPairs(student: t, teacher: t).map { "\($0.student)->\($0.teacher)" }, ["0.0->0.0", "0.1->0.1", "1.0->1.0"])
        // A two-block student against three teacher blocks: ceil((b + 1) * 3 / 2) - 1.
        var s2 = t, t3 = t
        s2.depths = [2, 1]; t3.depths = [3, 1]
        XCTAssertEqual(every.blockPairs(student: s2, teacher: t3).map { "\($0.student)->\($0.teacher)" }, ["0.0->0.1", "0.1->0.2", "1.0->1.0"])
        let last = AttentionDistillConfig(stages: [0], blocks: .last)
        XCTAssertEqual(last.blockPairs(student: t, teacher: t).map(\.student.description), ["0.1"])
        let listed = AttentionDistillConfig(stages: [], blocks: .listed([BlockRef(stage: 0, block: 1), BlockRef(stage: 1, block: 0)]))
        XCTAssertEqual(listed.blockPairs(student: t, teacher: t).map(\.teacher.description), ["0.1", "1.0"])
        XCTAssertEqual(listed.problems(student: s), ["attention: block 0.1 does not exist in the student (depths [1, 1])"])
        XCTAssertEqual(BlockRef(parsing: "2.10"), BlockRef(stage: 2, block: 10))
        XCTAssertNil(BlockRef(parsing: "2"))
        XCTAssertNil(BlockRef(parsing: "-1.0"))
    }

    func testCompatibilityNamesMissingBlocksAndStages() {
        var l = LossConfig()
        l.attentionSimilarity = 5
        l.attention = AttentionDistillConfig(stages: [0, 5], blocks: .every)
        let p = DistillationStep.compatibilityProblems(student: .tiny, teacher: .tinyTeacher, studentClasses: 4, teacherClasses: 4, loss: l)
        XCTAssert(p.contains("attention: stage 5 does not exist (the student has 2)"), "\(p)")
        l.attention = AttentionDistillConfig(stages: [0, 1], blocks: .every, channel: false, spatial: false)
        XCTAssert(DistillationStep.compatibilityProblems(student: .tiny, teacher: .tinyTeacher, studentClasses: 4, teacherClasses: 4, loss: l)
            .contains("attention: neither channel nor spatial maps chosen"))
    }

    /// A tiny student and teacher with one loaded batch.
    func makeStep(_ loss: LossConfig, n: Int = 4, classes: Int = 5) -> (DistillationStep, [Int32]) {
        let student = FaceModel(config: .tiny, classes: classes, margin: .arcFace(s: 16, m: 0.3), seed: 3, trainable: true)
        let teacher = FaceModel(config: .tinyTeacher, classes: classes, margin: .arcFace(s: 16, m: 0.3), seed: 4, trainable: false)
        let step = DistillationStep(student: student, teacher: teacher, loss: loss)
        step.plan(batch: n)
        var rng = TestRNG(11)
        let size = 3 * 32 * 32 * n
        let hr = UnsafeMutablePointer<Float>.allocate(capacity: size), lr = UnsafeMutablePointer<Float>.allocate(capacity: size)
        defer { hr.deallocate(); lr.deallocate() }
        rng.fill(hr, size); for i in 0..<size { lr[i] = 0.7 * hr[i] + 0.3 * rng.uniform() }
        teacher.net.input.loadNCHW(hr)
        student.net.input.loadNCHW(lr)
        step.teacherForward()
        return (step, (0..<n).map { Int32($0 % classes) })
    }

    static var askdPaper: LossConfig {
        var l = LossConfig()
        l.recognition = 0
        l.attentionSimilarity = 5
        l.attention = AttentionDistillConfig(stages: [0, 1], blocks: .every, channel: true, spatial: true,
                                             beforeSigmoid: true, meanOverMaps: false)
        return l
    }

    /// Finite differences of the whole student under the A-SKD term alone (every block, maps
    /// before the sigmoid, sum of maps, weight 5): the gradient reaches every block through the
    /// pre-sigmoid map gradients of each CBAM.
    func testWholeStepGradientOfEveryBlockPreSigmoidASKD() {
        let (step, labels) = makeStep(Self.askdPaper)
        let st = step.student.store
        func value() -> Double {
            st.zeroGrad()
            return Double(labels.withUnsafeBufferPointer { step.studentForwardBackward(labels: $0.baseAddress!) }.total)
        }
        let v0 = value()
        XCTAssertGreaterThan(v0, 0.1, "the A-SKD term of two different networks should not vanish")
        let analytic = Array(UnsafeBufferPointer(start: st.grads, count: st.paramCount))
        var bad: [GradMismatch] = []
        analytic.withUnsafeBufferPointer { a in
            for name in ["layers.0.0.conv1.weight", "layers.0.0.cbam.mlp.fc1.weight", "layers.0.0.cbam.mlp.fc2.bias",
                         "layers.0.0.cbam.spatial.weight", "layers.1.0.conv3.weight", "stem.conv.weight"] {
                let e = st.entry(named: name)!
                bad += numericCheck(name, pointer: st.params + e.offset, analytic: a.baseAddress! + e.offset, count: e.count,
                                    samples: 8, eps: 5e-3, atol: 5e-3, rtol: 3e-2, value: value)
            }
        }
        XCTAssert(bad.isEmpty, bad.map(\.description).joined(separator: "\n"))
        // The term is a sum over 2 maps x 2 distilled blocks of (1 - cos) in [0, 2], times 5.
        XCTAssertLessThanOrEqual(v0, 5 * 4 * 2)
    }

    /// Identical networks on identical inputs have identical maps: the A-SKD term is 0.
    func testASKDOfIdenticalNetworksIsZero() {
        let a = FaceModel(config: .tinyTeacher, classes: 3, margin: .softmax, seed: 8, trainable: true)
        let b = FaceModel(config: .tinyTeacher, classes: 3, margin: .softmax, seed: 8, trainable: false)
        let step = DistillationStep(student: a, teacher: b, loss: Self.askdPaper)
        step.plan(batch: 2)
        var rng = TestRNG(5)
        let x = UnsafeMutablePointer<Float>.allocate(capacity: 3 * 32 * 32 * 2); defer { x.deallocate() }
        rng.fill(x, 3 * 32 * 32 * 2)
        a.net.input.loadNCHW(x); b.net.input.loadNCHW(x)
        // The frozen copy runs in inference mode; give it the batch statistics by running a training forward.
        b.net.forward(training: true)
        a.store.zeroGrad()
        let out = step.studentForwardBackward(labels: [Int32(0), 1])
        XCTAssertEqual(out.attentionSimilarity, 0, accuracy: 1e-5)
    }

    /// The loss-balance passes leave the gradients and batch-norm statistics of the real step
    /// bitwise as they are without them, and a single-term loss's measured norm is the norm of
    /// that step's network gradient.
    func testLossBalanceLeavesTheStepUnchanged() {
        var l = Self.askdPaper
        l.recognition = 1; l.kd = 1
        func run(measure: Bool) -> (grads: [Float], buffers: [Float], norms: [(DistillationStep.Term, Float)]) {
            let (step, labels) = makeStep(l)
            let st = step.student.store
            var norms: [(DistillationStep.Term, Float)] = []
            if measure { norms = labels.withUnsafeBufferPointer { step.termGradientNorms(labels: $0.baseAddress!) }.map { ($0.term, $0.gradNorm) } }
            st.zeroGrad()
            _ = labels.withUnsafeBufferPointer { step.studentForwardBackward(labels: $0.baseAddress!) }
            return (Array(UnsafeBufferPointer(start: st.grads, count: st.paramCount)),
                    Array(UnsafeBufferPointer(start: st.buffers, count: st.bufferCount)), norms)
        }
        let plain = run(measure: false), measured = run(measure: true)
        XCTAssertEqual(plain.grads, measured.grads)
        XCTAssertEqual(plain.buffers, measured.buffers)
        XCTAssertEqual(measured.norms.map(\.0), [.recognition, .kd, .attentionSimilarity])
        XCTAssert(measured.norms.allSatisfy { $0.1 > 0 && $0.1.isFinite }, "\(measured.norms)")

        // One term alone: its measured norm is the network-gradient norm of the step.
        var only = LossConfig(); only.recognition = 0; only.kd = 1
        let (step, labels) = makeStep(only)
        let norms = labels.withUnsafeBufferPointer { step.termGradientNorms(labels: $0.baseAddress!) }
        let st = step.student.store
        st.zeroGrad()
        _ = labels.withUnsafeBufferPointer { step.studentForwardBackward(labels: $0.baseAddress!) }
        var ss = 0.0
        for i in 0..<step.student.head.weightOffset { ss += Double(st.grads[i]) * Double(st.grads[i]) }
        XCTAssertEqual(norms.count, 1)
        XCTAssertEqual(Double(norms[0].gradNorm), ss.squareRoot(), accuracy: 1e-6 * max(1, ss.squareRoot()))
    }
}
