// One whole distillation training step against PyTorch (scripts/make_reference.py): student
// forward on the degraded view, frozen teacher forward on the high-quality view, recognition +
// KD + A-SKD + attention-transfer + embedding losses, backward, SGD. Compares outputs, every
// loss, every gradient, the updated weights and the updated running statistics.
import Foundation
import XCTest
import Model

final class StepReferenceTests: XCTestCase {
    struct Fixture {
        var tensors: [String: NamedTensor]
        var meta: [String: String]
        var config: [String: Any]
    }

    func loadFixture() throws -> Fixture {
        let url: URL
        if let override = ProcessInfo.processInfo.environment["KD_STEP_FIXTURE"] {
            url = URL(fileURLWithPath: override)   // for scripts/make_reference.py experiments
        } else {
            url = try XCTUnwrap(Bundle.module.url(forResource: "step_reference", withExtension: "safetensors",
                                                  subdirectory: "Fixtures"))
        }
        let (ts, meta) = try SafeTensors.read(path: url.path)
        let cfg = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(meta["config"]!.utf8)) as? [String: Any])
        return Fixture(tensors: Dictionary(uniqueKeysWithValues: ts.map { ($0.name, $0) }), meta: meta, config: cfg)
    }

    func netConfig(_ c: [String: Any], depths key: String) -> NetworkConfig {
        NetworkConfig(inputSize: c["input"] as! Int, stemChannels: c["stem"] as! Int,
                      depths: c[key] as! [Int], widths: c["widths"] as! [Int], strides: c["strides"] as! [Int],
                      cardinality: c["cardinality"] as! Int, groupWidth: c["group_width"] as! Int,
                      cbamReduction: c["cbam_reduction"] as! Int, cbamKernel: c["cbam_kernel"] as! Int,
                      embeddingSize: c["embedding"] as! Int, dropout: 0)
    }

    /// Copies fixture tensors "<prefix><name>" into every entry of the store.
    func load(_ store: ParamStore, from f: Fixture, paramPrefix: String, bufferPrefix: String) throws {
        for e in store.entries {
            let key = (e.region == .param ? paramPrefix : bufferPrefix) + e.name
            let t = try XCTUnwrap(f.tensors[key], "fixture lacks \(key)")
            XCTAssertEqual(t.shape, e.shape, key)
            t.values.withUnsafeBufferPointer { store.pointer(e).update(from: $0.baseAddress!, count: e.count) }
        }
    }

    /// max |a - b| <= atol + rtol * max |b|, reported with the name.
    func assertClose(_ a: UnsafePointer<Float>, _ b: [Float], _ what: String, rtol: Float, atol: Float = 1e-6,
                     file: StaticString = #filePath, line: UInt = #line) {
        var maxDiff: Float = 0, maxRef: Float = 0
        for i in b.indices { maxDiff = max(maxDiff, abs(a[i] - b[i])); maxRef = max(maxRef, abs(b[i])) }
        XCTAssert(maxDiff <= atol + rtol * maxRef, "\(what): max |diff| \(maxDiff) vs max |ref| \(maxRef)",
                  file: file, line: line)
    }

    func testWholeDistillationStepMatchesPyTorch() throws {
        let f = try loadFixture()
        let c = f.config
        let classes = c["classes"] as! Int, n = c["batch"] as! Int
        let s = Float(c["s"] as! Double), m = Float(c["m"] as! Double)
        let student = FaceModel(config: netConfig(c, depths: "student_depths"), classes: classes,
                                margin: .arcFace(s: s, m: m), seed: 1, trainable: true)
        let teacher = FaceModel(config: netConfig(c, depths: "teacher_depths"), classes: classes,
                                margin: .arcFace(s: s, m: m), seed: 2, trainable: false)
        try load(student.store, from: f, paramPrefix: "param/", bufferPrefix: "buffer/")
        try load(teacher.store, from: f, paramPrefix: "teacher/", bufferPrefix: "teacher/")

        var loss = LossConfig()
        loss.recognition = Float(c["w_rec"] as! Double)
        loss.kd = Float(c["w_kd"] as! Double); loss.temperature = Float(c["kd_T"] as! Double)
        loss.attentionSimilarity = Float(c["w_askd"] as! Double)
        loss.attentionTransfer = Float(c["w_at"] as! Double)
        loss.embedding = Float(c["w_emb"] as! Double); loss.embeddingKind = .cosine
        loss.attention = AttentionDistillConfig(stages: [0, 1], channel: true, spatial: true, beforeSigmoid: false,
                                                meanOverMaps: true)
        let step = DistillationStep(student: student, teacher: teacher, loss: loss)
        step.plan(batch: n)
        f.tensors["input/hr"]!.values.withUnsafeBufferPointer { teacher.net.input.loadNCHW($0.baseAddress!) }
        f.tensors["input/lr"]!.values.withUnsafeBufferPointer { student.net.input.loadNCHW($0.baseAddress!) }
        let labels = f.tensors["input/labels"]!.values.map { Int32($0) }
        student.store.zeroGrad()
        step.teacherForward()
        let out = labels.withUnsafeBufferPointer { step.studentForwardBackward(labels: $0.baseAddress!) }

        assertClose(teacher.embeddingRows, f.tensors["out/teacher_embedding"]!.values, "teacher embedding", rtol: 1e-4)
        assertClose(student.embeddingRows, f.tensors["out/embedding"]!.values, "student embedding", rtol: 1e-4)
        assertClose(student.head.logits, f.tensors["out/logits"]!.values, "logits", rtol: 1e-4)
        func ref(_ k: String) -> Float { Float(f.meta[k]!)! }
        XCTAssertEqual(out.recognition, ref("loss_rec"), accuracy: 1e-4 * abs(ref("loss_rec")), "recognition loss")
        XCTAssertEqual(out.kd, ref("loss_kd"), accuracy: 1e-4 * abs(ref("loss_kd")), "kd loss")
        XCTAssertEqual(out.attentionSimilarity, ref("loss_askd"), accuracy: 1e-4 * abs(ref("loss_askd")), "a-skd loss")
        XCTAssertEqual(out.attentionTransfer, ref("loss_at"), accuracy: 1e-4 * abs(ref("loss_at")), "at loss")
        XCTAssertEqual(out.embedding, ref("loss_emb"), accuracy: 1e-4 * abs(ref("loss_emb")), "embedding loss")
        XCTAssertEqual(out.total, ref("loss_total"), accuracy: 1e-4 * abs(ref("loss_total")), "total loss")

        for e in student.store.entries where e.region == .param {
            // Gradients that are zero in exact arithmetic (biases before a batch norm) come out ~1e-6.
            assertClose(student.store.grads + e.offset, f.tensors["grad/" + e.name]!.values, "grad \(e.name)",
                        rtol: 2e-4, atol: 1e-5)
        }
        let sgd = SGD(store: student.store, config: SGDConfig(momentum: Float(c["momentum"] as! Double),
                                                              weightDecay: Float(c["weight_decay"] as! Double),
                                                              nesterov: c["nesterov"] as! Bool, exemptNoDecay: true))
        sgd.step(lr: Float(c["lr"] as! Double))
        for e in student.store.entries {
            let key = (e.region == .param ? "new/" : "newbuf/") + e.name
            assertClose(student.store.pointer(e), f.tensors[key]!.values, "updated \(e.name)", rtol: 1e-4)
        }
    }
}
