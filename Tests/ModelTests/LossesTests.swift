// Losses: cross-entropy and Hinton KD (values, stability, finite differences, PyTorch references).
import XCTest
import Model

final class LossesTests: XCTestCase {
    // MARK: cross-entropy

    func testCrossEntropyGradients() {
        for (n, k, weight) in [(1, 2, Float(1)), (3, 5, 0.7), (4, 8, 1.5), (5, 7, 1)] {
            let label = "CE N\(n) K\(k) weight \(weight)"
            var rng = TestRNG(UInt64(n * 31 + k))
            let z = testBuffer(randomArray(&rng, n * k, -3, 3)); defer { z.deallocate() }
            let y = (0..<n).map { _ in Int32(rng.g.next() % UInt64(k)) }
            let d = testBuffer(zeros: n * k); defer { d.deallocate() }
            let value = { Double(weight) * Double(y.withUnsafeBufferPointer {
                crossEntropyLoss(logits: z, labels: $0.baseAddress!, n: n, k: k, dLogits: nil) }) }
            y.withUnsafeBufferPointer { _ = crossEntropyLoss(logits: z, labels: $0.baseAddress!, n: n, k: k, dLogits: d, weight: weight) }
            checkGradient(label, "logits", pointer: z, analytic: array(d, n * k), eps: 1e-2, atol: 1e-4, rtol: 1e-2, value: value)
        }
    }

    func testCrossEntropyKnownValuesAndStability() {
        // Equal logits: loss = log K whatever their magnitude.
        for (k, v) in [(4, Float(0)), (10, 1e4), (7, -3e4)] {
            let z = [Float](repeating: v, count: 2 * k), y: [Int32] = [0, Int32(k - 1)]
            var d = [Float](repeating: 0, count: 2 * k)
            let loss = crossEntropyLoss(logits: z, labels: y, n: 2, k: k, dLogits: &d)
            XCTAssertEqual(loss, log(Float(k)), accuracy: 1e-5, "uniform K\(k) logits \(v)")
            XCTAssertEqual(d[0], (1 / Float(k) - 1) / 2, accuracy: 1e-6)
        }
        // Huge spread: finite loss equal to the margin, gradient rows summing to zero.
        let z: [Float] = [5000, -5000, 0, 100], y: [Int32] = [1, 0]
        var d = [Float](repeating: 0, count: 4)
        let loss = crossEntropyLoss(logits: z, labels: y, n: 2, k: 2, dLogits: &d)
        XCTAssertEqual(loss, (10000 + 100) / 2, accuracy: 1e-2)
        XCTAssertEqual(d[0] + d[1], 0, accuracy: 1e-7)
        XCTAssertEqual(d[0], 0.5, accuracy: 1e-6)
        XCTAssertTrue(d.allSatisfy(\.isFinite))
    }

    func testCrossEntropyMatchesPyTorch() throws {
        let fx = try LossFixture.load()
        for c in fx.list("cross_entropy") {
            let n = c.int("n"), k = c.int("k"), label = "CE N\(n) K\(k)"
            var d = [Float](repeating: 0, count: n * k)
            let loss = crossEntropyLoss(logits: c.floats("logits"), labels: c.ints("labels"), n: n, k: k, dLogits: &d)
            assertClose(loss, c.float("loss"), atol: 1e-5, rtol: 1e-5, "\(label) loss")
            assertClose(d, c.floats("d_logits"), atol: 1e-6, rtol: 1e-4, "\(label) d logits")
        }
    }

    // MARK: Hinton KD

    func testDistillationKLGradients() {
        for (n, k, t) in [(1, 2, Float(1)), (3, 6, 4), (4, 9, 2), (2, 5, 0.5)] {
            let label = "KD N\(n) K\(k) T\(t)"
            var rng = TestRNG(UInt64(n * 17 + k))
            let s = testBuffer(randomArray(&rng, n * k, -3, 3)); defer { s.deallocate() }
            let tch = randomArray(&rng, n * k, -3, 3)
            let d = testBuffer(zeros: n * k); defer { d.deallocate() }
            let weight: Float = 2
            _ = distillationKLLoss(student: s, teacher: tch, n: n, k: k, temperature: t, dStudent: d, weight: weight)
            let value = { Double(weight) * Double(distillationKLLoss(student: s, teacher: tch, n: n, k: k, temperature: t, dStudent: nil)) }
            checkGradient(label, "student logits", pointer: s, analytic: array(d, n * k), eps: 1e-2 * min(t, 1),
                          atol: 1e-4, rtol: 1e-2, value: value)
        }
    }

    func testDistillationKLMatchesPyTorch() throws {
        let fx = try LossFixture.load()
        for c in fx.list("kd") {
            let n = c.int("n"), k = c.int("k"), t = c.float("temperature"), label = "KD N\(n) K\(k) T\(t)"
            var d = [Float](repeating: 0, count: n * k)
            let loss = distillationKLLoss(student: c.floats("student"), teacher: c.floats("teacher"), n: n, k: k,
                                          temperature: t, dStudent: &d)
            assertClose(loss, c.float("loss"), atol: 1e-5, rtol: 1e-5, "\(label) loss")
            assertClose(d, c.floats("d_student"), atol: 1e-6, rtol: 1e-4, "\(label) d student")
        }
    }

    /// Catches the known bug of dividing the KD loss by the class count (or by N*K): the loss must
    /// equal a hand value, be unchanged by padding both sides with (near-)impossible classes, and by
    /// repeating the batch.
    func testDistillationKLIsAveragedOverBatchNotClasses() {
        // N = 1, K = 2, T = 1: teacher probabilities (3/4, 1/4), student (1/2, 1/2).
        let teacher: [Float] = [log(3), 0], student: [Float] = [0, 0]
        let expected = 0.75 * log(1.5) + 0.25 * log(0.5)
        XCTAssertEqual(distillationKLLoss(student: student, teacher: teacher, n: 1, k: 2, temperature: 1, dStudent: nil),
                       Float(expected), accuracy: 1e-6, "hand value")
        // T = 2 multiplies by T² the KL of the softened distributions.
        let soft = distillationKLLoss(student: [0, 0], teacher: [2 * log(3), 0], n: 1, k: 2, temperature: 2, dStudent: nil)
        XCTAssertEqual(soft, Float(4 * expected), accuracy: 1e-5, "T² scaling")

        var rng = TestRNG(5)
        let n = 3, k = 5, t: Float = 3
        let s = randomArray(&rng, n * k, -2, 2), tc = randomArray(&rng, n * k, -2, 2)
        let base = distillationKLLoss(student: s, teacher: tc, n: n, k: k, temperature: t, dStudent: nil)
        XCTAssertGreaterThan(base, 0.01)
        for extra in [1, 5, 40] {
            let kk = k + extra
            var sp = [Float](repeating: -1e4, count: n * kk), tp = sp
            for r in 0..<n { for j in 0..<k { sp[r * kk + j] = s[r * k + j]; tp[r * kk + j] = tc[r * k + j] } }
            let padded = distillationKLLoss(student: sp, teacher: tp, n: n, k: kk, temperature: t, dStudent: nil)
            XCTAssertEqual(padded, base, accuracy: 1e-5 * max(1, base), "KD changed with \(extra) padded classes")
        }
        let twice = distillationKLLoss(student: s + s, teacher: tc + tc, n: 2 * n, k: k, temperature: t, dStudent: nil)
        XCTAssertEqual(twice, base, accuracy: 1e-5 * max(1, base), "KD is not a mean over the batch")
        XCTAssertEqual(distillationKLLoss(student: tc, teacher: tc, n: n, k: k, temperature: t, dStudent: nil), 0,
                       accuracy: 1e-6, "KL of equal distributions")
    }

    // MARK: attention transfer

    /// (N, Cs, Ct, H, W)
    let atSweep: [(Int, Int, Int, Int, Int)] = [(1, 1, 2, 2, 2), (2, 3, 5, 4, 3), (3, 4, 4, 5, 5), (2, 2, 3, 1, 7)]

    func testAttentionTransferGradients() {
        let ws = LossWorkspace()
        for (n, cs, ct, h, w) in atSweep {
            let label = "AT N\(n) Cs\(cs) Ct\(ct) \(h)x\(w)"
            let p = h * w, weight: Float = 500    // beta / 2 with the original beta = 1e3
            var rng = TestRNG(UInt64(n * 7 + cs * 3 + ct))
            let s = testBuffer(randomArray(&rng, cs * n * p)); defer { s.deallocate() }
            let t = randomArray(&rng, ct * n * p)
            let d = testBuffer(zeros: cs * n * p); defer { d.deallocate() }
            _ = attentionTransferLoss(student: s, studentChannels: cs, teacher: t, teacherChannels: ct, n: n, plane: p,
                                      dStudent: d, weight: weight, workspace: ws)
            let value = { Double(weight) * Double(attentionTransferLoss(student: s, studentChannels: cs, teacher: t,
                teacherChannels: ct, n: n, plane: p, dStudent: nil, workspace: ws)) }
            checkGradient(label, "student map", pointer: s, analytic: array(d, cs * n * p), eps: 1e-3, atol: 2e-3,
                          rtol: 2e-2, value: value)
        }
    }

    func testAttentionTransferMatchesPyTorch() throws {
        let fx = try LossFixture.load()
        let ws = LossWorkspace()
        for c in fx.list("attention_transfer") {
            let n = c.int("n"), cs = c.int("cs"), ct = c.int("ct"), h = c.int("h"), w = c.int("w")
            let label = "AT N\(n) Cs\(cs) Ct\(ct) \(h)x\(w)"
            // Through the Tensor overload: CNHW tensors, gradient added into student.grad.
            let ss = Shape(n: n, c: cs, h: h, w: w), ts = Shape(n: n, c: ct, h: h, w: w)
            let student = Tensor(ss, needsGrad: true), teacher = Tensor(ts)
            student.plan(ss, needsGrad: true); teacher.plan(ts, needsGrad: false)
            c.floats("student").withUnsafeBufferPointer { student.value.update(from: $0.baseAddress!, count: ss.count) }
            c.floats("teacher").withUnsafeBufferPointer { teacher.value.update(from: $0.baseAddress!, count: ts.count) }
            student.zeroGrad()
            let loss = attentionTransferLoss(student: student, teacher: teacher, weight: 1, workspace: ws)
            assertClose(loss, c.float("loss"), atol: 1e-7, rtol: 1e-4, "\(label) loss")
            assertClose(array(student.grad!, ss.count), c.floats("d_student"), atol: 1e-7, rtol: 1e-3, "\(label) d student")
        }
    }

    // MARK: attention similarity (A-SKD)

    func testAttentionSimilarityGradients() {
        // channel attention (C, N) feature-major, spatial (1, N, H, W), row-major (N, D), general CNHW.
        let shapes = [Shape(n: 3, c: 6, h: 1, w: 1), Shape(n: 2, c: 1, h: 4, w: 5), Shape(n: 4, c: 1, h: 1, w: 7),
                      Shape(n: 2, c: 3, h: 2, w: 3), Shape(n: 1, c: 2, h: 1, w: 1)]
        for (i, shape) in shapes.enumerated() {
            let label = "A-SKD map \(shape)"
            var rng = TestRNG(UInt64(40 + i))
            let s = testBuffer(randomArray(&rng, shape.count, 0.05, 1)); defer { s.deallocate() }
            let t = testBuffer(randomArray(&rng, shape.count, 0.05, 1)); defer { t.deallocate() }
            let d = testBuffer(zeros: shape.count); defer { d.deallocate() }
            let weight: Float = 10
            attentionSimilarityLoss(AttentionMapPair(student: s, teacher: t, dStudent: d, shape: shape), weight: weight)
            let value = { Double(weight) * Double(attentionSimilarityLoss(
                AttentionMapPair(student: s, teacher: t, dStudent: nil, shape: shape))) }
            checkGradient(label, "student map", pointer: s, analytic: array(d, shape.count), eps: 1e-3, atol: 2e-3,
                          rtol: 2e-2, value: value)
        }
    }

    func testAttentionSimilarityLayoutAndReduction() {
        // The same per-sample vectors laid out (N, D) row-major and (D, N) feature-major give equal
        // losses; sum and mean over maps differ by the map count; identical maps give zero.
        var rng = TestRNG(8)
        let n = 3, dim = 4
        let sRows = randomArray(&rng, n * dim, 0.1, 1), tRows = randomArray(&rng, n * dim, 0.1, 1)
        var sCols = sRows, tCols = tRows
        for r in 0..<n { for j in 0..<dim { sCols[j * n + r] = sRows[r * dim + j]; tCols[j * n + r] = tRows[r * dim + j] } }
        let rowShape = Shape(n: n, c: 1, h: 1, w: dim), colShape = Shape(n: n, c: dim, h: 1, w: 1)
        let a = sRows.withUnsafeBufferPointer { s in tRows.withUnsafeBufferPointer { t in
            attentionSimilarityLoss(AttentionMapPair(student: s.baseAddress!, teacher: t.baseAddress!, dStudent: nil, shape: rowShape)) } }
        let b = sCols.withUnsafeBufferPointer { s in tCols.withUnsafeBufferPointer { t in
            attentionSimilarityLoss(AttentionMapPair(student: s.baseAddress!, teacher: t.baseAddress!, dStudent: nil, shape: colShape)) } }
        XCTAssertGreaterThan(a, 1e-3)
        XCTAssertEqual(a, b, accuracy: 1e-6, "row-major vs feature-major")
        let same = sRows.withUnsafeBufferPointer { s in
            attentionSimilarityLoss(AttentionMapPair(student: s.baseAddress!, teacher: s.baseAddress!, dStudent: nil, shape: rowShape)) }
        XCTAssertEqual(same, 0, accuracy: 1e-6)
        // Scaling a sample's map does not change its cosine.
        let scaled = sRows.map { 3 * $0 }
        let c = scaled.withUnsafeBufferPointer { s in tRows.withUnsafeBufferPointer { t in
            attentionSimilarityLoss(AttentionMapPair(student: s.baseAddress!, teacher: t.baseAddress!, dStudent: nil, shape: rowShape)) } }
        XCTAssertEqual(a, c, accuracy: 1e-6, "scale invariance")
    }

    func testAttentionSimilarityMatchesPyTorch() throws {
        let fx = try LossFixture.load()
        let c = fx.object("attention_similarity")
        let n = c.int("n")
        guard let maps = c["maps"] as? [[String: Any]] else { return XCTFail("fixture: no maps") }
        for (reduction, key) in [(MapReduction.sum, "sum"), (.mean, "mean")] {
            let students = maps.map { testBuffer($0.floats("student")) }
            let teachers = maps.map { testBuffer($0.floats("teacher")) }
            let shapes = maps.map { Shape(n: n, c: $0.int("c"), h: $0.int("h"), w: $0.int("w")) }
            let grads = shapes.map { testBuffer(zeros: $0.count) }
            defer { (students + teachers + grads).forEach { $0.deallocate() } }
            let pairs = (0..<maps.count).map {
                AttentionMapPair(student: students[$0], teacher: teachers[$0], dStudent: grads[$0], shape: shapes[$0])
            }
            let loss = attentionSimilarityLoss(pairs, reduction: reduction)
            assertClose(loss, c.float("loss_" + key), atol: 1e-6, rtol: 1e-5, "A-SKD \(key) loss")
            guard let expected = c["d_student_" + key] as? [[NSNumber]] else { return XCTFail("fixture: no grads") }
            for i in 0..<maps.count {
                assertClose(array(grads[i], shapes[i].count), expected[i].map(\.floatValue), atol: 1e-6, rtol: 1e-4,
                            "A-SKD \(key) d student map \(i) \(maps[i].string("kind")) \(shapes[i])")
            }
        }
    }

    // MARK: embedding distillation

    func testEmbeddingDistillationGradients() {
        for kind in [EmbeddingDistillKind.mse, .normalizedL2, .cosine] {
            for (n, e) in [(1, 3), (3, 4), (4, 7)] {
                let label = "embedding \(kind) N\(n) E\(e)"
                var rng = TestRNG(UInt64(n * 13 + e))
                let s = testBuffer(randomArray(&rng, n * e)); defer { s.deallocate() }
                let t = randomArray(&rng, n * e)
                let d = testBuffer(zeros: n * e); defer { d.deallocate() }
                let weight: Float = 3
                embeddingDistillationLoss(student: s, teacher: t, n: n, e: e, kind: kind, dStudent: d, weight: weight)
                let value = { Double(weight) * Double(embeddingDistillationLoss(student: s, teacher: t, n: n, e: e,
                                                                                  kind: kind, dStudent: nil)) }
                checkGradient(label, "student embedding", pointer: s, analytic: array(d, n * e), eps: 1e-3, atol: 2e-3,
                              rtol: 2e-2, value: value)
            }
        }
    }

    func testEmbeddingDistillationMatchesPyTorch() throws {
        let fx = try LossFixture.load()
        let c = fx.object("embedding")
        let n = c.int("n"), e = c.int("e")
        for (kind, key) in [(EmbeddingDistillKind.mse, "mse"), (.normalizedL2, "normalized_l2"), (.cosine, "cosine")] {
            var d = [Float](repeating: 0, count: n * e)
            let loss = embeddingDistillationLoss(student: c.floats("student"), teacher: c.floats("teacher"), n: n, e: e,
                                                 kind: kind, dStudent: &d)
            let ref = c.sub(key)
            assertClose(loss, ref.float("loss"), atol: 1e-6, rtol: 1e-5, "embedding \(key) loss")
            assertClose(d, ref.floats("d_student"), atol: 1e-6, rtol: 1e-4, "embedding \(key) d student")
        }
    }

    /// Every loss adds into its gradient buffer rather than overwriting it.
    func testLossesAccumulateGradients() {
        var rng = TestRNG(77)
        let n = 2, k = 3
        let z = randomArray(&rng, n * k), t = randomArray(&rng, n * k), y: [Int32] = [2, 0]
        let prefill = randomArray(&rng, n * k)
        var d0 = [Float](repeating: 0, count: n * k), d1 = prefill
        crossEntropyLoss(logits: z, labels: y, n: n, k: k, dLogits: &d0)
        crossEntropyLoss(logits: z, labels: y, n: n, k: k, dLogits: &d1)
        assertClose(d1, zip(prefill, d0).map { $0 + $1 }, atol: 1e-6, rtol: 1e-5, "CE adds")
        d0 = [Float](repeating: 0, count: n * k); d1 = prefill
        distillationKLLoss(student: z, teacher: t, n: n, k: k, temperature: 2, dStudent: &d0)
        distillationKLLoss(student: z, teacher: t, n: n, k: k, temperature: 2, dStudent: &d1)
        assertClose(d1, zip(prefill, d0).map { $0 + $1 }, atol: 1e-6, rtol: 1e-5, "KD adds")
        d0 = [Float](repeating: 0, count: n * k); d1 = prefill
        embeddingDistillationLoss(student: z, teacher: t, n: n, e: k, kind: .cosine, dStudent: &d0)
        embeddingDistillationLoss(student: z, teacher: t, n: n, e: k, kind: .cosine, dStudent: &d1)
        assertClose(d1, zip(prefill, d0).map { $0 + $1 }, atol: 1e-6, rtol: 1e-5, "embedding distillation adds")
        let ws = LossWorkspace()
        d0 = [Float](repeating: 0, count: n * k); d1 = prefill
        attentionTransferLoss(student: z, studentChannels: 1, teacher: t, teacherChannels: 1, n: n, plane: k, dStudent: &d0, workspace: ws)
        attentionTransferLoss(student: z, studentChannels: 1, teacher: t, teacherChannels: 1, n: n, plane: k, dStudent: &d1, workspace: ws)
        assertClose(d1, zip(prefill, d0).map { $0 + $1 }, atol: 1e-7, rtol: 1e-5, "attention transfer adds")
    }
}
