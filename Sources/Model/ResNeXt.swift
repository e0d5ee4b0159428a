// ResNeXt bottleneck block with CBAM, and the whole face-embedding network.
//
// Legend: N batch, Ci/Co block input/output channels, Wd bottleneck width (= C x d), s stride.
// Block (activations CNHW):
//   conv1 1x1 Ci->Wd, BN, ReLU; conv2 3x3 Wd->Wd groups=cardinality stride s, BN, ReLU;
//   conv3 1x1 Wd->Co, BN; CBAM(Co) on the residual branch; shortcut = x, or conv 1x1 stride s +
//   BN when the shape changes ("downsample.0/1"); output = ReLU(branch + shortcut).
// Parameter names follow the PyTorch module paths of scripts/make_reference.py
// (stem.conv, layers.<stage>.<block>.conv1, ..., embed.fc, ...), so a state_dict maps 1:1.
import CKernels

/// How a network's tensors get storage (see `FaceNet.plan`).
enum StorageMode {
    /// Every tensor owns its storage.
    case owned
    /// Forward only: values that live inside one block share an arena; ReLUs run in place.
    case inference
    /// Forward and backward: ReLUs run in place; gradients inside a block share an arena.
    case training
}

public final class ResNeXtBlock: Layer {
    public let name: String
    let conv1: Conv2d, bn1: BatchNorm, relu1 = ReLU()
    let conv2: Conv2d, bn2: BatchNorm, relu2 = ReLU()
    let conv3: Conv2d, bn3: BatchNorm
    public let cbam: CBAM
    let downConv: Conv2d?, downBN: BatchNorm?
    let sum = Tensor()
    let relu = ReLU()
    /// The lowest parameter offset of this block (its gradients are final after its backward).
    public let firstParamOffset: Int
    weak var profiler: Profiler?
    public var output: Tensor { relu.output }
    /// All batch-norm layers of the block (for freezing or synchronizing).
    public var batchNorms: [BatchNorm] { [bn1, bn2, bn3] + (downBN.map { [$0] } ?? []) }

    public init(_ store: ParamStore, scratch: Scratch, name: String, inChannels: Int, outChannels: Int,
                width: Int, stride: Int, cardinality: Int, cbamReduction: Int, cbamKernel: Int) {
        self.name = name
        conv1 = Conv2d(store, scratch: scratch, name: name + ".conv1", inChannels: inChannels, outChannels: width, kernel: 1)
        firstParamOffset = conv1.weightOffset
        bn1 = BatchNorm(store, name: name + ".bn1", channels: width)
        conv2 = Conv2d(store, scratch: scratch, name: name + ".conv2", inChannels: width, outChannels: width, kernel: 3,
                       stride: stride, padding: 1, groups: cardinality)
        bn2 = BatchNorm(store, name: name + ".bn2", channels: width)
        conv3 = Conv2d(store, scratch: scratch, name: name + ".conv3", inChannels: width, outChannels: outChannels, kernel: 1)
        bn3 = BatchNorm(store, name: name + ".bn3", channels: outChannels)
        cbam = CBAM(store, scratch: scratch, name: name + ".cbam", channels: outChannels, reduction: cbamReduction,
                    kernel: cbamKernel)
        if stride != 1 || inChannels != outChannels {
            downConv = Conv2d(store, scratch: scratch, name: name + ".downsample.0", inChannels: inChannels,
                              outChannels: outChannels, kernel: 1, stride: stride)
            downBN = BatchNorm(store, name: name + ".downsample.1", channels: outChannels)
        } else { downConv = nil; downBN = nil }
    }

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        var s = conv1.plan(input, needsGrad: needsGrad)
        s = bn1.plan(s, needsGrad: needsGrad); s = relu1.plan(s, needsGrad: needsGrad)
        s = conv2.plan(s, needsGrad: needsGrad); s = bn2.plan(s, needsGrad: needsGrad); s = relu2.plan(s, needsGrad: needsGrad)
        s = conv3.plan(s, needsGrad: needsGrad); s = bn3.plan(s, needsGrad: needsGrad)
        s = cbam.plan(s, needsGrad: needsGrad)
        if let dc = downConv, let db = downBN {
            let d = db.plan(dc.plan(input, needsGrad: needsGrad), needsGrad: needsGrad)
            precondition(d == s, "\(name): shortcut \(d) does not match branch \(s)")
        } else {
            precondition(input == s, "\(name): identity shortcut \(input) does not match branch \(s)")
        }
        sum.plan(s, needsGrad: needsGrad)
        return relu.plan(s, needsGrad: needsGrad)
    }

    // MARK: storage (planned by FaceNet; a block planned on its own owns all its tensors)

    /// The tensors whose values are transient in inference (read only inside this block's forward).
    private var inferenceTransients: [Tensor] {
        [conv1.output, bn1.output, conv2.output, bn2.output, conv3.output, bn3.output, cbam.xs, cbam.output,
         cbam.pooled, sum] + [downConv?.output, downBN?.output].compactMap { $0 }
    }
    /// The tensors whose gradients live only inside this block's backward.
    private var blockGradients: [Tensor] {
        [conv1.output, bn1.output, relu1.output, conv2.output, bn2.output, relu2.output, conv3.output, bn3.output, sum]
            + cbam.internalTensors + [downConv?.output, downBN?.output].compactMap { $0 }
    }

    /// Chooses which tensors borrow storage; call before `plan`. In inference the block's
    /// transient values come from the network's value arena and the ReLUs run in place; in
    /// training the ReLUs run in place (the pre-activation is not needed by backward: batch norm
    /// reads its input, ReLU its output) and every gradient inside the block comes from the
    /// network's gradient arena. `lentOutput`: the block's output storage (values in inference,
    /// gradient in training) is lent too (a ping-pong buffer), else owned.
    func setStorage(_ mode: StorageMode, lentOutput: Bool) {
        outputIsLent = mode != .owned && lentOutput
        for t in inferenceTransients + blockGradients + [relu.output] { t.setLent(value: false, grad: false) }
        switch mode {
        case .owned: break
        case .inference:
            for t in inferenceTransients { t.setLent(value: true, grad: false) }
            relu1.output.setLent(value: true, grad: false); relu2.output.setLent(value: true, grad: false)
            relu.output.setLent(value: lentOutput, grad: false)
        case .training:
            for t in blockGradients { t.setLent(value: false, grad: true) }
            relu1.output.setLent(value: true, grad: true); relu2.output.setLent(value: true, grad: true)
            sum.setLent(value: true, grad: true); cbam.output.setLent(value: true, grad: true)
            relu.output.setLent(value: false, grad: lentOutput)
        }
        bn1.fusesReLU = mode != .owned; bn2.fusesReLU = mode != .owned
        storageMode = mode
    }
    private(set) var storageMode = StorageMode.owned
    /// Whether the output's values (inference) or gradient (training) are a lent ping-pong buffer.
    private(set) var outputIsLent = false
    /// The lent gradient region (training), zeroed at the start of `backward`.
    private var gradRegion: UnsafeMutablePointer<Float>?
    private var gradRegionFloats = 0

    /// Lends arena storage after `plan`: `region` holds this block's transients (reused by every
    /// block), `output` the block's output buffer when it is lent.
    func lendStorage(region: UnsafeMutablePointer<Float>?, output: UnsafeMutablePointer<Float>?) {
        switch storageMode {
        case .owned: return
        case .inference:
            guard let r = region else { return }
            let o = inferenceSlots()
            for (t, k) in [(conv1.output, o.a), (bn1.output, o.b), (relu1.output, o.b), (conv2.output, o.a),
                           (bn2.output, o.b), (relu2.output, o.b), (conv3.output, o.c), (bn3.output, o.d),
                           (cbam.xs, o.c), (cbam.output, o.d), (cbam.pooled, o.g), (sum, o.c)] { t.lendValue(r + k) }
            if let dc = downConv, let db = downBN { dc.output.lendValue(r + o.e); db.output.lendValue(r + o.f) }
            if let out = output { relu.output.lendValue(out) }
        case .training:
            relu1.output.lendValue(bn1.output.value); relu2.output.lendValue(bn2.output.value)
            sum.lendValue(relu.output.value); cbam.output.lendValue(relu.output.value)   // never formed (fused tail)
            guard let r = region else { return }
            var l = ArenaLayout()
            for t in blockGradients { t.lendGrad(r + l.slot(t.shape.count)) }
            gradRegion = r; gradRegionFloats = l.size
            if let o = output { relu.output.lendGrad(o) }
        }
    }

    /// Inference value slots, in floats from the region start: A conv1 / conv2 out; B bn1 = relu1,
    /// bn2 = relu2; C conv3 out, then CBAM's xs; D bn3 out (CBAM's input); E downsample conv;
    /// F downsample BN (the shortcut); G CBAM's pooled maps. The sum and CBAM's output are never
    /// formed (the fused tail writes the block output), so they borrow C and D unwritten.
    private func inferenceSlots() -> (a: Int, b: Int, c: Int, d: Int, e: Int, f: Int, g: Int, size: Int) {
        var l = ArenaLayout()
        let a = l.slot(max(conv1.output.shape.count, conv2.output.shape.count))
        let b = l.slot(max(bn1.output.shape.count, bn2.output.shape.count))
        let co = conv3.output.shape.count
        let c = l.slot(co), d = l.slot(co)
        let e = downConv == nil ? 0 : l.slot(co), f = downConv == nil ? 0 : l.slot(co)
        let g = l.slot(cbam.pooled.shape.count)
        return (a, b, c, d, e, f, g, l.size)
    }

    /// Arena floats for the current plan (see `lendStorage`): the inference value slots or the
    /// training gradient slots.
    func arenaNeed() -> Int {
        switch storageMode {
        case .owned: return 0
        case .inference:
            return inferenceSlots().size
        case .training:
            var l = ArenaLayout()
            for t in blockGradients { _ = l.slot(t.shape.count) }
            return l.size
        }
    }

    public func forward(_ x: Tensor, training: Bool) {
        if storageMode != .owned { return fusedForward(x, training: training) }
        let p = profiler
        p.time(.conv1x1) { conv1.forward(x, training: training) }
        p.time(.batchNorm) { bn1.forward(conv1.output, training: training) }
        p.time(.activation) { relu1.forward(bn1.output, training: training) }
        p.time(.convGrouped) { conv2.forward(relu1.output, training: training) }
        p.time(.batchNorm) { bn2.forward(conv2.output, training: training) }
        p.time(.activation) { relu2.forward(bn2.output, training: training) }
        p.time(.conv1x1) { conv3.forward(relu2.output, training: training) }
        p.time(.batchNorm) { bn3.forward(conv3.output, training: training) }
        p.time(.cbam) { cbam.forward(bn3.output, training: training) }
        var shortcut = x
        if let dc = downConv, let db = downBN {
            p.time(.conv1x1) { dc.forward(x, training: training) }
            p.time(.batchNorm) { db.forward(dc.output, training: training) }
            shortcut = db.output
        }
        p.time(.residual) { kd_add(sum.value, cbam.output.value, shortcut.value, sum.shape.count) }
        if training { sum.zeroGrad() }
        p.time(.activation) { relu.forward(sum, training: training) }
    }

    /// The same computation with shared storage: batch norm and ReLU in one pass (the ReLUs are
    /// in place, so their layers have nothing left to do), the shortcut first, then CBAM with
    /// the residual add and the block ReLU fused into its last pass. Bitwise `forward`'s result.
    private func fusedForward(_ x: Tensor, training: Bool) {
        let p = profiler
        p.time(.conv1x1) { conv1.forward(x, training: training) }
        p.time(.batchNorm) { bn1.forward(conv1.output, training: training) }
        p.time(.convGrouped) { conv2.forward(relu1.output, training: training) }
        p.time(.batchNorm) { bn2.forward(conv2.output, training: training) }
        p.time(.conv1x1) { conv3.forward(relu2.output, training: training) }
        p.time(.batchNorm) { bn3.forward(conv3.output, training: training) }
        var shortcut = x
        if let dc = downConv, let db = downBN {
            p.time(.conv1x1) { dc.forward(x, training: training) }
            p.time(.batchNorm) { db.forward(dc.output, training: training) }
            shortcut = db.output
        }
        p.time(.cbam) { cbam.forward(bn3.output, training: training, addingTo: shortcut, reluInto: relu.output) }
        if training { relu.output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        let p = profiler
        if let r = gradRegion, storageMode == .training { r.update(repeating: 0, count: gradRegionFloats) }
        p.time(.activation) { relu.backward(sum) }
        let n = sum.shape.count
        p.time(.residual) {
            kd_accumulate(cbam.output.grad!, sum.grad!, n)
            if downConv == nil, let dx = x.grad { kd_accumulate(dx, sum.grad!, n) }
        }
        if let dc = downConv, let db = downBN {
            p.time(.residual) { kd_accumulate(db.output.grad!, sum.grad!, n) }
            p.time(.batchNorm) { db.backward(dc.output) }
            p.time(.conv1x1) { dc.backward(x) }
        }
        p.time(.cbam) { cbam.backward(bn3.output) }
        p.time(.batchNorm) { bn3.backward(conv3.output) }
        p.time(.conv1x1) { conv3.backward(relu2.output) }
        p.time(.activation) { relu2.backward(bn2.output) }
        p.time(.batchNorm) { bn2.backward(conv2.output) }
        p.time(.convGrouped) { conv2.backward(relu1.output) }
        p.time(.activation) { relu1.backward(bn1.output) }
        p.time(.batchNorm) { bn1.backward(conv1.output) }
        p.time(.conv1x1) { conv1.backward(x) }
    }
}

/// The ResNeXt-CBAM face-embedding network: input (3, N, H, W) CNHW -> embedding (E, N).
public final class FaceNet {
    public let config: NetworkConfig
    public let store: ParamStore
    let scratch = Scratch()
    let stemConv: Conv2d, stemBN: BatchNorm, stemAct: PReLU
    /// blocks[stage][block]
    public let blocks: [[ResNeXtBlock]]
    /// All blocks in forward order.
    public let allBlocks: [ResNeXtBlock]
    let embedBN: BatchNorm, dropout: Dropout, flatten = Flatten(), fc: Linear, features: BatchNorm
    /// Network input, (C, N, H, W); fill with `input.loadNCHW` after `plan`.
    public let input = Tensor()
    public private(set) var batch = 0
    public private(set) var needsGrad = false
    /// Whether `plan` shares activation storage between tensors whose lifetimes do not overlap
    /// (the default). Inference: everything a block computes and reads only itself comes from
    /// one region reused by every block, block outputs alternate between two buffers (the last
    /// block of each stage keeps its own: attention losses read them); ReLUs run in place.
    /// Training: ReLUs run in place, gradients inside a block come from one region reused by
    /// every block (zeroed as each block's backward starts), block-output gradients alternate
    /// between two buffers except at stage ends (losses add into those before backward).
    /// False gives every tensor its own storage: the reference the sharing is tested against.
    public var sharesStorage = true
    private let valueArena = Arena(), gradArena = Arena()
    private var storageMode = StorageMode.owned
    /// Set to collect per-kind timings (bench only).
    public var profiler: Profiler? { didSet { for b in allBlocks { b.profiler = profiler } } }

    /// Builds the layers and registers every parameter in `store` (in forward order). Call
    /// `store.allocate()` and `store.initialize(seed:)` (or load a checkpoint) afterwards.
    /// - Precondition: `config.problems()` is empty.
    public init(config: NetworkConfig, store: ParamStore) {
        precondition(config.problems().isEmpty, config.problems().joined(separator: "; "))
        self.config = config; self.store = store
        stemConv = Conv2d(store, scratch: scratch, name: "stem.conv", inChannels: config.inputChannels,
                          outChannels: config.stemChannels, kernel: config.stemKernel, stride: config.stemStride,
                          padding: config.stemKernel / 2)
        stemBN = BatchNorm(store, name: "stem.bn", channels: config.stemChannels)
        stemAct = PReLU(store, name: "stem.prelu", channels: config.stemChannels)
        var cin = config.stemChannels
        var stages: [[ResNeXtBlock]] = []
        for (i, (depth, cout)) in zip(config.depths, config.widths).enumerated() {
            var row: [ResNeXtBlock] = []
            for b in 0..<depth {
                row.append(ResNeXtBlock(store, scratch: scratch, name: "layers.\(i).\(b)", inChannels: cin,
                                        outChannels: cout, width: config.bottleneckWidth(stage: i),
                                        stride: b == 0 ? config.strides[i] : 1, cardinality: config.cardinality,
                                        cbamReduction: config.cbamReduction, cbamKernel: config.cbamKernel))
                cin = cout
            }
            stages.append(row)
        }
        blocks = stages
        allBlocks = Array(stages.joined())
        stageOutputs = stages.map { $0.last!.output }
        stageAttention = stages.map { $0.last!.cbam }
        let side = config.stageSides.last!
        embedBN = BatchNorm(store, name: "embed.bn", channels: cin)
        dropout = Dropout(p: config.dropout)
        fc = Linear(store, name: "embed.fc", inFeatures: cin * side * side, outFeatures: config.embeddingSize)
        features = BatchNorm(store, name: "embed.features", channels: config.embeddingSize)
    }

    /// The embedding (E, N, 1, 1) = feature-major (E, N); write dLoss/dEmbedding into its grad.
    public var embedding: Tensor { features.output }
    /// Output of the last block of each stage (for attention transfer).
    public let stageOutputs: [Tensor]
    /// CBAM of the last block of each stage (for attention-map distillation).
    public let stageAttention: [CBAM]
    /// Every batch-norm layer, in forward order.
    public var batchNorms: [BatchNorm] {
        [stemBN] + blocks.joined().flatMap(\.batchNorms) + [embedBN, features]
    }
    public var dropoutLayer: Dropout { dropout }

    /// Sizes every buffer for a batch of `n`; call again only when n or needsGrad changes.
    public func plan(batch n: Int, needsGrad: Bool) {
        let c = config
        let s0 = Shape(n: n, c: c.inputChannels, h: c.inputSize, w: c.inputSize)
        let mode: StorageMode = !sharesStorage ? .owned : needsGrad ? .training : .inference
        for st in blocks { for (j, b) in st.enumerated() { b.setStorage(mode, lentOutput: j < st.count - 1) } }
        for t in [stemConv.output, stemBN.output] { t.setLent(value: mode == .inference, grad: mode == .training) }
        storageMode = mode
        input.plan(s0, needsGrad: false)
        var s = stemConv.plan(s0, needsGrad: needsGrad)
        s = stemBN.plan(s, needsGrad: needsGrad); s = stemAct.plan(s, needsGrad: needsGrad)
        for b in blocks.joined() { s = b.plan(s, needsGrad: needsGrad) }
        s = embedBN.plan(s, needsGrad: needsGrad); s = dropout.plan(s, needsGrad: needsGrad)
        s = flatten.plan(s, needsGrad: needsGrad); s = fc.plan(s, needsGrad: needsGrad)
        _ = features.plan(s, needsGrad: needsGrad)
        batch = n; self.needsGrad = needsGrad
        lendStorage()
    }

    /// Sizes the arena of the current storage mode and lends it (see `sharesStorage`).
    private func lendStorage() {
        guard storageMode != .owned else { return }
        var stem = ArenaLayout()
        let s0 = stem.slot(stemConv.output.shape.count), s1 = stem.slot(stemBN.output.shape.count)
        let region = (allBlocks.map { $0.arenaNeed() } + [stem.size]).max()!
        var pp = ArenaLayout()
        _ = pp.slot(allBlocks.filter(\.outputIsLent).map(\.output.shape.count).max() ?? 0)
        let arena = storageMode == .inference ? valueArena : gradArena
        arena.reserve(region + 2 * pp.size)
        let base = arena.pointer
        for (i, b) in allBlocks.enumerated() {
            b.lendStorage(region: base, output: b.outputIsLent ? base + region + (i % 2) * pp.size : nil)
        }
        if storageMode == .inference {
            stemConv.output.lendValue(base + s0); stemBN.output.lendValue(base + s1)
        } else {
            stemConv.output.lendGrad(base + s0); stemBN.output.lendGrad(base + s1)
        }
        stemRegion = (base, stem.size)
    }
    private var stemRegion: (UnsafeMutablePointer<Float>, Int)?

    public func forward(training: Bool) {
        precondition(batch > 0, "FaceNet.forward before plan")
        let p = profiler
        p.time(.convOther) { stemConv.forward(input, training: training) }
        p.time(.batchNorm) { stemBN.forward(stemConv.output, training: training) }
        p.time(.activation) { stemAct.forward(stemBN.output, training: training) }
        var x = stemAct.output
        for b in allBlocks { b.forward(x, training: training); x = b.output }
        p.time(.head) {
            embedBN.forward(x, training: training)
            dropout.forward(embedBN.output, training: training)
            flatten.forward(dropout.output, training: training)
            fc.forward(flatten.output, training: training)
            features.forward(fc.output, training: training)
        }
    }

    /// Backward from `embedding.grad` (plus any gradients losses added to stage outputs or
    /// attention maps). `ready(offset)` is called whenever the gradients of parameters
    /// [offset, paramCount) are final, from the last block towards the first.
    public func backward(ready: ((Int) -> Void)? = nil) {
        precondition(needsGrad, "FaceNet.backward on a network planned without gradients")
        let p = profiler
        let last = allBlocks.last!.output
        p.time(.head) {
            features.backward(fc.output)
            fc.backward(flatten.output)
            flatten.backward(dropout.output)
            dropout.backward(embedBN.output)
            embedBN.backward(last)
        }
        ready?(embedBN.weightOffset)
        for i in stride(from: allBlocks.count - 1, through: 0, by: -1) {
            let x = i > 0 ? allBlocks[i - 1].output : stemAct.output
            // A lent block-output gradient last held the gradient two blocks up: clear it first.
            if i > 0, allBlocks[i - 1].outputIsLent, let g = x.grad { g.update(repeating: 0, count: x.shape.count) }
            allBlocks[i].backward(x)
            ready?(allBlocks[i].firstParamOffset)
        }
        if storageMode == .training, let (r, n) = stemRegion { r.update(repeating: 0, count: n) }
        p.time(.activation) { stemAct.backward(stemBN.output) }
        p.time(.batchNorm) { stemBN.backward(stemConv.output) }
        p.time(.convOther) { stemConv.backward(input) }
        ready?(0)
    }
}
