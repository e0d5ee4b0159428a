// Checkpoints read as untrusted input: absurd model metadata, tensors that do not back it, bad positions,
// crafted headers, each refused naming the field before allocating.
import Foundation
import XCTest
import Model
import Pipeline

/// Checkpoints are untrusted input: crafted metadata and headers give one line naming the file
/// and the field, from `Checkpoint.read`, before any network is built from them (`evaluate` and
/// `average` build the network from the metadata of what `read` returned).
final class CheckpointHardeningTests: XCTestCase {
    let tiny = NetworkConfig(inputSize: 16, stemChannels: 8, depths: [1, 1], widths: [16, 32], strides: [1, 2],
                             cardinality: 4, groupWidth: 2, cbamReduction: 4, cbamKernel: 3, embeddingSize: 16)

    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "kdtrain-ckpt-hard-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// A valid checkpoint of the tiny model; returns its tensors and metadata.
    func goodCheckpoint(in dir: String) throws -> (path: String, tensors: [NamedTensor], metadata: [String: String]) {
        let m = FaceModel(config: tiny, classes: 7, margin: .arcFace(s: 32, m: 0.5), seed: 1, trainable: true)
        let path = dir + "/good.safetensors"
        try Checkpoint.save(m.store, identity: ModelIdentity(network: tiny, classes: 7, head: "arcface"),
                            position: TrainingPosition(step: 12, epoch: 1, stepInEpoch: 3), to: path)
        XCTAssertNoThrow(try Checkpoint.read(path))
        let (t, meta) = try SafeTensors.read(path: path)
        return (path, t, meta)
    }

    /// Writes the good checkpoint with one metadata JSON value edited.
    func edited(_ dir: String, _ name: String, key: String, edit: (inout [String: Any]) -> Void) throws -> String {
        let g = try goodCheckpoint(in: dir)
        var meta = g.metadata
        var obj = try JSONSerialization.jsonObject(with: Data(meta[key]!.utf8)) as! [String: Any]
        edit(&obj)
        meta[key] = String(decoding: try JSONSerialization.data(withJSONObject: obj), as: UTF8.self)
        let path = dir + "/" + name + ".safetensors"
        try SafeTensors.write(g.tensors, metadata: meta, to: path)
        return path
    }

    func assertReadFails(_ path: String, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Checkpoint.read(path), file: file, line: line) { e in
            let s = "\(e)"
            XCTAssert(s.hasPrefix("checkpoint \(path): "), "does not name the file: \(s)", file: file, line: line)
            XCTAssertFalse(s.contains("\n"), "more than one line: \(s)", file: file, line: line)
            for m in mentions { XCTAssert(s.contains(m), "'\(m)' missing from: \(s)", file: file, line: line) }
        }
    }

    func testAbsurdModelMetadataIsRefusedNamingTheField() throws {
        let dir = try tempDir()
        func network(_ name: String, _ field: String, _ value: Any, mentions: [String]) throws {
            let p = try edited(dir, name, key: "model") { o in
                var n = o["network"] as! [String: Any]; n[field] = value; o["network"] = n
            }
            assertReadFails(p, mentions: mentions)
        }
        try network("card0", "cardinality", 0, mentions: ["metadata 'model'", "cardinality 0"])
        try network("cardneg", "cardinality", -4, mentions: ["cardinality -4"])
        try network("input0", "inputSize", 0, mentions: ["inputSize 0"])
        try network("inputhuge", "inputSize", 1 << 40, mentions: ["inputSize \(1 << 40)"])
        try network("widths", "widths", [16, 0], mentions: ["width"])
        try network("widthshuge", "widths", [16, 1 << 50], mentions: ["width"])
        try network("depths", "depths", [1, 1_000_000], mentions: ["depth"])
        try network("depthsneg", "depths", [-1, 1], mentions: ["depth"])
        try network("emb", "embeddingSize", -16, mentions: ["embeddingSize -16"])
        try network("red0", "cbamReduction", 0, mentions: ["cbamReduction 0"])
        try network("grp", "groupWidth", Int.max, mentions: ["groupWidth"])
        // Not representable as an Int at all: a decoding error naming the field.
        try network("float", "cardinality", 1e30, mentions: ["metadata 'model'", "cardinality"])
        try network("frac", "cardinality", 2.5, mentions: ["metadata 'model'", "cardinality"])
        try network("str", "widths", "wide", mentions: ["metadata 'model'", "widths", "expected an array"])
        for (name, classes) in [("classes0", 0), ("classesneg", -7), ("classeshuge", 1 << 40)] {
            let p = try edited(dir, name, key: "model") { $0["classes"] = classes }
            assertReadFails(p, mentions: ["metadata 'model'", "classes \(classes)"])
        }
        let missing = try edited(dir, "nofield", key: "model") { $0["classes"] = nil }
        assertReadFails(missing, mentions: ["metadata 'model'", "classes"])
    }

    func testModelMetadataThatTheTensorsDoNotBackIsRefusedBeforeAllocation() throws {
        let dir = try tempDir()
        // Valid sizes, but nine million classes: the classifier would be 9e6 x 16 floats, the file holds 7 x 16.
        let p = try edited(dir, "bigger", key: "model") { $0["classes"] = 9_000_000 }
        assertReadFails(p, mentions: ["classifier.weight", "[7, 16]", "[9000000, 16]"])
        // Wider stages than the tensors have.
        let w = try edited(dir, "wider", key: "model") { o in
            var n = o["network"] as! [String: Any]; n["widths"] = [16, 8192]; o["network"] = n
        }
        assertReadFails(w, mentions: ["tensor", "the model in its metadata needs"])
    }

    func testNegativeOrHugePositionIsRefusedNamingTheField() throws {
        let dir = try tempDir()
        let cases: [(String, String, Any, String)] = [
            ("stepneg", "step", -1, "step -1"), ("stephuge", "step", 1 << 60, "step \(1 << 60)"),
            ("epochneg", "epoch", -3, "epoch -3"), ("epochhuge", "epoch", Int.max, "epoch \(Int.max)"),
            ("sieneg", "stepInEpoch", -2, "stepInEpoch -2"), ("siehuge", "stepInEpoch", 1 << 50, "stepInEpoch"),
            ("skipneg", "skippedSteps", -1, "skippedSteps -1"),
            ("stepfloat", "step", 1e30, "step"), ("stepstr", "step", "twelve", "step"),
        ]
        for (name, field, value, mention) in cases {
            let p = try edited(dir, name, key: "position") { $0[field] = value }
            assertReadFails(p, mentions: ["metadata 'position'", mention])
        }
    }

    func testCraftedHeaderOfACheckpointNamesTheFileAndTensor() throws {
        let dir = try tempDir()
        let g = try goodCheckpoint(in: dir)
        // The good file's header with one tensor's shape replaced by one whose element count overflows.
        let data = try Data(contentsOf: URL(fileURLWithPath: g.path))
        let hlen = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
        var header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + hlen))) as! [String: Any]
        var entry = header["stem.conv.weight"] as! [String: Any]
        for (name, shape) in [("overflow", [Int.max / 2, 4] as [Any]), ("negative", [-8, 3, 3, 3] as [Any])] {
            entry["shape"] = shape
            header["stem.conv.weight"] = entry
            let h = try JSONSerialization.data(withJSONObject: header)
            var out = Data()
            var n = UInt64(h.count).littleEndian
            withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
            out.append(h); out.append(data.subdata(in: (8 + hlen)..<data.count))
            let p = dir + "/\(name).safetensors"
            try out.write(to: URL(fileURLWithPath: p))
            assertReadFails(p, mentions: ["tensor stem.conv.weight"])
        }
    }
}
