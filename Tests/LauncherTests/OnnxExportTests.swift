// `kdtrain export --format onnx`: the file's structure read back with a minimal protobuf reader
// (opset, input/output names and shapes, node op types and wiring, every initializer's dims and
// bytes against the checkpoint, attributes, metadata), batch-norm folding, bad inputs one line and
// exit 1, and, where python3 has onnxruntime (KDTRAIN_PYTHON picks the interpreter), the model's
// outputs against `kdtrain embed --pixels` (scripts/check_onnx.py).
import Foundation
import Model
import Pipeline
import TestSupport
import XCTest

/// One protobuf field: number, wire type, and its varint / fixed32 value or its bytes.
struct ProtoField {
    let number: Int, wire: Int
    let value: UInt64
    let data: [UInt8]
    var string: String { String(decoding: data, as: UTF8.self) }
    var message: ProtoMessage { get throws { try ProtoMessage(data) } }
    var int: Int64 { Int64(bitPattern: value) }
}

/// A parsed protobuf message (fields in file order); malformed bytes throw.
struct ProtoMessage {
    struct Malformed: Error, CustomStringConvertible { let description: String }
    let fields: [ProtoField]

    init(_ b: [UInt8]) throws {
        var i = 0, out: [ProtoField] = []
        func varint() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < b.count, shift < 64 else { throw Malformed(description: "truncated varint at byte \(i)") }
                let x = b[i]; i += 1
                v |= UInt64(x & 0x7f) << shift; shift += 7
                if x < 0x80 { return v }
            }
        }
        while i < b.count {
            let key = try varint()
            let number = Int(key >> 3), wire = Int(key & 7)
            guard number >= 1 else { throw Malformed(description: "field number 0 at byte \(i)") }
            switch wire {
            case 0: out.append(ProtoField(number: number, wire: 0, value: try varint(), data: []))
            case 2:
                let n = Int(try varint())
                guard n >= 0, i + n <= b.count else { throw Malformed(description: "length \(n) past the end at byte \(i)") }
                out.append(ProtoField(number: number, wire: 2, value: 0, data: Array(b[i..<(i + n)]))); i += n
            case 5:
                guard i + 4 <= b.count else { throw Malformed(description: "truncated fixed32") }
                let v = UInt64(b[i]) | UInt64(b[i + 1]) << 8 | UInt64(b[i + 2]) << 16 | UInt64(b[i + 3]) << 24
                out.append(ProtoField(number: number, wire: 5, value: v, data: [])); i += 4
            default: throw Malformed(description: "wire type \(wire) not used by ONNX at byte \(i)")
            }
        }
        fields = out
    }

    func all(_ n: Int) -> [ProtoField] { fields.filter { $0.number == n } }
    func one(_ n: Int) throws -> ProtoField {
        let f = all(n)
        guard f.count == 1 else { throw Malformed(description: "field \(n) occurs \(f.count) times, expected once") }
        return f[0]
    }
    func string(_ n: Int) throws -> String { try one(n).string }
    func strings(_ n: Int) -> [String] { all(n).map(\.string) }
    func ints(_ n: Int) -> [Int64] { all(n).map(\.int) }
    func messages(_ n: Int) throws -> [ProtoMessage] { try all(n).map { try $0.message } }
}

/// The parts of an ONNX ModelProto the tests check.
struct OnnxFile {
    struct Node { let op: String, name: String, inputs: [String], outputs: [String], attributes: [String: ProtoMessage] }
    struct Initializer { let name: String, dims: [Int], dataType: Int64, raw: [UInt8] }
    struct Value { let name: String, elemType: Int64, dims: [String] }   // a dim is its value or its parameter
    let model: ProtoMessage
    let irVersion: Int64
    let opsets: [(domain: String, version: Int64)]
    let nodes: [Node]
    let initializers: [Initializer]
    let inputs: [Value], outputs: [Value]
    let metadata: [String: String]

    init(path: String) throws {
        model = try ProtoMessage(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        irVersion = try model.one(1).int
        opsets = try model.messages(8).map { ((try? $0.string(1)) ?? "", try $0.one(2).int) }
        var meta: [String: String] = [:]
        for e in try model.messages(14) { meta[try e.string(1)] = try e.string(2) }
        metadata = meta
        let g = try model.one(7).message
        nodes = try g.messages(1).map { n in
            var attrs: [String: ProtoMessage] = [:]
            for a in try n.messages(5) { attrs[try a.string(1)] = a }
            return Node(op: try n.string(4), name: try n.string(3), inputs: n.strings(1), outputs: n.strings(2), attributes: attrs)
        }
        initializers = try g.messages(5).map { t in
            Initializer(name: try t.string(8), dims: t.ints(1).map(Int.init), dataType: try t.one(2).int, raw: try t.one(9).data)
        }
        func value(_ v: ProtoMessage) throws -> Value {
            let tt = try v.one(2).message.one(1).message
            let dims = try tt.one(2).message.messages(1).map { d in
                d.all(1).first.map { "\($0.int)" } ?? (try? d.string(2)) ?? "?"
            }
            return Value(name: try v.string(1), elemType: try tt.one(1).int, dims: dims)
        }
        inputs = try g.messages(11).map(value)
        outputs = try g.messages(12).map(value)
    }
}

extension ProtoMessage {
    /// AttributeProto values.
    var attrInt: Int64? { all(3).first?.int }
    var attrInts: [Int64] { ints(8) }
    var attrFloat: Float? { all(2).first.map { Float(bitPattern: UInt32($0.value)) } }
}

final class OnnxExportTests: XCTestCase {
    var kdtrain: String { get throws { try ProcessRunner.executable("kdtrain") } }

    /// Every layer kind a preset uses, and more: a 5x5 stride-2 stem, an identity-shortcut block,
    /// a stride-1 projection (channels change), a stride-2 projection, dropout (no node in inference).
    static let network = NetworkConfig(
        inputSize: 32, stemChannels: 8, stemKernel: 5, stemStride: 2, depths: [2, 1], widths: [16, 32], strides: [1, 2],
        cardinality: 4, groupWidth: 2, cbamReduction: 4, cbamKernel: 3, embeddingSize: 32, dropout: 0.4)

    /// A checkpoint of `network` with random weights and non-trivial batch-norm statistics and affine values.
    func makeCheckpoint(_ dir: String, config: NetworkConfig = OnnxExportTests.network) throws -> (path: String, tensors: [String: NamedTensor], meta: [String: String]) {
        let m = FaceModel(config: config, classes: 10, margin: .softmax, seed: 7, trainable: false)
        var rng = SystemRandomNumberGenerator()
        let s = m.store
        for e in s.entries {
            let p = s.pointer(e)
            if e.name.hasSuffix(".running_var") { for i in 0..<e.count { p[i] = .random(in: 0.5...1.5, using: &rng) } }
            if e.name.hasSuffix(".running_mean") { for i in 0..<e.count { p[i] = .random(in: -0.2...0.2, using: &rng) } }
            if e.shape.count == 1 && e.name.hasSuffix(".weight") && !e.name.contains("prelu") {   // batch-norm scales
                for i in 0..<e.count { p[i] = .random(in: 0.8...1.2, using: &rng) }
            }
            if e.name.hasSuffix(".bias") { for i in 0..<e.count { p[i] = .random(in: -0.1...0.1, using: &rng) } }
        }
        var cfg = RunConfig(); cfg.data.resize = .bicubic
        let path = dir + "/ck.safetensors"
        try Checkpoint.save(s, identity: ModelIdentity(network: config, classes: 10, head: "softmax"), position: TrainingPosition(step: 3),
                            extra: ["preprocessing": Preprocessing(config: cfg, inputSize: config.inputSize).json], momentum: false, to: path)
        let (t, meta) = try readTensors(path)
        return (path, t, meta)
    }

    func export(_ ck: String, _ out: String, fold: Bool = false) throws {
        let r = try ProcessRunner.run(try kdtrain, ranks: nil, ["export", "--format", "onnx", ck, "-o", out] + (fold ? ["--fold-bn"] : []), timeout: 60)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("export: wrote \(out)"), r.output)
    }

    /// The op types of the graph, written out from the network description (ResNeXt.swift, CBAM.swift).
    static func expectedOps(_ c: NetworkConfig, fold: Bool) -> [String] {
        let bn = fold ? [] : ["BatchNormalization"]
        func conv() -> [String] { ["Conv"] + bn }
        let cbam = ["GlobalAveragePool", "Flatten", "GlobalMaxPool", "Flatten", "Gemm", "Relu", "Gemm", "Gemm", "Relu", "Gemm",
                    "Add", "Sigmoid", "Unsqueeze", "Mul", "ReduceMax", "ReduceMean", "Concat", "Conv", "Sigmoid", "Mul"]
        var ops = conv() + ["PRelu"]
        var cin = c.stemChannels
        for (i, (d, cout)) in zip(c.depths, c.widths).enumerated() {
            for b in 0..<d {
                let s = b == 0 ? c.strides[i] : 1
                ops += conv() + ["Relu"] + conv() + ["Relu"] + conv() + cbam
                if s != 1 || cin != cout { ops += conv() }
                ops += ["Add", "Relu"]
                cin = cout
            }
        }
        ops += fold ? ["Flatten", "Gemm"] : ["BatchNormalization", "Flatten", "Gemm", "Unsqueeze", "BatchNormalization", "Flatten"]
        return ops
    }

    /// Checks shared by both variants: header, input and output, ops, wiring, metadata.
    func checkCommon(_ f: OnnxFile, _ c: NetworkConfig, fold: Bool, meta: [String: String]) throws {
        XCTAssertEqual(f.irVersion, 8)
        XCTAssertEqual(f.opsets.count, 1)
        XCTAssertEqual(f.opsets.first?.domain, "")
        XCTAssertEqual(f.opsets.first?.version, 17)
        XCTAssertEqual(try f.model.string(2), "kdtrain")
        XCTAssertEqual(f.inputs.map(\.name), ["input"])
        XCTAssertEqual(f.inputs.first?.elemType, 1)
        XCTAssertEqual(f.inputs.first?.dims, ["N", "3", "\(c.inputSize)", "\(c.inputSize)"])
        XCTAssertEqual(f.outputs.map(\.name), ["embedding"])
        XCTAssertEqual(f.outputs.first?.elemType, 1)
        XCTAssertEqual(f.outputs.first?.dims, ["N", "\(c.embeddingSize)"])
        XCTAssertEqual(f.nodes.map(\.op), Self.expectedOps(c, fold: fold))

        // Wiring: every input is the graph input, an initializer or an earlier node's output; outputs are unique;
        // the last node writes the graph output; every initializer is used.
        var defined = Set(["input"] + f.initializers.map(\.name)), used = Set<String>()
        XCTAssertEqual(Set(f.initializers.map(\.name)).count, f.initializers.count, "initializer names are unique")
        for n in f.nodes {
            for i in n.inputs { XCTAssertTrue(defined.contains(i), "\(n.name) (\(n.op)) reads undefined \(i)"); used.insert(i) }
            XCTAssertEqual(n.outputs.count, 1, n.name)
            for o in n.outputs { XCTAssertFalse(defined.contains(o), "\(o) written twice"); defined.insert(o) }
        }
        XCTAssertEqual(f.nodes.last?.outputs, ["embedding"])
        for t in f.initializers { XCTAssertTrue(used.contains(t.name), "initializer \(t.name) is never read") }

        // Attributes of a few nodes.
        let byName = Dictionary(uniqueKeysWithValues: f.nodes.map { ($0.name, $0) })
        let stem = try XCTUnwrap(byName["stem.conv"])
        XCTAssertEqual(stem.attributes["kernel_shape"]?.attrInts, [Int64(c.stemKernel), Int64(c.stemKernel)])
        XCTAssertEqual(stem.attributes["strides"]?.attrInts, [Int64(c.stemStride), Int64(c.stemStride)])
        XCTAssertEqual(stem.attributes["pads"]?.attrInts, Array(repeating: Int64(c.stemKernel / 2), count: 4))
        let grouped = try XCTUnwrap(byName["layers.1.0.conv2"])
        XCTAssertEqual(grouped.attributes["group"]?.attrInt, Int64(c.cardinality))
        XCTAssertEqual(grouped.attributes["strides"]?.attrInts, [Int64(c.strides[1]), Int64(c.strides[1])])
        XCTAssertEqual(byName["layers.0.0.cbam.spatial"]?.attributes["kernel_shape"]?.attrInts, [Int64(c.cbamKernel), Int64(c.cbamKernel)])
        XCTAssertEqual(byName["layers.0.0.cbam.pooled"]?.inputs, ["layers.0.0.cbam.pool_max", "layers.0.0.cbam.pool_mean"], "CBAM pools (max, mean)")
        for n in f.nodes where n.op == "BatchNormalization" { XCTAssertEqual(n.attributes["epsilon"]?.attrFloat, 1e-5, n.name) }
        for n in f.nodes where n.op == "Gemm" { XCTAssertEqual(n.attributes["transB"]?.attrInt, 1, n.name) }
        let axes = try XCTUnwrap(f.initializers.first { $0.name == "onnx.axes_2_3" })
        XCTAssertEqual(axes.dims, [2]); XCTAssertEqual(axes.dataType, 7)
        XCTAssertEqual(axes.raw, [2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0])

        // Metadata: the checkpoint's preprocessing.
        let pre = try JSONDecoder().decode(Preprocessing.self, from: Data(try XCTUnwrap(meta["preprocessing"]).utf8))
        XCTAssertEqual(f.metadata["preprocessing"], meta["preprocessing"])
        XCTAssertEqual(f.metadata["preprocessing_recorded"], "true")
        XCTAssertEqual(f.metadata["input_size"], "\(c.inputSize)")
        XCTAssertEqual(f.metadata["resize"], "bicubic")
        XCTAssertEqual(f.metadata["resize"], pre.resize)
        XCTAssertEqual(f.metadata["mean"], "[0.5,0.5,0.5]")
        XCTAssertEqual(f.metadata["std"], "[0.5,0.5,0.5]")
        XCTAssertEqual(f.metadata["normalization"], "(x / 255 - mean) / std")
        XCTAssertEqual(f.metadata["channel_order"], "RGB")
        XCTAssertEqual(f.metadata["layout"], "NCHW")
        XCTAssertEqual(f.metadata["embedding_size"], "\(c.embeddingSize)")
        XCTAssertEqual(f.metadata["model"], meta["model"])
        XCTAssertEqual(f.metadata["model_hash"], meta["model_hash"])
        XCTAssertEqual(f.metadata["step"], "3")
    }

    func floats(_ raw: [UInt8]) -> [Float] {
        stride(from: 0, to: raw.count, by: 4).map {
            Float(bitPattern: UInt32(raw[$0]) | UInt32(raw[$0 + 1]) << 8 | UInt32(raw[$0 + 2]) << 16 | UInt32(raw[$0 + 3]) << 24)
        }
    }

    func testStructureWithBatchNormNodes() throws {
        let dir = try temporaryRunDirectory(self)
        let ck = try makeCheckpoint(dir)
        try export(ck.path, dir + "/m.onnx")
        let f = try OnnxFile(path: dir + "/m.onnx")
        let c = Self.network
        try checkCommon(f, c, fold: false, meta: ck.meta)
        XCTAssertEqual(f.metadata["batch_norm"], "BatchNormalization nodes with the running statistics, epsilon 1e-05")
        XCTAssertEqual(f.nodes.filter { $0.op == "BatchNormalization" }.count, 1 + 3 * 3 + 2 + 2, "stem, 3 per block, 2 projections, head 2")
        // Every initializer but the axes is a checkpoint tensor: its name, dims (the PReLU slope as [C,1,1]),
        // float32, 4 bytes per value, the checkpoint's values bitwise. Every network tensor is there.
        let network = Set(ck.tensors.keys.filter { !$0.hasPrefix("classifier.") && !$0.hasPrefix("optimizer.") })
        var seen = Set<String>()
        for t in f.initializers where t.name != "onnx.axes_2_3" {
            let k = try XCTUnwrap(ck.tensors[t.name], "initializer \(t.name) is not a checkpoint tensor")
            XCTAssertEqual(t.dataType, 1, t.name)
            XCTAssertEqual(t.dims, t.name == "stem.prelu.weight" ? [c.stemChannels, 1, 1] : k.shape, t.name)
            XCTAssertEqual(t.raw.count, 4 * k.values.count, t.name)
            XCTAssertEqual(floats(t.raw).map(\.bitPattern), k.values.map(\.bitPattern), "\(t.name): values differ from the checkpoint")
            seen.insert(t.name)
        }
        XCTAssertEqual(seen, network, "initializers are exactly the network's checkpoint tensors")
        XCTAssertEqual(f.initializers.count, network.count + 1)
    }

    func testStructureWithFoldedBatchNorm() throws {
        let dir = try temporaryRunDirectory(self)
        let ck = try makeCheckpoint(dir)
        try export(ck.path, dir + "/f.onnx", fold: true)
        let f = try OnnxFile(path: dir + "/f.onnx")
        let c = Self.network
        try checkCommon(f, c, fold: true, meta: ck.meta)
        XCTAssertEqual(f.metadata["batch_norm"], "folded into the adjacent Conv/Gemm weights")
        XCTAssertFalse(f.nodes.contains { $0.op == "BatchNormalization" })
        let inits = Dictionary(uniqueKeysWithValues: f.initializers.map { ($0.name, $0) })
        XCTAssertFalse(inits.keys.contains { $0.contains("running_") || $0.hasSuffix("bn.weight") }, "no batch-norm tensors left")
        for n in f.nodes where n.op == "Conv" {
            let w = try XCTUnwrap(inits[n.inputs[1]]), k = try XCTUnwrap(ck.tensors[n.name + ".weight"])
            XCTAssertEqual(w.dims, k.shape, n.name); XCTAssertEqual(w.raw.count, 4 * k.values.count, n.name)
            if n.name.hasSuffix(".spatial") { XCTAssertEqual(n.inputs.count, 2, "CBAM's spatial conv has no batch norm"); continue }
            let b = try XCTUnwrap(inits[n.inputs[2]], n.name)
            XCTAssertEqual(b.dims, [k.shape[0]], n.name); XCTAssertEqual(b.raw.count, 4 * k.shape[0], n.name)
        }
        // The fold, recomputed for the stem and one projection: W' = W g / sqrt(v + eps), b' = beta - mean g / sqrt(v + eps).
        for (conv, bn) in [("stem.conv", "stem.bn"), ("layers.1.0.downsample.0", "layers.1.0.downsample.1")] {
            let w = ck.tensors[conv + ".weight"]!, g = ck.tensors[bn + ".weight"]!.values, beta = ck.tensors[bn + ".bias"]!.values
            let mean = ck.tensors[bn + ".running_mean"]!.values, v = ck.tensors[bn + ".running_var"]!.values
            let fw = floats(inits[conv + ".weight"]!.raw), fb = floats(inits[conv + ".bias"]!.raw)
            let per = w.values.count / w.shape[0]
            for o in 0..<w.shape[0] {
                let a = Double(g[o]) / (Double(v[o]) + 1e-5).squareRoot()
                XCTAssertEqual(Double(fb[o]), Double(beta[o]) - Double(mean[o]) * a, accuracy: 1e-6, "\(conv) bias \(o)")
                for j in 0..<per { XCTAssertEqual(Double(fw[o * per + j]), Double(w.values[o * per + j]) * a, accuracy: 1e-6) }
            }
        }
        let fc = try XCTUnwrap(inits["embed.fc.weight"])
        XCTAssertEqual(fc.dims, ck.tensors["embed.fc.weight"]!.shape)
        XCTAssertEqual(inits["embed.fc.bias"]?.dims, [c.embeddingSize])
    }

    /// Each bad input: exit non-zero, one line on stderr naming the culprit, nothing written.
    func testBadInputsAreOneLine() throws {
        let dir = try temporaryRunDirectory(self)
        let ck = try makeCheckpoint(dir)
        let truncated = dir + "/truncated.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: ck.path))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        let headerCut = dir + "/header.safetensors"
        try bytes.prefix(20).write(to: URL(fileURLWithPath: headerCut))
        try Data("not a folder".utf8).write(to: URL(fileURLWithPath: dir + "/file"))
        let cases: [(args: [String], names: String, output: String?)] = [
            (["export", "--format", "onnx", dir + "/missing.safetensors", "-o", dir + "/a.onnx"], "missing.safetensors", dir + "/a.onnx"),
            (["export", "--format", "onnx", truncated, "-o", dir + "/b.onnx"], "truncated.safetensors", dir + "/b.onnx"),
            (["export", "--format", "onnx", headerCut, "-o", dir + "/c.onnx"], "header.safetensors", dir + "/c.onnx"),
            (["export", "--format", "onnx", ck.path, "-o", dir + "/nowhere/d.onnx"], "nowhere", dir + "/nowhere/d.onnx"),
            (["export", "--format", "onnx", ck.path, "-o", dir + "/file/e.onnx"], "file", nil),
            (["export", "--format", "onnx", ck.path, "-o", dir], dir, nil),
            (["export", "--format", "tflite", ck.path, "-o", dir + "/g.onnx"], "--format 'tflite'", dir + "/g.onnx"),
            (["export", "--format", "onnx", ck.path], "-o", nil),
            (["export", "--format", "onnx", "-o", dir + "/h.onnx"], "CHECKPOINT", dir + "/h.onnx"),
        ]
        for c in cases {
            let r = try ProcessRunner.run(try kdtrain, ranks: nil, c.args, timeout: 60)
            XCTAssertNotEqual(r.status, 0, "\(c.args): \(r.output)")
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
            XCTAssertEqual(lines.count, 1, "\(c.args): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("kdtrain: "), r.stderr)
            XCTAssertTrue(r.stderr.contains(c.names), "\(c.args): '\(r.stderr)' does not name \(c.names)")
            if let o = c.output { XCTAssertFalse(FileManager.default.fileExists(atPath: o), "\(o) written despite the error") }
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".onnx") || $0.contains(".tmp") }
        XCTAssertEqual(left, [], "no output or temporary file left behind")
    }

    /// The Python interpreter for the cross-checks: $KDTRAIN_PYTHON, else python3.
    static var python: String { ProcessInfo.processInfo.environment["KDTRAIN_PYTHON"] ?? "python3" }

    func requirePython(_ modules: String) throws {
        let probe = try ProcessRunner.run("/usr/bin/env", ranks: nil, [Self.python, "-c", "import \(modules)"], timeout: 60)
        guard probe.status == 0 else { throw XCTSkip("\(Self.python) lacks \(modules) (set KDTRAIN_PYTHON to an interpreter that has them)") }
    }

    /// `kdtrain embed --pixels --flip none` of 120 synthetic images with `ck`.
    func embedWithPixels(_ ck: String, dir: String) throws -> String {
        let emb = dir + "/emb.safetensors"
        let e = try ProcessRunner.run(try kdtrain, ranks: nil, ["embed", "--checkpoint", ck, "--data", "synthetic:pairs=60,verify-ids=20,size=32",
                                                                "--output", emb, "--pixels", "--flip", "none", "--set", "data.threads=1"], timeout: 120)
        guard e.status == 0 else { throw XCTSkip("embed failed: \(e.output)") }
        return emb
    }

    func script(_ name: String) -> String { ProcessRunner.repositoryRoot.appendingPathComponent("scripts/" + name).path }

    func testOnnxRuntimeReproducesEmbed() throws {
        try requirePython("onnxruntime, numpy, safetensors.numpy")
        let dir = try temporaryRunDirectory(self)
        let ck = try makeCheckpoint(dir)
        let emb = try embedWithPixels(ck.path, dir: dir)
        for fold in [false, true] {
            let out = dir + (fold ? "/f.onnx" : "/m.onnx")
            try export(ck.path, out, fold: fold)
            let r = try ProcessRunner.run("/usr/bin/env", ranks: nil, [Self.python, script("check_onnx.py"), out, emb], timeout: 120)
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(r.stdout.contains("max abs difference"), r.output)
            print(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// python/kdtrain_torch.py builds the network from the checkpoint and gives kdtrain's embeddings.
    func testTorchLoaderReproducesEmbed() throws {
        try requirePython("torch, safetensors.torch")
        let dir = try temporaryRunDirectory(self)
        let ck = try makeCheckpoint(dir)
        let emb = try embedWithPixels(ck.path, dir: dir)
        let r = try ProcessRunner.run("/usr/bin/env", ranks: nil, [Self.python, script("check_torch_loader.py"), ck.path, emb], timeout: 300)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("max abs difference"), r.output)
        print(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
