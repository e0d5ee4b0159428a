// Checkpoints: bitwise round trip, clear errors for truncated/corrupt/foreign files, averaging, files
// without momentum, metadata types.
import Foundation
import XCTest
import Model
import Pipeline

final class CheckpointTests: XCTestCase {
    let tiny = NetworkConfig(inputSize: 16, stemChannels: 8, depths: [1, 1], widths: [16, 32], strides: [1, 2],
                             cardinality: 4, groupWidth: 2, cbamReduction: 4, cbamKernel: 3, embeddingSize: 16)

    func model(seed: UInt64, config: NetworkConfig? = nil) -> FaceModel {
        FaceModel(config: config ?? tiny, classes: 7, margin: .arcFace(s: 32, m: 0.5), seed: seed, trainable: true)
    }
    func identity(_ c: NetworkConfig? = nil) -> ModelIdentity { ModelIdentity(network: c ?? tiny, classes: 7, head: "arcface(s: 32.0, m: 0.5)") }

    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "kdtrain-ckpt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func testRoundTripIsBitwise() throws {
        let dir = try tempDir(), path = dir + "/" + Checkpoint.fileName(step: 12)
        let a = model(seed: 1)
        for i in 0..<a.store.paramCount { a.store.momentum[i] = Float(i % 97) * 1e-3 }
        for i in 0..<a.store.bufferCount { a.store.buffers[i] = Float(i) * 0.5 }
        let pos = TrainingPosition(step: 12, epoch: 1, stepInEpoch: 3, skippedSteps: 1)
        try Checkpoint.save(a.store, identity: identity(), position: pos, to: path)
        let b = model(seed: 2)
        let c = try Checkpoint.read(path)
        XCTAssertEqual(c.position, pos)
        try Checkpoint.load(c, into: b.store, identity: identity(), momentum: true)
        XCTAssertEqual(a.store.checksum(), b.store.checksum())
        XCTAssertEqual(memcmp(a.store.momentum, b.store.momentum, a.store.paramCount * 4), 0)
        XCTAssertEqual(Checkpoint.list(in: dir), [path])
        // No temporary file left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [Checkpoint.fileName(step: 12)])
    }

    func testTruncatedCorruptAndForeignCheckpointsAreClearErrors() throws {
        let dir = try tempDir(), path = dir + "/good.safetensors"
        let a = model(seed: 1)
        try Checkpoint.save(a.store, identity: identity(), position: TrainingPosition(), to: path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = dir + "/cut.safetensors"
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: cut))
        XCTAssertThrowsError(try Checkpoint.read(cut)) { XCTAssert("\($0)".contains("cut.safetensors") && "\($0)".contains("truncated"), "\($0)") }
        let junk = dir + "/junk.safetensors"
        try Data("not a checkpoint at all".utf8).write(to: URL(fileURLWithPath: junk))
        XCTAssertThrowsError(try Checkpoint.read(junk)) { XCTAssert("\($0)".contains("junk.safetensors"), "\($0)") }
        XCTAssertThrowsError(try Checkpoint.read(dir + "/absent.safetensors")) { XCTAssert("\($0)".contains("no such file"), "\($0)") }
        // Another architecture: refused before anything is copied.
        var other = tiny; other.widths = [16, 64]; other.cbamReduction = 4
        let b = model(seed: 3, config: other)
        let before = b.store.checksum()
        XCTAssertThrowsError(try Checkpoint.load(try Checkpoint.read(path), into: b.store, identity: identity(other), momentum: true)) {
            XCTAssert("\($0)".contains("good.safetensors") && "\($0)".contains("holds model"), "\($0)")
        }
        XCTAssertEqual(b.store.checksum(), before)
        // A missing tensor.
        var (ts, meta) = try SafeTensors.read(path: path)
        ts.removeAll { $0.name == "embed.fc.weight" }
        let missing = dir + "/missing.safetensors"
        try SafeTensors.write(ts, metadata: meta, to: missing)
        meta = [:]
        let c = model(seed: 4)
        XCTAssertThrowsError(try Checkpoint.load(try Checkpoint.read(missing), into: c.store, identity: identity(), momentum: true)) {
            XCTAssert("\($0)".contains("missing tensor embed.fc.weight"), "\($0)")
        }
    }

    func testAveragingIdenticalCheckpointsIsIdentityAndAveragesOthers() throws {
        let dir = try tempDir()
        let a = model(seed: 1)
        var paths: [String] = []
        for s in 1...3 {
            let p = dir + "/" + Checkpoint.fileName(step: s)
            try Checkpoint.save(a.store, identity: identity(), position: TrainingPosition(step: s), to: p)
            paths.append(p)
        }
        let b = model(seed: 9)
        try Checkpoint.average(paths, into: b.store, identity: identity(), force: false)
        XCTAssertEqual(memcmp(a.store.params, b.store.params, a.store.paramCount * 4), 0)
        // Two different models: the mean, element by element.
        let c = model(seed: 5)
        let p2 = dir + "/other.safetensors"
        try Checkpoint.save(c.store, identity: identity(), position: TrainingPosition(step: 9), to: p2)
        try Checkpoint.average([paths[0], p2], into: b.store, identity: identity(), force: false)
        for i in stride(from: 0, to: b.store.paramCount, by: 101) {
            XCTAssertEqual(b.store.params[i], Float((Double(a.store.params[i]) + Double(c.store.params[i])) / 2), "param \(i)")
        }
        // Checkpoints of two runs: refused unless forced.
        let r1 = dir + "/run1.safetensors", r2 = dir + "/run2.safetensors"
        try Checkpoint.save(a.store, identity: identity(), position: TrainingPosition(step: 1), extra: ["run_id": "one"], to: r1)
        try Checkpoint.save(c.store, identity: identity(), position: TrainingPosition(step: 2), extra: ["run_id": "two"], to: r2)
        XCTAssertThrowsError(try Checkpoint.average([r1, r2], into: b.store, identity: identity(), force: false)) {
            XCTAssert("\($0)".contains("different runs"), "\($0)")
        }
        XCTAssertNoThrow(try Checkpoint.average([r1, r2], into: b.store, identity: identity(), force: true))
        // Another model among them: refused unless forced.
        var other = tiny; other.embeddingSize = 8
        let d = model(seed: 6, config: other)
        let p3 = dir + "/foreign.safetensors"
        try Checkpoint.save(d.store, identity: identity(other), position: TrainingPosition(), to: p3)
        XCTAssertThrowsError(try Checkpoint.average([paths[0], p3], into: b.store, identity: identity(), force: false)) {
            XCTAssert("\($0)".contains("foreign.safetensors"), "\($0)")
        }
    }
}

/// Checkpoint hygiene for other frameworks: an averaged model without optimizer state, floats
/// written as floats in the `model` metadata, and older checkpoints still readable.
final class CheckpointExportTests: XCTestCase {
    let net = NetworkConfig(inputSize: 16, stemChannels: 8, depths: [1, 1], widths: [16, 32], strides: [1, 2],
                            cardinality: 4, groupWidth: 2, cbamReduction: 4, cbamKernel: 3, embeddingSize: 16, dropout: 0)
    var identity: ModelIdentity { ModelIdentity(network: net, classes: 7, head: "arcface(s: 32.0, m: 0.5)") }

    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "kdtrain-ckx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func size(_ p: String) throws -> Int { try FileManager.default.attributesOfItem(atPath: p)[.size] as! Int }

    func testWithoutMomentumHalfTheSizeAndNotResumable() throws {
        let dir = try tempDir()
        let m = FaceModel(config: net, classes: 7, margin: .arcFace(s: 32, m: 0.5), seed: 1, trainable: true)
        try Checkpoint.save(m.store, identity: identity, position: TrainingPosition(step: 4), to: dir + "/full.safetensors")
        try Checkpoint.save(m.store, identity: identity, position: TrainingPosition(step: 4), extra: ["averaged_from": "a,b"],
                            momentum: false, to: dir + "/averaged.safetensors")
        let (full, _) = try SafeTensors.read(path: dir + "/full.safetensors")
        let (avg, _) = try SafeTensors.read(path: dir + "/averaged.safetensors")
        XCTAssert(full.contains { $0.name.hasPrefix("optimizer.momentum.") })
        XCTAssertFalse(avg.contains { $0.name.hasPrefix("optimizer.") }, "\(avg.map(\.name).filter { $0.hasPrefix("optimizer.") })")
        XCTAssertEqual(Set(avg.map(\.name)), Set(full.map(\.name).filter { !$0.hasPrefix("optimizer.") }))
        XCTAssertLessThan(Double(try size(dir + "/averaged.safetensors")), 0.55 * Double(try size(dir + "/full.safetensors")))
        // Loads for evaluation; refused, naming the file and why, for a resume.
        let b = FaceModel(config: net, classes: 7, margin: .arcFace(s: 32, m: 0.5), seed: 2, trainable: true)
        let c = try Checkpoint.read(dir + "/averaged.safetensors")
        try Checkpoint.load(c, into: b.store, identity: identity, momentum: false)
        XCTAssertEqual(b.store.checksum(), m.store.checksum())
        XCTAssertThrowsError(try Checkpoint.load(c, into: b.store, identity: identity, momentum: true)) {
            XCTAssert("\($0)".contains("averaged.safetensors") && "\($0)".contains("without optimizer state"), "\($0)")
        }
    }

    func testModelMetadataWritesFloatsAsFloatsAndOlderFormReads() throws {
        let dir = try tempDir(), path = dir + "/c.safetensors"
        var withDropout = net; withDropout.dropout = 0.1
        for (cfg, text) in [(net, "\"dropout\":0.0"), (withDropout, "\"dropout\":0.1")] {
            let id = ModelIdentity(network: cfg, classes: 7, head: "arcface(s: 32.0, m: 0.5)")
            XCTAssert(id.metadataJSON.contains(text), id.metadataJSON)
            XCTAssert(id.metadataJSON.contains("\"inputSize\":16") && id.metadataJSON.contains("\"depths\":[1,1]"), id.metadataJSON)
            XCTAssertEqual(try JSONDecoder().decode(ModelIdentity.self, from: Data(id.metadataJSON.utf8)), id)
            let m = FaceModel(config: cfg, classes: 7, margin: .softmax, seed: 1, trainable: false)
            try Checkpoint.save(m.store, identity: id, position: TrainingPosition(), to: path)
            let c = try Checkpoint.read(path)
            XCTAssertEqual(c.metadata["model"], id.metadataJSON)
            XCTAssertEqual(c.identity, id)
            XCTAssertEqual(c.metadata["model_hash"], id.hash)
        }
        // The form earlier kdtrain versions wrote ("dropout":0) still reads, to the same identity.
        XCTAssert(identity.json.contains("\"dropout\":0,") || identity.json.contains("\"dropout\":0}"), identity.json)
        var (ts, meta) = try SafeTensors.read(path: path)
        let m = FaceModel(config: net, classes: 7, margin: .softmax, seed: 1, trainable: false)
        ts = m.store.entries.map { NamedTensor(name: $0.name, shape: $0.shape, values: Array(UnsafeBufferPointer(start: m.store.pointer($0), count: $0.count))) }
        meta["model"] = identity.json
        meta["preprocessing"] = nil
        try SafeTensors.write(ts, metadata: meta, to: path)
        let old = try Checkpoint.read(path)
        XCTAssertEqual(old.identity, identity)
        XCTAssertNil(old.preprocessing)
    }
}
