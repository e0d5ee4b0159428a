// `kdtrain embed`: the embeddings of a data source, for comparing kdtrain with other frameworks.
//
// The network input of every image is made by the evaluation's own code (`Evaluator.embed`), so
// the embeddings compared pairwise give exactly the distances `kdtrain evaluate` computes.
//
// Output (one safetensors file, float32 little-endian; N images, E embedding size, S input side):
//   embeddings          (N, E)        flip sum (image + mirror), the image alone (--flip none), or,
//                                     with --flip both, the flip sum next to the two views:
//   embeddings_noflip   (N, E)        the image alone                      (--flip both)
//   embeddings_mirror   (N, E)        its horizontal mirror                (--flip both)
//   labels              (N)           identity label (folder and .rec sources)
//   issame              (N/2)         1 same identity, 0 not (pair sources: rows 2i, 2i+1 are pair i)
//   pixels              (N, 3, S, S)  the exact network input of each image (--pixels)
//   pixels_mirror       (N, 3, S, S)  that of its mirror (--pixels, unless --flip none)
// and metadata: names (JSON array of N image names), source, checkpoint, model, factor, flip,
// normalized, degradation, preprocessing. With --npy, each tensor is also written as BASE.<tensor>.npy
// (labels int64, issame bool) and the names as BASE.names.npy (numpy unicode strings).
import Dispatch
import Dist
import Evaluation
import FaceData
import Foundation
import Model
import KDCore

/// The images of an embedding job in output order, with their names.
public struct EmbeddingImages: Sendable {
    /// `images`: every image of a folder or .rec; `pairs`: the 2P images of verification pairs
    /// (image 2i and 2i + 1 form pair i), in the order evaluation uses them.
    public enum Kind: String, Sendable { case images, pairs }
    public let kind: Kind
    /// A name per image: the path under the folder or image root, the .rec key, or the index in
    /// a .bin or synthetic set.
    public let names: [String]
    /// Identity labels (image sources) or pair labels (pair sources).
    public let labels: [Int]?
    public let issame: [Bool]?
    public let summary: String
    let load: @Sendable (Int) throws -> FaceImage

    public var count: Int { names.count }
    public func image(_ i: Int) throws -> FaceImage { try load(i) }

    /// Opens `source`: a folder without `pairs=` and a .rec give all their images; a folder with
    /// `pairs=N`, a .bin, a pairs list and synthetic data give the images of their verification pairs.
    public init(source: DataSource, threads: Int) throws {
        func relative(_ path: String, to root: String) -> String {
            let r = root.hasSuffix("/") ? root : root + "/"
            return path.hasPrefix(r) ? String(path.dropFirst(r.count)) : path
        }
        switch source {
        case .folder(let root, _, nil, _, _), .rec(let root, _):
            let set = try source.trainingSet(threads: threads)
            let n = set.count
            kind = .images
            if let f = set as? ImageFolder { names = f.files.map { relative($0, to: root) } }
            else if let r = set as? RecordSet { names = r.keys.map(String.init) }
            else { names = (0..<n).map(String.init) }
            labels = try (0..<n).map { try set.label($0) }
            issame = nil
            summary = set.summary
            load = { try set.sample($0).image }
        default:
            let pairs = try source.pairSet(threads: threads)
            kind = .pairs
            switch pairs {
            case let g as GeneratedPairSet:
                if let f = g.source as? ImageFolder { names = g.members.map { relative(f.files[$0], to: f.root) } }
                else { names = g.members.map(String.init) }
            case let p as PairsFile: names = p.paths.map { relative($0, to: p.root) }
            default: names = (0..<(2 * pairs.pairCount)).map(String.init)
            }
            labels = nil
            issame = pairs.issame
            summary = pairs.summary
            load = { try pairs.image($0) }
        }
    }
}

public enum Embedder {
    /// What `--flip` asks for.
    public enum Flip: String, CaseIterable, Sendable {
        /// Embedding of the image plus that of its mirror (the evaluation's flip test).
        case sum
        /// The image alone.
        case none
        /// The flip sum, and both views separately.
        case both
    }

    public struct Options: Sendable {
        public var factor: Int
        public var flip: Flip
        public var normalize: Bool
        public var pixels: Bool
        public init(factor: Int = 1, flip: Flip = .sum, normalize: Bool = false, pixels: Bool = false) {
            self.factor = factor; self.flip = flip; self.normalize = normalize; self.pixels = pixels
        }
    }

    /// Largest factor (the evaluation's limit for eval.factors).
    public static let maxFactor = 64
    /// The names go into the safetensors header, which readers cap at 100 MB.
    static let maxNamesBytes = 64 << 20

    /// One file's tensors and metadata (rank 0).
    public struct Output {
        public var tensors: [NamedTensor]
        public var metadata: [String: String]
        public var names: [String]
        public var labels: [Int]?
        public var issame: [Bool]?
        public var summary: String
    }

    /// Embeds every image of `images` with `model` (built from `checkpoint`). Collective: images are
    /// sharded over the ranks and gathered on rank 0, which gets the output (nil elsewhere).
    /// Degradation: every image at `options.factor`, except for pair sources with `eval.degrade=probe`,
    /// where, as in evaluation, only the probe (second image) of each pair is degraded.
    public static func run(comm: Communicator, config cfg: RunConfig, checkpoint: Checkpoint.Contents, model: FaceModel,
                           images: EmbeddingImages, options o: Options) throws -> Output? {
        guard (1...maxFactor).contains(o.factor) else { throw ConfigError("--factor \(o.factor) must be a whole number in 1...\(maxFactor)") }
        let n = images.count, E = model.net.config.embeddingSize, S = model.net.config.inputSize, ss = 3 * S * S
        guard n > 0 else { throw ConfigError("\(images.summary): no images to embed") }
        let shard = EvaluationShard(datasetSize: n, worldSize: comm.size, rank: comm.rank).range
        // Decode this rank's images once, as the evaluation does.
        let slots = ImageSlots(count: shard.count), errors = FirstError(), threads = max(1, cfg.data.threads)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for k in stride(from: t, to: shard.count, by: threads) {
                do { slots.set(k, try images.image(shard.lowerBound + k)) } catch { errors.set(error) }
            }
        }
        if let e = errors.get() { throw e }
        let decoded = slots.all()
        let views = o.flip == .none ? 1 : 2
        let probesOnly = images.kind == .pairs && cfg.eval.degrade == .probe
        var localPixels = o.pixels ? [[Float]](repeating: [Float](repeating: 0, count: shard.count * ss), count: views) : []
        let rows = Evaluator.embed(decoded, firstIndex: shard.lowerBound, model: model, config: cfg, factor: Float(o.factor),
                                   views: views, probesOnly: probesOnly,
                                   inputs: o.pixels ? { v, start, count, px in
                                       localPixels[v].withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: start * ss).update(from: px, count: count * ss) }
                                   } : nil)
        let all = try comm.gatherEvaluation(rows, width: views * E, datasetSize: n)
        var pixels: [[Float]] = []
        for v in 0..<localPixels.count { pixels.append(try comm.gatherEvaluation(localPixels[v], width: ss, datasetSize: n)) }
        guard comm.isRoot else { return nil }

        // Views as (N, E) row-major arrays.
        var view = [[Float]](repeating: [Float](repeating: 0, count: n * E), count: views)
        for r in 0..<n { for v in 0..<views { for j in 0..<E { view[v][r * E + j] = all[r * views * E + v * E + j] } } }
        func unit(_ x: [Float]) -> [Float] { Evaluator.unitRows(x, dimension: E).map { Float($0) } }
        var tensors: [NamedTensor] = []
        func add(_ name: String, _ shape: [Int], _ values: [Float]) { tensors.append(NamedTensor(name: name, shape: shape, values: values)) }
        switch o.flip {
        case .none:
            add("embeddings", [n, E], o.normalize ? unit(view[0]) : view[0])
        case .sum, .both:
            let sum: [Float]
            if o.normalize {
                // Exactly the evaluation's flip-test unit vectors (summed and normalized in Double), rounded to float32.
                sum = try VerificationProtocol.flipTestEmbeddings(view[0], flipped: view[1], dimension: E).map { Float($0) }
            } else {
                sum = zip(view[0], view[1]).map { $0 + $1 }
            }
            add("embeddings", [n, E], sum)
            if o.flip == .both {
                add("embeddings_noflip", [n, E], o.normalize ? unit(view[0]) : view[0])
                add("embeddings_mirror", [n, E], o.normalize ? unit(view[1]) : view[1])
            }
        }
        if let l = images.labels { add("labels", [n], l.map { Float($0) }) }
        if let s = images.issame { add("issame", [s.count], s.map { $0 ? 1 : 0 }) }
        if o.pixels {
            add("pixels", [n, 3, S, S], pixels[0])
            if views == 2 { add("pixels_mirror", [n, 3, S, S], pixels[1]) }
        }

        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let namesJSON = String(decoding: try enc.encode(images.names), as: UTF8.self)
        guard namesJSON.utf8.count <= maxNamesBytes else {
            throw ConfigError("\(images.summary): the \(n) image names take \(namesJSON.utf8.count >> 20) MiB, more than the \(maxNamesBytes >> 20) MiB a safetensors header may hold; embed a smaller set")
        }
        var c = cfg
        c.eval.flip = o.flip != .none
        if images.kind == .images { c.eval.degrade = .both }
        var meta: [String: String] = [
            "format": "kdtrain-embeddings-1",
            "kdtrain_version": kdtrainVersion,
            "names": namesJSON,
            "source": images.summary,
            "source_kind": images.kind.rawValue,
            "checkpoint": checkpoint.path,
            "model": checkpoint.metadata["model"] ?? checkpoint.identity.json,
            "factor": String(o.factor),
            "flip": o.flip.rawValue,
            "normalized": String(o.normalize),
            "degradation": Evaluator.degradationDescription(c, factor: Float(o.factor)),
            "degraded_rows": o.factor == 1 ? "none" : probesOnly ? "odd rows (the probe of each pair), as eval.degrade=probe" : "all",
            "preprocessing": Preprocessing(config: cfg, inputSize: S).json,
            "tensors": tensors.map { "\($0.name) \($0.shape)" }.joined(separator: ", "),
        ]
        if images.kind == .pairs { meta["rows"] = "pair i is rows 2i (gallery) and 2i+1 (probe); issame[i] says whether they show one identity" }
        let how = o.flip == .none ? "image alone" : o.flip == .sum ? "flip sum" : "flip sum and both views"
        let summary = "\(n) embeddings of dimension \(E) (\(how)\(o.normalize ? ", normalized" : ""), x\(o.factor)) of \(images.summary)"
        return Output(tensors: tensors, metadata: meta, names: images.names, labels: images.labels, issame: images.issame, summary: summary)
    }

    /// Writes `output` to `path` (safetensors, atomically) and, with `npy`, every tensor as
    /// BASE.<tensor>.npy plus BASE.names.npy next to it (BASE = `path` without ".safetensors").
    /// Returns the paths written.
    @discardableResult
    public static func write(_ output: Output, to path: String, npy: Bool) throws -> [String] {
        try SafeTensors.write(output.tensors, metadata: output.metadata, to: path)
        var written = [path]
        guard npy else { return written }
        let base = path.hasSuffix(".safetensors") ? String(path.dropLast(".safetensors".count)) : path
        for t in output.tensors {
            let data: Data
            switch t.name {
            case "labels": data = Npy.int64(output.labels ?? [], shape: t.shape)
            case "issame": data = Npy.bool(output.issame ?? [], shape: t.shape)
            default: data = Npy.float32(t.values, shape: t.shape)
            }
            let p = "\(base).\(t.name).npy"
            try AtomicFile.write(data, to: p)
            written.append(p)
        }
        let p = "\(base).names.npy"
        try AtomicFile.write(Npy.unicode(output.names), to: p)
        written.append(p)
        return written
    }
}

/// How images become network inputs, stored in checkpoints and embedding files so that another
/// framework can reproduce the input: resize kernel to the network input, normalization
/// (x/255 - mean) / std per channel, channel order and layout.
public struct Preprocessing: Codable, Equatable, Sendable {
    /// Kernel that brings a source image to the network input size (data.resize).
    public var resize: String
    public var inputSize: Int
    public var normalization = "(x / 255 - mean) / std"
    public var mean: [Double] = [0.5, 0.5, 0.5]
    public var std: [Double] = [0.5, 0.5, 0.5]
    /// Channel order of the input tensor (images are decoded to RGB; grayscale is repeated).
    public var channels = "RGB"
    public var layout = "NCHW"

    public init(config: RunConfig, inputSize: Int) { resize = config.data.resize.rawValue; self.inputSize = inputSize }

    /// Sorted-key JSON with every number that is a float in PyTorch written with a decimal point.
    public var json: String {
        func list(_ x: [Double]) -> String { "[" + x.map { "\($0)" }.joined(separator: ",") + "]" }
        return "{\"channels\":\"\(channels)\",\"inputSize\":\(inputSize),\"layout\":\"\(layout)\",\"mean\":\(list(mean)),"
            + "\"normalization\":\"\(normalization)\",\"resize\":\"\(resize)\",\"std\":\(list(std))}"
    }
}

/// NumPy's .npy format (version 1.0; 2.0 when the header needs more than 65535 bytes), little-endian.
public enum Npy {
    static func file(descr: String, shape: [Int], body: Data) -> Data {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dims), }"
        // Magic (6) + version (2) + length (2 or 4) + header, padded with spaces to a multiple of 64, ending in "\n".
        let v2 = header.utf8.count + 12 > 65535
        let prefix = v2 ? 12 : 10
        let pad = 64 - (prefix + header.utf8.count + 1) % 64
        header += String(repeating: " ", count: pad % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [v2 ? 2 : 1, 0])
        var len = UInt32(header.utf8.count).littleEndian
        if v2 { withUnsafeBytes(of: &len) { out.append(contentsOf: $0) } }
        else { var l16 = UInt16(header.utf8.count).littleEndian; withUnsafeBytes(of: &l16) { out.append(contentsOf: $0) } }
        out.append(contentsOf: Array(header.utf8))
        out.append(body)
        return out
    }

    /// `<f4` array.
    public static func float32(_ v: [Float], shape: [Int]) -> Data {
        file(descr: "<f4", shape: shape, body: v.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Data($0) })
    }

    /// `<i8` array.
    public static func int64(_ v: [Int], shape: [Int]) -> Data {
        file(descr: "<i8", shape: shape, body: v.map { Int64($0).littleEndian }.withUnsafeBytes { Data($0) })
    }

    /// `|b1` array.
    public static func bool(_ v: [Bool], shape: [Int]) -> Data {
        file(descr: "|b1", shape: shape, body: Data(v.map { $0 ? 1 : 0 }))
    }

    /// `<U{L}` array of strings (UTF-32, L = the longest string in unicode scalars, at least 1): what
    /// `np.array(list_of_str)` makes; `np.load` reads it without pickle.
    public static func unicode(_ s: [String]) -> Data {
        let width = max(1, s.map { $0.unicodeScalars.count }.max() ?? 1)
        var body = [UInt32]()
        body.reserveCapacity(s.count * width)
        for x in s {
            let u = x.unicodeScalars.map(\.value)
            body += u.map(\.littleEndian) + [UInt32](repeating: 0, count: width - u.count)
        }
        return file(descr: "<U\(width)", shape: [s.count], body: body.withUnsafeBytes { Data($0) })
    }
}
