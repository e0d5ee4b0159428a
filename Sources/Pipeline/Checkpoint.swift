// Checkpoints: one safetensors file per checkpoint, readable by the Python `safetensors` package
// and PyTorch. Tensor names are the model's parameter and buffer names (a state_dict), plus
// "optimizer.momentum.<name>" for SGD momentum; the metadata holds the training position.
import Foundation
import Model

/// A checkpoint problem, one line naming the file.
public struct CheckpointError: Error, CustomStringConvertible {
    public let path: String, reason: String
    public init(_ path: String, _ reason: String) { self.path = path; self.reason = reason }
    public var description: String { "checkpoint \(path): \(reason)" }
}

/// Where training stands, stored in a checkpoint's metadata.
public struct TrainingPosition: Sendable, Equatable, Codable {
    /// Optimizer steps completed.
    public var step: Int
    /// Epoch of the next step, and steps of that epoch already done (the sampler position).
    public var epoch: Int
    public var stepInEpoch: Int
    /// Steps skipped for non-finite loss or gradients so far.
    public var skippedSteps: Int
    public init(step: Int = 0, epoch: Int = 0, stepInEpoch: Int = 0, skippedSteps: Int = 0) {
        self.step = step; self.epoch = epoch; self.stepInEpoch = stepInEpoch; self.skippedSteps = skippedSteps
    }
}

/// Identity of a model for compatibility checks: architecture, classes and head.
public struct ModelIdentity: Sendable, Equatable, Codable {
    public var network: NetworkConfig
    public var classes: Int
    public var head: String
    public init(network: NetworkConfig, classes: Int, head: String) {
        self.network = network; self.classes = classes; self.head = head
    }
    /// Canonical JSON (sorted keys).
    public var json: String {
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        return String(decoding: try! enc.encode(self), as: UTF8.self)
    }
    /// 16 hex digits of FNV-1a over the canonical JSON.
    public var hash: String { String(format: "%016llx", fnv1a64(json)) }
}

public enum Checkpoint {
    public static let format = "kdtrain-checkpoint-1"
    static let momentumPrefix = "optimizer.momentum."

    /// Writes `store` (parameters, buffers and, when present, momentum) atomically to `path`.
    public static func save(_ store: ParamStore, identity: ModelIdentity, position: TrainingPosition,
                            extra: [String: String] = [:], to path: String) throws {
        var tensors: [NamedTensor] = []
        tensors.reserveCapacity(store.entries.count * 2)
        for e in store.entries {
            tensors.append(NamedTensor(name: e.name, shape: e.shape,
                                       values: Array(UnsafeBufferPointer(start: store.pointer(e), count: e.count))))
        }
        if store.hasGradients {
            for e in store.entries where e.region == .param {
                tensors.append(NamedTensor(name: momentumPrefix + e.name, shape: e.shape,
                                           values: Array(UnsafeBufferPointer(start: store.momentum + e.offset, count: e.count))))
            }
        }
        var meta = extra
        meta["format"] = format
        meta["kdtrain_version"] = kdtrainVersion
        meta["model"] = identity.json
        meta["model_hash"] = identity.hash
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        meta["position"] = String(decoding: try enc.encode(position), as: UTF8.self)
        meta["step"] = String(position.step)
        do { try SafeTensors.write(tensors, metadata: meta, to: path) }
        catch let e as SafeTensorsError { throw CheckpointError(path, e.reason) }
    }

    /// A parsed checkpoint.
    public struct Contents {
        public var path: String
        public var tensors: [String: NamedTensor]
        public var metadata: [String: String]
        public var identity: ModelIdentity
        public var position: TrainingPosition
    }

    /// Reads and validates the header and metadata of a checkpoint.
    public static func read(_ path: String) throws -> Contents {
        guard FileManager.default.fileExists(atPath: path) else { throw CheckpointError(path, "no such file") }
        let parsed: (tensors: [NamedTensor], metadata: [String: String])
        do { parsed = try SafeTensors.read(path: path) }
        catch let e as SafeTensorsError { throw CheckpointError(path, e.reason) }
        let m = parsed.metadata
        guard m["format"] == format else {
            throw CheckpointError(path, "not a kdtrain checkpoint (metadata format is \(m["format"].map { "'\($0)'" } ?? "missing"))")
        }
        guard let mj = m["model"], let identity = try? JSONDecoder().decode(ModelIdentity.self, from: Data(mj.utf8)) else {
            throw CheckpointError(path, "metadata 'model' is missing or malformed")
        }
        guard let pj = m["position"], let position = try? JSONDecoder().decode(TrainingPosition.self, from: Data(pj.utf8)) else {
            throw CheckpointError(path, "metadata 'position' is missing or malformed")
        }
        return Contents(path: path, tensors: Dictionary(parsed.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }),
                        metadata: m, identity: identity, position: position)
    }

    /// Copies a checkpoint into `store`. Every parameter and buffer must be present with the
    /// right shape; momentum is loaded when `momentum` is true and the store has it.
    /// - Throws: `CheckpointError` naming the file and the first problem; the store is unchanged then.
    public static func load(_ c: Contents, into store: ParamStore, identity: ModelIdentity,
                            momentum: Bool) throws {
        guard c.identity == identity else {
            throw CheckpointError(c.path, "holds model \(c.identity.hash) (\(describe(c.identity))), this run needs \(identity.hash) (\(describe(identity)))")
        }
        // Validate everything before touching the store.
        for e in store.entries {
            guard let t = c.tensors[e.name] else { throw CheckpointError(c.path, "missing tensor \(e.name)") }
            guard t.shape == e.shape else { throw CheckpointError(c.path, "tensor \(e.name) has shape \(t.shape), expected \(e.shape)") }
            if momentum && store.hasGradients && e.region == .param {
                guard let mt = c.tensors[momentumPrefix + e.name] else {
                    throw CheckpointError(c.path, "missing optimizer state \(momentumPrefix + e.name)")
                }
                guard mt.shape == e.shape else { throw CheckpointError(c.path, "tensor \(momentumPrefix + e.name) has shape \(mt.shape), expected \(e.shape)") }
            }
        }
        for e in store.entries {
            c.tensors[e.name]!.values.withUnsafeBufferPointer { store.pointer(e).update(from: $0.baseAddress!, count: e.count) }
            if momentum && store.hasGradients && e.region == .param {
                c.tensors[momentumPrefix + e.name]!.values.withUnsafeBufferPointer {
                    (store.momentum + e.offset).update(from: $0.baseAddress!, count: e.count)
                }
            }
        }
    }

    static func describe(_ i: ModelIdentity) -> String {
        let n = i.network
        return "input \(n.inputSize), depths \(n.depths), widths \(n.widths), C\(n.cardinality)x\(n.groupWidth)d, embedding \(n.embeddingSize), \(i.classes) classes, \(i.head)"
    }

    /// Checkpoint files `step-<8 digits>.safetensors` in `dir`, oldest first.
    public static func list(in dir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") }.sorted().map { dir + "/" + $0 }
    }

    public static func fileName(step: Int) -> String { String(format: "step-%08d.safetensors", step) }

    /// Averages the parameters (not buffers, not momentum) of several checkpoints of the same
    /// model into `store`; buffers are taken from the last one (re-estimate them afterwards).
    /// - Throws: when a checkpoint holds another model, unless `force`.
    public static func average(_ paths: [String], into store: ParamStore, identity: ModelIdentity, force: Bool) throws {
        guard !paths.isEmpty else { throw CheckpointError("(none)", "no checkpoints to average") }
        let contents = try paths.map { try read($0) }
        for c in contents where c.identity != identity && !force {
            throw CheckpointError(c.path, "holds model \(c.identity.hash), not \(identity.hash) like the others (use --force to average anyway)")
        }
        let runs = Set(contents.map { $0.metadata["run_id"] ?? "" })
        if runs.count > 1 && !force {
            let odd = contents.first { ($0.metadata["run_id"] ?? "") != (contents[0].metadata["run_id"] ?? "") }!
            throw CheckpointError(odd.path, "comes from run '\(odd.metadata["run_id"] ?? "")', \(contents[0].path) from run '\(contents[0].metadata["run_id"] ?? "")' (use --force to average checkpoints of different runs)")
        }
        var sums = [Double](repeating: 0, count: store.paramCount)
        for c in contents {
            for e in store.entries where e.region == .param {
                guard let t = c.tensors[e.name], t.shape == e.shape else {
                    throw CheckpointError(c.path, "missing or mis-shaped tensor \(e.name)")
                }
                for i in 0..<e.count { sums[e.offset + i] += Double(t.values[i]) }
            }
        }
        let last = contents.last!
        for e in store.entries where e.region == .buffer {
            guard let t = last.tensors[e.name], t.shape == e.shape else { throw CheckpointError(last.path, "missing tensor \(e.name)") }
            t.values.withUnsafeBufferPointer { store.pointer(e).update(from: $0.baseAddress!, count: e.count) }
        }
        let inv = 1 / Double(contents.count)
        for i in 0..<store.paramCount { store.params[i] = Float(sums[i] * inv) }
    }
}
