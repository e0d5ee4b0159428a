// Margin heads (softmax, CosFace, ArcFace): registration, finite-difference gradients, inference without
// margin, PyTorch reference values.
import XCTest
import Model

final class HeadsTests: XCTestCase {
    /// A head with weight values `w` (K, E) set in a fresh store.
    func makeHead(kind: MarginKind, n: Int, k: Int, e: Int, weight w: [Float]) -> (ParamStore, MarginHead) {
        let store = ParamStore()
        let head = MarginHead(store, name: "head", embeddingSize: e, classes: k, kind: kind)
        store.allocate()
        w.withUnsafeBufferPointer { (store.params + head.weightOffset).update(from: $0.baseAddress!, count: k * e) }
        head.plan(batch: n)
        return (store, head)
    }

    func testRegistersWeightInStore() {
        let store = ParamStore()
        let head = MarginHead(store, name: "head", embeddingSize: 50, classes: 200, kind: .cosFace(s: 64, m: 0.35))
        store.allocate(); store.initialize(seed: 1)
        guard let entry = store.entry(named: "head.weight") else { return XCTFail("head.weight not registered") }
        XCTAssertEqual(entry.shape, [200, 50])
        XCTAssertTrue(entry.decay)
        XCTAssertEqual(entry.offset, head.weightOffset)
        XCTAssertEqual(entry.initializer, .normal(std: 0.01))
        var ss = 0.0
        for i in 0..<entry.count { ss += Double(store.params[entry.offset + i] * store.params[entry.offset + i]) }
        let std = (ss / Double(entry.count)).squareRoot()
        XCTAssertEqual(std, 0.01, accuracy: 0.0005, "initial weight std")
    }

    /// (kind, N, K, E, arcface target past π for sample 0)
    let sweep: [(MarginKind, Int, Int, Int, Bool)] = [
        (.softmax, 3, 5, 4, false),
        (.softmax, 4, 7, 5, false),
        (.cosFace(s: 16, m: 0.35), 1, 2, 3, false),
        (.cosFace(s: 16, m: 0.35), 3, 5, 4, false),
        (.cosFace(s: 8, m: 0.2), 4, 7, 5, false),
        (.arcFace(s: 8, m: 0.5), 3, 5, 4, false),
        (.arcFace(s: 8, m: 0.5), 4, 7, 6, false),
        (.arcFace(s: 16, m: 0.3), 5, 4, 7, false),
        (.arcFace(s: 8, m: 0.5), 3, 5, 4, true),
        (.arcFace(s: 8, m: 0.5), 2, 6, 7, true),
        (.arcFace(s: 8, m: 1.2), 4, 3, 5, true),
    ]

    func testGradientsMatchFiniteDifferences() {
        for (kind, n, k, e, pastPi) in sweep {
            let label = "\(kind) N\(n) K\(k) E\(e) pastPi \(pastPi)"
            var seed: UInt64 = 11
            // Draw inputs whose ArcFace targets stay clear of the (discontinuous) branch threshold
            // and of cos θ = 1, so central differences are valid.
            while true {
                var rng = TestRNG(seed)
                var w = randomArray(&rng, k * e)
                let emb = randomArray(&rng, n * e)
                let labels = (0..<n).map { _ in Int32(rng.g.next() % UInt64(k)) }
                if pastPi {
                    let y = Int(labels[0])
                    for i in 0..<e { w[y * e + i] = -0.5 * emb[i] + 0.01 * rng.uniform() }
                }
                if case .arcFace(_, let m) = kind, !arcTargetsWellPlaced(emb, w, labels, n, k, e, m, pastPi) {
                    seed += 1
                    if seed > 1000 { XCTFail("\(label): no well-placed inputs found"); break }
                    continue
                }
                runGradCheck(kind: kind, n: n, k: k, e: e, w: w, emb: emb, labels: labels, pastPi: pastPi, rng: &rng, label: label)
                break
            }
        }
    }

    /// Whether every target cosine is 0.1 away from cos(π - m) and below 0.95, and (when
    /// `pastPi`) sample 0's target is in the θ + m > π branch.
    func arcTargetsWellPlaced(_ emb: [Float], _ w: [Float], _ labels: [Int32], _ n: Int, _ k: Int, _ e: Int,
                              _ m: Float, _ pastPi: Bool) -> Bool {
        let threshold = cos(Float.pi - m)
        for s in 0..<n {
            let y = Int(labels[s])
            var dot: Float = 0, ne: Float = 0, nw: Float = 0
            for i in 0..<e { dot += emb[s * e + i] * w[y * e + i]; ne += emb[s * e + i] * emb[s * e + i]; nw += w[y * e + i] * w[y * e + i] }
            let c = dot / (ne.squareRoot() * nw.squareRoot())
            if abs(c - threshold) < 0.1 || c > 0.95 { return false }
            if pastPi && s == 0 && c >= threshold { return false }
        }
        return true
    }

    func runGradCheck(kind: MarginKind, n: Int, k: Int, e: Int, w: [Float], emb: [Float], labels: [Int32],
                      pastPi: Bool, rng: inout TestRNG, label: String) {
        let (store, head) = makeHead(kind: kind, n: n, k: k, e: e, weight: w)
        let x = testBuffer(emb); defer { x.deallocate() }
        let r = randomArray(&rng, n * k)
        func loss() -> Double {
            labels.withUnsafeBufferPointer { head.forward(embeddings: x, labels: $0.baseAddress!) }
            var acc = 0.0
            for i in 0..<(n * k) { acc += Double(head.logits[i]) * Double(r[i]) }
            return acc
        }
        _ = loss()
        if case .arcFace(_, let m) = kind, let cosines = head.cosines {
            // The past-π sweep entries must really exercise that branch.
            let c0 = cosines[Int(labels[0])]
            if pastPi { XCTAssertLessThan(c0, cos(Float.pi - m), "\(label): not past π") }
        }
        let dx = testBuffer(zeros: n * e); defer { dx.deallocate() }
        store.zeroGrad()
        r.withUnsafeBufferPointer { head.backward(embeddings: x, dLogits: $0.baseAddress!, dEmbeddings: dx) }
        let dEmb = array(dx, n * e), dW = array(store.grads + head.weightOffset, k * e)
        checkGradient(label, "embeddings", pointer: x, analytic: dEmb, atol: 4e-3, value: loss)
        checkGradient(label, "head.weight", pointer: store.params + head.weightOffset, analytic: dW, atol: 4e-3, value: loss)
    }

    func testBackwardAccumulates() {
        for kind in [MarginKind.softmax, .cosFace(s: 16, m: 0.35), .arcFace(s: 16, m: 0.5)] {
            let n = 3, k = 4, e = 5
            var rng = TestRNG(3)
            let (store, head) = makeHead(kind: kind, n: n, k: k, e: e, weight: randomArray(&rng, k * e))
            let x = testBuffer(randomArray(&rng, n * e)); defer { x.deallocate() }
            let labels: [Int32] = [0, 3, 1]
            let r = randomArray(&rng, n * k)
            labels.withUnsafeBufferPointer { head.forward(embeddings: x, labels: $0.baseAddress!) }
            let dx = testBuffer(zeros: n * e); defer { dx.deallocate() }
            store.zeroGrad()
            r.withUnsafeBufferPointer { head.backward(embeddings: x, dLogits: $0.baseAddress!, dEmbeddings: dx) }
            let once = array(dx, n * e), onceW = array(store.grads, k * e)
            XCTAssertGreaterThan(once.map(abs).max()!, 0, "\(kind): zero gradient")
            r.withUnsafeBufferPointer { head.backward(embeddings: x, dLogits: $0.baseAddress!, dEmbeddings: dx) }
            assertClose(array(dx, n * e), once.map { 2 * $0 }, atol: 1e-6, rtol: 1e-5, "\(kind) dEmbeddings added")
            assertClose(array(store.grads, k * e), onceW.map { 2 * $0 }, atol: 1e-6, rtol: 1e-5, "\(kind) dW added")
        }
    }

    func testInferenceForwardHasNoMargin() {
        let n = 2, k = 3, e = 4
        var rng = TestRNG(9)
        let w = randomArray(&rng, k * e)
        let x = testBuffer(randomArray(&rng, n * e)); defer { x.deallocate() }
        for kind in [MarginKind.cosFace(s: 10, m: 0.4), .arcFace(s: 10, m: 0.5)] {
            let (_, head) = makeHead(kind: kind, n: n, k: k, e: e, weight: w)
            head.forward(embeddings: x, labels: nil)
            guard let c = head.cosines else { return XCTFail("\(kind): no cosines") }
            for i in 0..<(n * k) {
                XCTAssertEqual(head.logits[i], 10 * c[i], accuracy: 1e-5, "\(kind) logit \(i)")
                XCTAssertLessThanOrEqual(abs(c[i]), 1.0001)
            }
        }
        let (_, plain) = makeHead(kind: .softmax, n: n, k: k, e: e, weight: w)
        plain.forward(embeddings: x, labels: nil)
        XCTAssertNil(plain.cosines)
        for s in 0..<n { for j in 0..<k {
            var dot: Float = 0
            for i in 0..<e { dot += x[s * e + i] * w[j * e + i] }
            XCTAssertEqual(plain.logits[s * k + j], dot, accuracy: 1e-5, "softmax logit (\(s), \(j))")
        } }
    }

    /// Heads + mean cross-entropy against PyTorch (insightface's ArcFace formulation), including
    /// a sample past π.
    func testMatchesPyTorchReference() throws {
        let fx = try LossFixture.load()
        for c in fx.list("heads") {
            let kindName = c.string("kind"), n = c.int("n"), k = c.int("k"), e = c.int("e")
            let s = c.float("s"), m = c.float("m")
            let kind: MarginKind = kindName == "softmax" ? .softmax
                : kindName == "cosface" ? .cosFace(s: s, m: m) : .arcFace(s: s, m: m)
            let label = "\(kind) N\(n) K\(k) E\(e)"
            let (store, head) = makeHead(kind: kind, n: n, k: k, e: e, weight: c.floats("weight"))
            let x = testBuffer(c.floats("embeddings")); defer { x.deallocate() }
            let labels = c.ints("labels")
            labels.withUnsafeBufferPointer { head.forward(embeddings: x, labels: $0.baseAddress!) }
            assertClose(array(head.logits, n * k), c.floats("logits"), atol: 2e-5, rtol: 1e-5, "\(label) logits")
            if let cosines = head.cosines {
                assertClose(array(cosines, n * k), c.floats("cosines"), atol: 1e-6, rtol: 1e-5, "\(label) cosines")
            }
            let dl = testBuffer(zeros: n * k), dx = testBuffer(zeros: n * e)
            defer { dl.deallocate(); dx.deallocate() }
            let loss = labels.withUnsafeBufferPointer {
                crossEntropyLoss(logits: head.logits, labels: $0.baseAddress!, n: n, k: k, dLogits: dl)
            }
            assertClose(loss, c.float("loss"), atol: 1e-5, rtol: 1e-5, "\(label) loss")
            store.zeroGrad()
            head.backward(embeddings: x, dLogits: dl, dEmbeddings: dx)
            assertClose(array(dx, n * e), c.floats("d_embeddings"), atol: 1e-5, rtol: 1e-4, "\(label) d embeddings")
            assertClose(array(store.grads + head.weightOffset, k * e), c.floats("d_weight"), atol: 1e-5, rtol: 1e-4,
                        "\(label) d weight")
        }
    }

    func testArcFaceTargetBranches() {
        // One sample, two classes, E = 2: put the target at a chosen angle and read the logit.
        let m: Float = 0.5, s: Float = 2
        for theta in [Float(0.3), 1.2, 2.0, 2.5, 3.0] {
            let w: [Float] = [1, 0, 0, 1]
            let (_, head) = makeHead(kind: .arcFace(s: s, m: m), n: 1, k: 2, e: 2, weight: w)
            let x = testBuffer([cos(theta), sin(theta)]); defer { x.deallocate() }
            let y: [Int32] = [0]
            y.withUnsafeBufferPointer { head.forward(embeddings: x, labels: $0.baseAddress!) }
            let expected = theta + m <= Float.pi ? s * cos(theta + m) : s * (cos(theta) - m * sin(Float.pi - m))
            XCTAssertEqual(head.logits[0], expected, accuracy: 1e-5, "theta \(theta)")
            XCTAssertEqual(head.logits[1], s * sin(theta), accuracy: 1e-5, "non-target theta \(theta)")
        }
    }

    /// The trainer's composition: recognition CE and KD both add into one dlogits buffer, then one
    /// head backward; checked against finite differences of the weighted total.
    func testCrossEntropyPlusDistillationThroughHead() {
        for kind in [MarginKind.cosFace(s: 8, m: 0.35), .softmax] {
            let n = 3, k = 6, e = 5, lambda: Float = 0.7, t: Float = 4
            var rng = TestRNG(21)
            let (store, head) = makeHead(kind: kind, n: n, k: k, e: e, weight: randomArray(&rng, k * e))
            let x = testBuffer(randomArray(&rng, n * e)); defer { x.deallocate() }
            let teacher = randomArray(&rng, n * k, -4, 4)
            let labels: [Int32] = [5, 0, 2]
            func loss(_ dl: UnsafeMutablePointer<Float>?) -> Double {
                labels.withUnsafeBufferPointer { y in
                    head.forward(embeddings: x, labels: y.baseAddress!)
                    let ce = crossEntropyLoss(logits: head.logits, labels: y.baseAddress!, n: n, k: k, dLogits: dl)
                    let kd = distillationKLLoss(student: head.logits, teacher: teacher, n: n, k: k, temperature: t,
                                                dStudent: dl, weight: lambda)
                    return Double(ce) + Double(lambda) * Double(kd)
                }
            }
            let dl = testBuffer(zeros: n * k), dx = testBuffer(zeros: n * e)
            defer { dl.deallocate(); dx.deallocate() }
            _ = loss(dl)
            store.zeroGrad()
            head.backward(embeddings: x, dLogits: dl, dEmbeddings: dx)
            let label = "CE + KD through \(kind)"
            checkGradient(label, "embeddings", pointer: x, analytic: array(dx, n * e), eps: 1e-3, atol: 5e-4, rtol: 2e-2,
                          value: { loss(nil) })
            checkGradient(label, "head.weight", pointer: store.params + head.weightOffset,
                          analytic: array(store.grads + head.weightOffset, k * e), eps: 1e-3, atol: 5e-4, rtol: 2e-2,
                          value: { loss(nil) })
        }
    }
}
