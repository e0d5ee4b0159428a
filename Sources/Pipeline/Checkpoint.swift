// Checkpoints: one safetensors file per checkpoint, readable by the Python `safetensors` package
// and PyTorch. Tensor names are the model's parameter and buffer names (a state_dict), plus
// "optimizer.momentum.<name>" for SGD momentum; the metadata holds the training position.
import Foundation
import Model
import KDCore

/// A checkpoint problem, one line naming the file.
public struct CheckpointError: Error, CustomStringConvertible {
    public let path: String, reason: String
    public init(_ path: String, _ reason: String) { self.path = path; self.reason = reason }
    public var description: String { "checkpoint \(path): \(reason)" }
}

/// Where training stands, stored in a checkpoint's metadata.
public struct TrainingPosition: Sendable, Equatable, Codable {
    /// Largest step (and epoch) a checkpoint may claim: 2^40, far beyond any schedule, far from
    /// overflowing the step arithmetic.
    public static let maxStep = 1 << 40
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

    /// Problems of a position read from a checkpoint, one line each naming the field.
    public func problems() -> [String] {
        var p: [String] = []
        func need(_ ok: Bool, _ m: String) { if !ok { p.append("metadata 'position': " + m) } }
        need(step >= 0 && step <= Self.maxStep, "step \(step) must be in 0...\(Self.maxStep)")
        need(epoch >= 0 && epoch <= step, "epoch \(epoch) must be in 0...step (\(step))")
        need(stepInEpoch >= 0 && stepInEpoch <= step, "stepInEpoch \(stepInEpoch) must be in 0...step (\(step))")
        need(skippedSteps >= 0 && skippedSteps <= step, "skippedSteps \(skippedSteps) must be in 0...step (\(step))")
        return p
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
    /// Most classes a model may have (the classifier is classes x embedding).
    public static let maxClasses = 10_000_000

    /// Problems of an identity read from a checkpoint, one line each naming the field: the network
    /// within `NetworkConfig`'s limits, classes within 2...maxClasses.
    public func problems() -> [String] {
        var p = network.problems(prefix: "metadata 'model' network")
        if classes < 2 || classes > Self.maxClasses {
            p.append("metadata 'model': classes \(classes) must be in 2...\(Self.maxClasses)")
        }
        return p
    }

    /// 16 hex digits of FNV-1a over the canonical JSON (`json`, unchanged since the first checkpoints,
    /// so a model keeps its hash across kdtrain versions).
    public var hash: String { String(format: "%016llx", fnv1a64(json)) }

    /// The JSON stored as the checkpoint's `model` metadata: sorted keys, and every field that is a
    /// float in PyTorch (dropout) written as a float (`0.0`, not `0`), so that a Python loader that
    /// builds the network from it gets the types PyTorch uses. Reads back to the same identity;
    /// checkpoints written with `json` (integer-looking floats) still read.
    public var metadataJSON: String {
        let tree = try! JSONSerialization.jsonObject(with: Data(json.utf8))
        return renderJSON(tree, shape: Checkpoint.identityShape)
    }
}

/// Sorted-key compact JSON of a parsed JSON tree, writing the numbers that `shape` says are floats
/// with a decimal point or exponent (Swift's shortest float32 form, which reads back exactly).
func renderJSON(_ v: Any, shape: JSONShape) -> String {
    if JSONShape.isBool(v) { return (v as! NSNumber).boolValue ? "true" : "false" }
    if v is NSNull { return "null" }
    var inner = shape
    if case .optional(let e) = shape { inner = e }
    if let n = v as? NSNumber {
        if case .float = inner { return "\(Float(n.doubleValue))" }
        return (v as? Int).map(String.init) ?? "\(n)"
    }
    if let s = v as? String {
        return String(decoding: try! JSONSerialization.data(withJSONObject: s, options: [.fragmentsAllowed, .withoutEscapingSlashes]), as: UTF8.self)
    }
    if let a = v as? [Any] {
        let e: JSONShape
        if case .array(let x) = inner { e = x } else { e = .any }
        return "[" + a.map { renderJSON($0, shape: e) }.joined(separator: ",") + "]"
    }
    if let d = v as? [String: Any] {
        var fields: [String: JSONShape] = [:]
        if case .object(let f) = inner { fields = f }
        return "{" + d.keys.sorted().map { k in renderJSON(k, shape: .string) + ":" + renderJSON(d[k]!, shape: fields[k] ?? .any) }
            .joined(separator: ",") + "}"
    }
    return "\(v)"
}

/// A one-line reason, thrown by helpers that do not know the file.
struct MetadataProblem: Error { let reason: String; init(_ r: String) { reason = r } }

/// The JSON form of a Codable value with synthesized coding keys, read from a sample value with
/// Mirror (property names are the keys). Checking a JSON tree against it before `JSONDecoder`
/// runs gives one line naming the field and the expected type for every mistake (Foundation's
/// decoder on Linux reports a number that does not fit its field, e.g. 16.5 or 1e30 for an
/// integer, as "The given data was not valid JSON." without the field).
indirect enum JSONShape: Sendable {
    case int, uint64, float, bool, string, any
    /// A `ConfigChoice`: one of these strings.
    case choice([String])
    case array(JSONShape), optional(JSONShape), object([String: JSONShape])

    init(sample: Any) {
        let m = Mirror(reflecting: sample)
        if let c = sample as? any ConfigChoice {
            self = .choice(type(of: c).allowedValues)
        } else if let r = sample as? any JSONShapeProviding {
            self = type(of: r).jsonShape
        } else if m.displayStyle == .struct {
            var fields: [String: JSONShape] = [:]
            for c in m.children { if let l = c.label { fields[l] = JSONShape(sample: c.value) } }
            self = .object(fields)
        } else {
            self = JSONShape(typeName: "\(type(of: sample))")
        }
    }

    init(typeName t: String) {
        func inner(_ prefix: String) -> String? {
            t.hasPrefix(prefix + "<") && t.hasSuffix(">") ? String(t.dropFirst(prefix.count + 1).dropLast()) : nil
        }
        switch t {
        case "Int": self = .int
        case "UInt64": self = .uint64
        case "Float", "Double": self = .float
        case "Bool": self = .bool
        case "String": self = .string
        default:
            if let e = inner("Array") { self = .array(JSONShape(typeName: e)) }
            else if let e = inner("Optional") { self = .optional(JSONShape(typeName: e)) }
            else { self = .any }
        }
    }

    var expected: String {
        switch self {
        case .int: return "an integer"
        case .uint64: return "a non-negative integer"
        case .float: return "a number"
        case .bool: return "true or false"
        case .string: return "a string"
        case .choice(let allowed): return "one of " + allowed.joined(separator: ", ")
        case .any: return "a value"
        case .array(let e): return "an array of \(e.plural)"
        case .optional(let e): return "\(e.expected) or null"
        case .object: return "an object"
        }
    }

    var plural: String {
        switch self {
        case .int: return "integers"
        case .uint64: return "non-negative integers"
        case .float: return "numbers"
        case .bool: return "booleans"
        case .string: return "strings"
        default: return "values"
        }
    }

    static func isBool(_ v: Any) -> Bool { (v as? NSNumber).map { String(cString: $0.objCType) == "c" } ?? false }

    /// A short rendering of a JSON value for messages.
    static func show(_ v: Any) -> String {
        if isBool(v) { return (v as! NSNumber).boolValue ? "true" : "false" }
        if let n = v as? NSNumber { return "\(n)" }
        if let s = v as? String { return "'\(s.count > 40 ? String(s.prefix(40)) + "..." : s)'" }
        if v is NSNull { return "null" }
        if v is [Any] { return "an array" }
        if v is [String: Any] { return "an object" }
        return "\(v)"
    }

    /// The first mistake in `v`, as "path: expected ..., got ...", or nil. Keys the shape does not
    /// know are not checked here (the caller decides about them).
    func problem(_ v: Any, path: String) -> String? {
        func bad() -> String { "\(path.isEmpty ? "value" : path): expected \(expected), got \(Self.show(v))" }
        switch self {
        case .any: return nil
        case .int: return !Self.isBool(v) && v is NSNumber && (v as? Int) != nil ? nil : bad()
        case .uint64: return !Self.isBool(v) && v is NSNumber && (v as? UInt64) != nil ? nil : bad()
        case .float:
            guard !Self.isBool(v), let n = v as? NSNumber else { return bad() }
            let d = n.doubleValue
            return d.isFinite && abs(d) <= Double(Float.greatestFiniteMagnitude) ? nil : bad()
        case .bool: return Self.isBool(v) ? nil : bad()
        case .string: return v is String ? nil : bad()
        case .choice(let allowed):
            guard let s = v as? String else { return bad() }
            return allowed.contains(s) ? nil : "\(path.isEmpty ? "value" : path): " + choiceReason(s, allowed: allowed)
        case .optional(let e): return v is NSNull ? nil : e.problem(v, path: path)
        case .array(let e):
            guard let a = v as? [Any] else { return bad() }
            for (i, x) in a.enumerated() { if let p = e.problem(x, path: "\(path)[\(i)]") { return p } }
            return nil
        case .object(let fields):
            guard let d = v as? [String: Any] else { return bad() }
            for (k, x) in d.sorted(by: { $0.key < $1.key }) {
                if let f = fields[k], let p = f.problem(x, path: path.isEmpty ? k : path + "." + k) { return p }
            }
            return nil
        }
    }
}

/// One line for a decoding error: the coding path and what was expected.
func describeDecodingError(_ e: DecodingError) -> String {
    func path(_ c: DecodingError.Context) -> String {
        let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            .replacingOccurrences(of: ".[", with: "[")
        return p.isEmpty ? "" : p + ": "
    }
    switch e {
    case .typeMismatch(let t, let c): return "\(path(c))expected \(typeName(t))"
    case .valueNotFound(let t, let c): return "\(path(c))expected \(typeName(t)), got null"
    case .keyNotFound(let k, let c): return "\(path(c))missing field '\(k.stringValue)'"
    case .dataCorrupted(let c): return "\(path(c))\(c.debugDescription)"
    @unknown default: return "\(e)"
    }
}

/// "an integer", "a number", ... for the types a configuration or metadata holds.
func typeName(_ t: Any.Type) -> String {
    switch t {
    case is Int.Type: return "an integer"
    case is UInt64.Type: return "a non-negative integer"
    case is Float.Type, is Double.Type: return "a number"
    case is Bool.Type: return "true or false"
    case is String.Type: return "a string"
    default:
        let n = "\(t)"
        if n.hasPrefix("Array<") || n.hasPrefix("[") { return "an array" }
        if n.hasPrefix("Dictionary<") { return "an object" }
        return n
    }
}

public enum Checkpoint {
    public static let format = "kdtrain-checkpoint-1"
    static let momentumPrefix = "optimizer.momentum."
    static let identityShape = JSONShape(sample: ModelIdentity(network: .tiny, classes: 2, head: ""))
    static let positionShape = JSONShape(sample: TrainingPosition())

    /// Writes `store` (parameters, buffers and, when present and `momentum` is true, momentum)
    /// atomically to `path`. Checkpoints that training resumes from keep momentum; an averaged
    /// model has none worth keeping (its optimizer state would be all zeros), so it passes false.
    public static func save(_ store: ParamStore, identity: ModelIdentity, position: TrainingPosition,
                            extra: [String: String] = [:], momentum: Bool = true, to path: String) throws {
        var tensors: [NamedTensor] = []
        tensors.reserveCapacity(store.entries.count * 2)
        for e in store.entries {
            tensors.append(NamedTensor(name: e.name, shape: e.shape,
                                       values: Array(UnsafeBufferPointer(start: store.pointer(e), count: e.count))))
        }
        if momentum && store.hasGradients {
            for e in store.entries where e.region == .param {
                tensors.append(NamedTensor(name: momentumPrefix + e.name, shape: e.shape,
                                           values: Array(UnsafeBufferPointer(start: store.momentum + e.offset, count: e.count))))
            }
        }
        var meta = extra
        meta["format"] = format
        meta["kdtrain_version"] = kdtrainVersion
        meta["model"] = identity.metadataJSON
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
        /// The preprocessing the model was trained with (metadata 'preprocessing'); nil for checkpoints
        /// written before it was recorded.
        public var preprocessing: Preprocessing? {
            guard let s = metadata["preprocessing"] else { return nil }
            return try? JSONDecoder().decode(Preprocessing.self, from: Data(s.utf8))
        }
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
        let identity: ModelIdentity
        do { identity = try decodeMetadata(ModelIdentity.self, m["model"], key: "model", shape: identityShape) }
        catch let e as MetadataProblem { throw CheckpointError(path, e.reason) }
        let position: TrainingPosition
        do { position = try decodeMetadata(TrainingPosition.self, m["position"], key: "position", shape: positionShape) }
        catch let e as MetadataProblem { throw CheckpointError(path, e.reason) }
        // Everything below is about untrusted numbers: checked before a network is built from them.
        if let problem = identity.problems().first { throw CheckpointError(path, problem) }
        if let problem = position.problems().first { throw CheckpointError(path, problem) }
        let tensors = Dictionary(parsed.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        try checkStructure(identity, tensors: tensors, path: path)
        return Contents(path: path, tensors: tensors, metadata: m, identity: identity, position: position)
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
                    if c.metadata["averaged_from"] != nil {
                        throw CheckpointError(c.path, "is an averaged model without optimizer state; training cannot resume from it (resume from a step-*.safetensors checkpoint, or start from it with student.checkpoint)")
                    }
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

    /// Decodes a JSON metadata value; throws a one-line reason naming the key and field.
    static func decodeMetadata<T: Decodable>(_ type: T.Type, _ json: String?, key: String, shape: JSONShape) throws -> T {
        guard let json else { throw MetadataProblem("metadata '\(key)' is missing") }
        guard let tree = try? JSONSerialization.jsonObject(with: Data(json.utf8)) else {
            throw MetadataProblem("metadata '\(key)' is not valid JSON")
        }
        if let p = shape.problem(tree, path: "") { throw MetadataProblem("metadata '\(key)' is malformed: \(p)") }
        do { return try JSONDecoder().decode(T.self, from: Data(json.utf8)) }
        catch let e as DecodingError { throw MetadataProblem("metadata '\(key)' is malformed: \(describeDecodingError(e))") }
        catch { throw MetadataProblem("metadata '\(key)' is malformed: \(error)") }
    }

    /// Every tensor the network of `identity` needs must be in the file with its shape. Builds the
    /// layer table only (nothing is allocated), so a model in the metadata that the file's tensors
    /// do not back is refused before its parameters would be allocated.
    static func checkStructure(_ identity: ModelIdentity, tensors: [String: NamedTensor], path: String) throws {
        let store = ParamStore()
        _ = FaceNet(config: identity.network, store: store)
        _ = MarginHead(store, name: "classifier", embeddingSize: identity.network.embeddingSize,
                       classes: identity.classes, kind: .softmax)
        for e in store.entries {
            guard let t = tensors[e.name] else {
                throw CheckpointError(path, "missing tensor \(e.name) (the model in its metadata needs it)")
            }
            guard t.shape == e.shape else {
                throw CheckpointError(path, "tensor \(e.name) has shape \(t.shape), the model in its metadata needs \(e.shape)")
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

    /// The step in a checkpoint file name (`step-00000150.safetensors` -> 150), or nil.
    public static func step(ofFile path: String) -> Int? {
        let name = URL(fileURLWithPath: path).lastPathComponent
        guard name.hasPrefix("step-"), name.hasSuffix(".safetensors") else { return nil }
        return Int(name.dropFirst(5).dropLast(12))
    }

    /// Which of a phase's checkpoints (ascending steps, the newest last) to delete after writing the
    /// newest: a checkpoint off the `every` grid (written by a stop signal) is only needed to resume
    /// until a later one exists, so it goes first; then all but the last `keep`. An interrupted and
    /// resumed phase so keeps, and averages, exactly the checkpoints of an uninterrupted one.
    public static func toDelete(steps: [Int], every: Int, keep: Int) -> [Int] {
        guard !steps.isEmpty else { return [] }
        let offGrid = steps.dropLast().filter { every <= 0 || $0 % every != 0 }
        let rest = steps.filter { !offGrid.contains($0) }
        return offGrid + rest.dropLast(max(1, keep))
    }

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
