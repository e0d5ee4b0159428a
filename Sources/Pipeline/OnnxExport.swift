// ONNX export of a checkpoint's embedding network (the student, a teacher or an averaged model):
// inference mode, opset 17, IR version 8, one float input `input` (N, C, S, S) with a dynamic
// batch N, one output `embedding` (N, E), the raw embedding kdtrain computes (not normalized).
//
// Graph, per FaceNet (Sources/Model/ResNeXt.swift, CBAM.swift):
//   stem      Conv (k, stride, pad k/2) -> BatchNormalization -> PRelu (slope [C,1,1])
//   block     Conv 1x1 -> BN -> Relu -> Conv 3x3 group=cardinality stride s -> BN -> Relu -> Conv 1x1 -> BN
//             -> CBAM -> Add(shortcut: the input, or Conv 1x1 stride s -> BN) -> Relu
//   CBAM      GlobalAveragePool / GlobalMaxPool -> Flatten -> Gemm fc1 -> Relu -> Gemm fc2 (shared MLP,
//             one branch each), Add -> Sigmoid -> Unsqueeze -> Mul (channel attention);
//             ReduceMax / ReduceMean over channels (keepdims) -> Concat (max, mean) -> Conv k x k
//             -> Sigmoid -> Mul (spatial attention)
//   head      BN -> Flatten -> Gemm embed.fc -> Unsqueeze -> BN (features) -> Flatten; dropout is
//             the identity in inference and has no node.
// Batch norm is a BatchNormalization node with the running statistics (epsilon as kdtrain's), or,
// with `foldBN`, folded (in double precision) into the preceding Conv (weight scaled per output
// channel plus a bias) and, in the head, embed.bn into the following Gemm and the features BN
// into the preceding Gemm: no BatchNormalization node remains.
// Initializers carry the checkpoint's tensor names; unfolded they are the checkpoint's float32
// values bitwise with its shapes (the PReLU slope as [C, 1, 1]); one int64 initializer
// `onnx.axes_2_3` holds Unsqueeze's axes. The preprocessing the checkpoint records goes into
// metadata_props.
import Foundation
import KDCore
import Model

public enum OnnxExport {
    public static let opset = 17
    public static let irVersion = 8
    public static let inputName = "input", outputName = "embedding"
    /// The int64 initializer holding Unsqueeze's axes (2, 3).
    public static let axesName = "onnx.axes_2_3"

    /// What an export wrote.
    public struct Summary: Sendable {
        public var nodes: Int
        public var initializers: Int
        /// Float values in the initializers.
        public var parameters: Int
        public var bytes: Int
        public var opCounts: [String: Int]
    }

    /// The ONNX ModelProto bytes of the network in `c`.
    /// - Throws: `CheckpointError` naming the file when a tensor the network needs is missing or
    ///   mis-shaped, or the preprocessing metadata is malformed.
    public static func encode(_ c: Checkpoint.Contents, foldBN: Bool) throws -> (bytes: [UInt8], summary: Summary) {
        let cfg = c.identity.network
        // The layer table (nothing allocated): the batch-norm epsilon kdtrain uses.
        let net = FaceNet(config: cfg, store: ParamStore())
        let eps = net.batchNorms.first!.eps
        precondition(net.batchNorms.allSatisfy { $0.eps == eps }, "batch-norm layers with different epsilons")
        var g = GraphBuilder(checkpoint: c, eps: eps, foldBN: foldBN)

        var x = inputName
        x = try g.conv(x, "stem.conv", bn: "stem.bn", kernel: cfg.stemKernel, stride: cfg.stemStride, pad: cfg.stemKernel / 2)
        let slope = try g.tensor("stem.prelu.weight", shape: [cfg.stemChannels])
        g.initializer("stem.prelu.weight", dims: [cfg.stemChannels, 1, 1], slope.values)
        x = g.node("PRelu", [x, "stem.prelu.weight"], "stem.prelu")
        var cin = cfg.stemChannels
        for (i, (depth, cout)) in zip(cfg.depths, cfg.widths).enumerated() {
            for b in 0..<depth {
                let p = "layers.\(i).\(b)", stride = b == 0 ? cfg.strides[i] : 1
                let block = x
                var y = try g.conv(block, p + ".conv1", bn: p + ".bn1", kernel: 1, stride: 1, pad: 0)
                y = g.node("Relu", [y], p + ".relu1")
                y = try g.conv(y, p + ".conv2", bn: p + ".bn2", kernel: 3, stride: stride, pad: 1, group: cfg.cardinality)
                y = g.node("Relu", [y], p + ".relu2")
                y = try g.conv(y, p + ".conv3", bn: p + ".bn3", kernel: 1, stride: 1, pad: 0)
                y = try g.cbam(y, p + ".cbam", kernel: cfg.cbamKernel)
                var shortcut = block
                if stride != 1 || cin != cout {
                    shortcut = try g.conv(block, p + ".downsample.0", bn: p + ".downsample.1", kernel: 1, stride: stride, pad: 0)
                }
                y = g.node("Add", [y, shortcut], p + ".add")
                x = g.node("Relu", [y], p + ".relu")
                cin = cout
            }
        }
        try g.head(x, channels: cin, side: cfg.stageSides.last!, embedding: cfg.embeddingSize)

        let props = try metadata(c, foldBN: foldBN, eps: eps)
        var graph = ProtobufWriter()
        for n in g.nodes { graph.message(1, n) }                                 // node
        graph.string(2, "kdtrain-embedding")                                      // name
        for t in g.initializers { graph.message(5, t) }                           // initializer
        graph.string(10, "ResNeXt-CBAM face embedding network of \(URL(fileURLWithPath: c.path).lastPathComponent), inference mode")
        graph.message(11, valueInfo(inputName, [nil, cfg.inputChannels, cfg.inputSize, cfg.inputSize]))  // input
        graph.message(12, valueInfo(outputName, [nil, cfg.embeddingSize]))        // output

        var model = ProtobufWriter()
        model.int(1, Int64(irVersion))                                            // ir_version
        model.string(2, "kdtrain")                                                // producer_name
        model.string(3, kdtrainVersion)                                           // producer_version
        model.int(5, 1)                                                           // model_version
        model.string(6, "Embedding network of a kdtrain checkpoint; see metadata_props for the input preprocessing.")
        model.message(7, graph)                                                   // graph
        model.message(8) { o in o.string(1, ""); o.int(2, Int64(opset)) }         // opset_import (ai.onnx)
        for (k, v) in props { model.message(14) { e in e.string(1, k); e.string(2, v) } }  // metadata_props
        let bytes = model.bytes
        return (bytes, Summary(nodes: g.nodes.count, initializers: g.initializers.count, parameters: g.parameterCount,
                               bytes: bytes.count, opCounts: g.opCounts))
    }

    /// Reads the checkpoint at `checkpoint` and writes its ONNX model to `output` atomically.
    @discardableResult
    public static func export(checkpoint: String, to output: String, foldBN: Bool) throws -> Summary {
        let c = try Checkpoint.read(checkpoint)
        let (bytes, summary) = try encode(c, foldBN: foldBN)
        try AtomicFile.write(bytes, to: output)
        return summary
    }

    /// metadata_props, in a fixed order: the preprocessing the checkpoint records (or what kdtrain
    /// fixes when it records none), the output, and where the model came from.
    static func metadata(_ c: Checkpoint.Contents, foldBN: Bool, eps: Float) throws -> [(String, String)] {
        let cfg = c.identity.network
        let recorded = c.metadata["preprocessing"]
        let pre: Preprocessing
        if let s = recorded {
            guard let p = c.preprocessing else { throw CheckpointError(c.path, "metadata 'preprocessing' is malformed: \(s.prefix(80))") }
            guard p.inputSize == cfg.inputSize else {
                throw CheckpointError(c.path, "metadata 'preprocessing' has inputSize \(p.inputSize), its model takes \(cfg.inputSize)")
            }
            pre = p
        } else {
            var p = Preprocessing(config: RunConfig(), inputSize: cfg.inputSize)
            p.resize = "not recorded in the checkpoint"
            pre = p
        }
        func list(_ x: [Double]) -> String { "[" + x.map { "\($0)" }.joined(separator: ",") + "]" }
        var props: [(String, String)] = [
            ("input_size", String(cfg.inputSize)),
            ("input_channels", String(cfg.inputChannels)),
            ("channel_order", pre.channels),
            ("layout", pre.layout),
            ("normalization", pre.normalization),
            ("mean", list(pre.mean)),
            ("std", list(pre.std)),
            ("resize", pre.resize),
            ("preprocessing", recorded ?? pre.json),
            ("preprocessing_recorded", recorded == nil ? "false" : "true"),
            ("embedding_size", String(cfg.embeddingSize)),
            ("output", "raw embedding (N, \(cfg.embeddingSize)), not normalized; kdtrain's evaluation adds the embedding of the horizontally mirrored input and L2-normalizes"),
            ("batch_norm", foldBN ? "folded into the adjacent Conv/Gemm weights" : "BatchNormalization nodes with the running statistics, epsilon \(eps)"),
            ("kdtrain_version", kdtrainVersion),
            ("checkpoint", URL(fileURLWithPath: c.path).lastPathComponent),
            ("model", c.metadata["model"] ?? c.identity.metadataJSON),
            ("model_hash", c.identity.hash),
            ("step", String(c.position.step)),
        ]
        if let r = c.metadata["run_id"] { props.append(("run_id", r)) }
        return props
    }

    /// A float tensor ValueInfoProto; nil dims are the dynamic batch "N".
    static func valueInfo(_ name: String, _ dims: [Int?]) -> ProtobufWriter {
        var v = ProtobufWriter()
        v.string(1, name)
        v.message(2) { type in                              // TypeProto
            type.message(1) { t in                          // tensor_type
                t.int(1, 1)                                 // elem_type FLOAT
                t.message(2) { shape in                     // TensorShapeProto
                    for d in dims {
                        shape.message(1) { dim in
                            if let d { dim.int(1, Int64(d)) } else { dim.string(2, "N") }
                        }
                    }
                }
            }
        }
        return v
    }
}

/// An ONNX node attribute.
enum OnnxAttribute {
    case int(String, Int), ints(String, [Int]), float(String, Float)

    var proto: ProtobufWriter {
        var a = ProtobufWriter()
        switch self {
        case .int(let n, let v): a.string(1, n); a.int(3, Int64(v)); a.int(20, 2)          // INT
        case .float(let n, let v): a.string(1, n); a.float(2, v); a.int(20, 1)             // FLOAT
        case .ints(let n, let v): a.string(1, n); for x in v { a.int(8, Int64(x)) }; a.int(20, 7)   // INTS
        }
        return a
    }
}

/// Accumulates nodes and initializers; a node's output is named after the node.
struct GraphBuilder {
    let checkpoint: Checkpoint.Contents
    let eps: Float
    let foldBN: Bool
    private(set) var nodes: [ProtobufWriter] = []
    private(set) var initializers: [ProtobufWriter] = []
    private(set) var parameterCount = 0
    private(set) var opCounts: [String: Int] = [:]
    private var hasAxes = false

    init(checkpoint: Checkpoint.Contents, eps: Float, foldBN: Bool) {
        self.checkpoint = checkpoint; self.eps = eps; self.foldBN = foldBN
    }

    /// The checkpoint tensor `name`, which must have `shape`.
    func tensor(_ name: String, shape: [Int]) throws -> NamedTensor {
        guard let t = checkpoint.tensors[name] else { throw CheckpointError(checkpoint.path, "missing tensor \(name)") }
        guard t.shape == shape, t.values.count == shape.reduce(1, *) else {
            throw CheckpointError(checkpoint.path, "tensor \(name) has shape \(t.shape), the network needs \(shape)")
        }
        return t
    }

    func tensor(_ name: String) throws -> NamedTensor {
        guard let t = checkpoint.tensors[name] else { throw CheckpointError(checkpoint.path, "missing tensor \(name)") }
        return t
    }

    mutating func initializer(_ name: String, dims: [Int], _ values: [Float], doc: String? = nil) {
        precondition(dims.reduce(1, *) == values.count, "\(name): \(values.count) values for dims \(dims)")
        var t = ProtobufWriter()
        for d in dims { t.int(1, Int64(d)) }               // dims
        t.int(2, 1)                                         // data_type FLOAT
        t.string(8, name)                                   // name
        t.bytes(9, ProtobufWriter.littleEndianBytes(values))  // raw_data
        if let doc { t.string(12, doc) }                    // doc_string
        initializers.append(t)
        parameterCount += values.count
    }

    /// The checkpoint tensor `name` as an initializer of the same name and shape.
    @discardableResult
    mutating func initializer(fromCheckpoint name: String, shape: [Int]) throws -> String {
        initializer(name, dims: shape, try tensor(name, shape: shape).values)
        return name
    }

    mutating func axes() -> String {
        if !hasAxes {
            var t = ProtobufWriter()
            t.int(1, 2); t.int(2, 7); t.string(8, OnnxExport.axesName)   // dims [2], INT64
            t.bytes(9, ProtobufWriter.littleEndianBytes([Int64(2), 3]))
            initializers.append(t)
            hasAxes = true
        }
        return OnnxExport.axesName
    }

    /// Appends a node; returns its output name (`output`, else the node's name).
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], _ name: String, _ attrs: [OnnxAttribute] = [], output: String? = nil) -> String {
        var n = ProtobufWriter()
        for i in inputs { n.string(1, i) }
        n.string(2, output ?? name)
        n.string(3, name)
        n.string(4, op)
        for a in attrs { n.message(5, a.proto) }
        nodes.append(n)
        opCounts[op, default: 0] += 1
        return output ?? name
    }

    /// Per-channel scale and shift of the batch norm `bn` in inference: y = a x + b, in double.
    func affine(_ bn: String, channels: Int) throws -> (a: [Double], b: [Double]) {
        let w = try tensor(bn + ".weight", shape: [channels]).values, bias = try tensor(bn + ".bias", shape: [channels]).values
        let m = try tensor(bn + ".running_mean", shape: [channels]).values, v = try tensor(bn + ".running_var", shape: [channels]).values
        var a = [Double](repeating: 0, count: channels), b = a
        for c in 0..<channels {
            a[c] = Double(w[c]) / (Double(v[c]) + Double(eps)).squareRoot()
            b[c] = Double(bias[c]) - Double(m[c]) * a[c]
        }
        return (a, b)
    }

    mutating func batchNorm(_ x: String, _ bn: String, channels: Int) throws -> String {
        let names = ["weight", "bias", "running_mean", "running_var"].map { bn + "." + $0 }
        for n in names { try initializer(fromCheckpoint: n, shape: [channels]) }
        return node("BatchNormalization", [x] + names, bn, [.float("epsilon", eps)])
    }

    /// Conv without bias, followed by the batch norm `bn` (a node, or folded into the conv).
    mutating func conv(_ x: String, _ conv: String, bn: String?, kernel k: Int, stride: Int, pad: Int, group: Int = 1) throws -> String {
        let w = try tensor(conv + ".weight")
        guard w.shape.count == 4, w.shape[2] == k, w.shape[3] == k, w.shape[0] % group == 0 else {
            throw CheckpointError(checkpoint.path, "tensor \(conv).weight has shape \(w.shape), the network needs a \(k)x\(k) kernel")
        }
        let cout = w.shape[0]
        let attrs: [OnnxAttribute] = [.ints("dilations", [1, 1]), .int("group", group), .ints("kernel_shape", [k, k]),
                                      .ints("pads", [pad, pad, pad, pad]), .ints("strides", [stride, stride])]
        if let bn, foldBN {
            let (a, b) = try affine(bn, channels: cout)
            let per = w.values.count / cout
            var folded = w.values
            for c in 0..<cout { for j in 0..<per { folded[c * per + j] = Float(Double(w.values[c * per + j]) * a[c]) } }
            initializer(conv + ".weight", dims: w.shape, folded, doc: "\(conv).weight with \(bn) folded in")
            initializer(conv + ".bias", dims: [cout], b.map { Float($0) }, doc: "\(bn) folded into \(conv)")
            return node("Conv", [x, conv + ".weight", conv + ".bias"], conv, attrs)
        }
        initializer(conv + ".weight", dims: w.shape, w.values)
        let y = node("Conv", [x, conv + ".weight"], conv, attrs)
        guard let bn else { return y }
        return try batchNorm(y, bn, channels: cout)
    }

    /// CBAM on x (N, C, H, W): see the legend of Sources/Model/CBAM.swift.
    mutating func cbam(_ x: String, _ p: String, kernel k: Int) throws -> String {
        let w1 = try tensor(p + ".mlp.fc1.weight")
        guard w1.shape.count == 2 else { throw CheckpointError(checkpoint.path, "tensor \(p).mlp.fc1.weight has shape \(w1.shape), expected 2 dimensions") }
        let (r, c) = (w1.shape[0], w1.shape[1])
        try initializer(fromCheckpoint: p + ".mlp.fc1.weight", shape: [r, c])
        try initializer(fromCheckpoint: p + ".mlp.fc1.bias", shape: [r])
        try initializer(fromCheckpoint: p + ".mlp.fc2.weight", shape: [c, r])
        try initializer(fromCheckpoint: p + ".mlp.fc2.bias", shape: [c])
        let avg = node("Flatten", [node("GlobalAveragePool", [x], p + ".avgpool")], p + ".avg", [.int("axis", 1)])
        let mx = node("Flatten", [node("GlobalMaxPool", [x], p + ".maxpool")], p + ".max", [.int("axis", 1)])
        var logits: [String] = []
        for (branch, v) in [("avg", avg), ("max", mx)] {
            let h = node("Gemm", [v, p + ".mlp.fc1.weight", p + ".mlp.fc1.bias"], "\(p).mlp.\(branch).fc1", [.int("transB", 1)])
            let hr = node("Relu", [h], "\(p).mlp.\(branch).relu")
            logits.append(node("Gemm", [hr, p + ".mlp.fc2.weight", p + ".mlp.fc2.bias"], "\(p).mlp.\(branch).fc2", [.int("transB", 1)]))
        }
        let caLogit = node("Add", logits, p + ".channel_logit")
        let ca = node("Sigmoid", [caLogit], p + ".channel")
        let ca4 = node("Unsqueeze", [ca, axes()], p + ".channel_map")
        let xs = node("Mul", [x, ca4], p + ".channel_refined")
        let cmax = node("ReduceMax", [xs], p + ".pool_max", [.ints("axes", [1]), .int("keepdims", 1)])
        let cmean = node("ReduceMean", [xs], p + ".pool_mean", [.ints("axes", [1]), .int("keepdims", 1)])
        let pooled = node("Concat", [cmax, cmean], p + ".pooled", [.int("axis", 1)])
        let saLogit = try conv(pooled, p + ".spatial", bn: nil, kernel: k, stride: 1, pad: k / 2)
        let sa = node("Sigmoid", [saLogit], p + ".spatial_map")
        return node("Mul", [xs, sa], p + ".out")
    }

    /// embed.bn -> flatten -> embed.fc -> embed.features; the last node writes `embedding`.
    mutating func head(_ x: String, channels: Int, side: Int, embedding e: Int) throws {
        let features = channels * side * side
        let w = try tensor("embed.fc.weight", shape: [e, features]), bias = try tensor("embed.fc.bias", shape: [e])
        let gemmAttrs: [OnnxAttribute] = [.int("transB", 1)]
        if foldBN {
            // y = A2 (W (A1 x + B1) + bias) + B2 with A1, B1 per channel of x (features c*P + p).
            let (a1, b1) = try affine("embed.bn", channels: channels)
            let (a2, b2) = try affine("embed.features", channels: e)
            let plane = side * side
            var fw = [Float](repeating: 0, count: e * features), fb = [Float](repeating: 0, count: e)
            for o in 0..<e {
                var s = Double(bias.values[o])
                for j in 0..<features {
                    let wij = Double(w.values[o * features + j])
                    s += wij * b1[j / plane]
                    fw[o * features + j] = Float(a2[o] * wij * a1[j / plane])
                }
                fb[o] = Float(a2[o] * s + b2[o])
            }
            initializer("embed.fc.weight", dims: [e, features], fw, doc: "embed.fc.weight with embed.bn and embed.features folded in")
            initializer("embed.fc.bias", dims: [e], fb, doc: "embed.fc.bias with embed.bn and embed.features folded in")
            let flat = node("Flatten", [x], "embed.flatten", [.int("axis", 1)])
            node("Gemm", [flat, "embed.fc.weight", "embed.fc.bias"], "embed.fc", gemmAttrs, output: OnnxExport.outputName)
            return
        }
        let y = try batchNorm(x, "embed.bn", channels: channels)
        let flat = node("Flatten", [y], "embed.flatten", [.int("axis", 1)])
        initializer("embed.fc.weight", dims: [e, features], w.values)
        initializer("embed.fc.bias", dims: [e], bias.values)
        let fc = node("Gemm", [flat, "embed.fc.weight", "embed.fc.bias"], "embed.fc", gemmAttrs)
        // BatchNormalization takes (N, C, D...): (N, E) -> (N, E, 1, 1) -> BN -> (N, E).
        let f4 = node("Unsqueeze", [fc, axes()], "embed.fc_4d")
        let bn = try batchNorm(f4, "embed.features", channels: e)
        node("Flatten", [bn], "embed.features_2d", [.int("axis", 1)], output: OnnxExport.outputName)
    }
}
