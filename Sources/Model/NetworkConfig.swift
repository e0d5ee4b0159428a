// The architecture of a ResNeXt-CBAM face network, as a value, and its named presets.

/// Which margin-softmax head sits on top of the embedding.
public enum HeadKind: String, Sendable, Codable, CaseIterable {
    case softmax, cosface, arcface
}

/// A ResNeXt-CBAM face-embedding network.
///
/// stem: conv KxK (stride `stemStride`) -> BN -> PReLU; stages: `depths[i]` bottleneck blocks
/// with output channels `widths[i]`, the first with stride `strides[i]`; the bottleneck width of
/// stage i is cardinality * groupWidth * 2^i (ResNeXt's "C x d" rule); CBAM (reduction r,
/// spatial kernel k) on every block's residual branch; embedding head BN2d -> dropout ->
/// flatten -> FC -> BN1d (insightface iresnet's "features" head).
public struct NetworkConfig: Sendable, Codable, Equatable {
    public var inputSize: Int
    public var inputChannels: Int
    public var stemChannels: Int
    public var stemKernel: Int
    public var stemStride: Int
    public var depths: [Int]
    public var widths: [Int]
    public var strides: [Int]
    public var cardinality: Int
    public var groupWidth: Int
    public var cbamReduction: Int
    public var cbamKernel: Int
    public var embeddingSize: Int
    public var dropout: Float

    public init(inputSize: Int, inputChannels: Int = 3, stemChannels: Int, stemKernel: Int = 3, stemStride: Int = 1,
                depths: [Int], widths: [Int], strides: [Int], cardinality: Int, groupWidth: Int,
                cbamReduction: Int, cbamKernel: Int, embeddingSize: Int, dropout: Float = 0) {
        self.inputSize = inputSize; self.inputChannels = inputChannels; self.stemChannels = stemChannels
        self.stemKernel = stemKernel; self.stemStride = stemStride; self.depths = depths; self.widths = widths
        self.strides = strides; self.cardinality = cardinality; self.groupWidth = groupWidth
        self.cbamReduction = cbamReduction; self.cbamKernel = cbamKernel; self.embeddingSize = embeddingSize
        self.dropout = dropout
    }

    /// Bottleneck (grouped conv) width of stage i.
    public func bottleneckWidth(stage i: Int) -> Int { cardinality * groupWidth << i }

    /// Spatial side after the stem and after each stage.
    public var stageSides: [Int] {
        var side = (inputSize + 2 * (stemKernel / 2) - stemKernel) / stemStride + 1
        return strides.map { s in side = (side - 1) / s + 1; return side }
    }

    // MARK: limits
    //
    // A configuration can come from a checkpoint's metadata (untrusted), so every size is bounded
    // before any layer is built: far above the paper's ResNeXt-50 (widths up to 2048, depths up to
    // 6, 112x112 input, 512-d embedding), far below sizes whose buffers cannot be allocated.

    /// Largest input side in pixels.
    public static let maxInputSize = 1024
    /// Largest input channel count (3 for RGB).
    public static let maxInputChannels = 16
    /// Largest channel count of any layer: stem, stage widths, bottleneck widths, embedding.
    public static let maxChannels = 8192
    /// Most stages, and most blocks in one stage.
    public static let maxStages = 8
    public static let maxDepth = 64
    /// Largest stem and CBAM spatial kernel side, and largest stem stride.
    public static let maxKernel = 31
    public static let maxStemStride = 4
    /// Largest activation footprint of one image's forward pass (values, see `activationsPerImage`):
    /// 2^28 values = 1 GiB per image (ResNeXt-50 at 112x112: about 75 million).
    public static let maxActivationsPerImage = 1 << 28

    /// Every problem with the configuration, one line each (empty when valid). Never traps, for
    /// any field values.
    public func problems(prefix: String = "model") -> [String] {
        var p: [String] = []
        func need(_ ok: Bool, _ msg: String) { if !ok { p.append("\(prefix): \(msg)") } }
        let C = Self.maxChannels
        need(inputSize >= 8 && inputSize <= Self.maxInputSize, "inputSize \(inputSize) must be in 8...\(Self.maxInputSize)")
        need(inputChannels >= 1 && inputChannels <= Self.maxInputChannels, "inputChannels \(inputChannels) must be in 1...\(Self.maxInputChannels)")
        need(stemChannels >= 1 && stemChannels <= C, "stemChannels \(stemChannels) must be in 1...\(C)")
        need(stemKernel >= 1 && stemKernel <= Self.maxKernel && stemKernel % 2 == 1, "stemKernel \(stemKernel) must be odd, in 1...\(Self.maxKernel)")
        need(stemStride >= 1 && stemStride <= Self.maxStemStride, "stemStride \(stemStride) must be in 1...\(Self.maxStemStride)")
        need(!depths.isEmpty, "depths must not be empty")
        need(depths.count <= Self.maxStages, "depths has \(depths.count) stages, at most \(Self.maxStages) are supported")
        need(depths.count == widths.count && depths.count == strides.count,
             "depths (\(depths.count)), widths (\(widths.count)) and strides (\(strides.count)) must have the same length")
        need(depths.allSatisfy { $0 >= 1 && $0 <= Self.maxDepth }, "every depth must be in 1...\(Self.maxDepth) (depths \(depths))")
        need(widths.allSatisfy { $0 >= 1 && $0 <= C }, "every width must be in 1...\(C) (widths \(widths))")
        need(strides.allSatisfy { $0 == 1 || $0 == 2 }, "strides must be 1 or 2")
        let groupsOK = cardinality >= 1 && cardinality <= C && groupWidth >= 1 && groupWidth <= C
        need(groupsOK, "cardinality \(cardinality) and groupWidth \(groupWidth) must be in 1...\(C)")
        if groupsOK && widths.count <= Self.maxStages {
            // <= 8192 * 8192 << 7: no overflow.
            for i in widths.indices where bottleneckWidth(stage: i) > C {
                need(false, "stage \(i) bottleneck width cardinality x groupWidth x 2^\(i) = \(bottleneckWidth(stage: i)) exceeds \(C)")
            }
        }
        if cbamReduction >= 1 {
            for (i, w) in widths.enumerated() {
                need(w >= cbamReduction && w % cbamReduction == 0,
                     "widths[\(i)] = \(w) must be a multiple of cbamReduction \(cbamReduction)")
            }
        } else {
            need(false, "cbamReduction \(cbamReduction) must be >= 1")
        }
        need(cbamKernel >= 1 && cbamKernel <= Self.maxKernel && cbamKernel % 2 == 1, "cbamKernel \(cbamKernel) must be odd, in 1...\(Self.maxKernel)")
        need(embeddingSize >= 2 && embeddingSize <= C, "embeddingSize \(embeddingSize) must be in 2...\(C)")
        need(dropout >= 0 && dropout < 1, "dropout \(dropout) must be in [0, 1)")
        if p.isEmpty { need(stageSides.last! >= 1, "input \(inputSize) too small for \(strides.count) stages") }
        if p.isEmpty {
            need(activationsPerImage <= Double(Self.maxActivationsPerImage),
                 "one image's forward pass needs about \(Int(activationsPerImage)) activation values, more than \(Self.maxActivationsPerImage)")
        }
        return p
    }

    /// An upper estimate of the activation values one image's forward pass keeps (every layer's
    /// output; gradients of training double it). Only meaningful when the other checks pass.
    public var activationsPerImage: Double {
        var side = Double((inputSize + 2 * (stemKernel / 2) - stemKernel) / stemStride + 1)
        var a = 3 * Double(stemChannels) * side * side + Double(inputChannels * inputSize * inputSize)
        for (i, (d, cout)) in zip(depths, widths).enumerated() {
            let width = Double(bottleneckWidth(stage: i))
            for b in 0..<d {
                let hin = side
                if b == 0 && strides[i] == 2 { side = ((side - 1) / 2).rounded(.down) + 1 }
                a += 3 * width * hin * hin             // conv1, bn1, relu1
                a += 3 * width * side * side           // conv2, bn2, relu2
                a += 9 * Double(cout) * side * side    // conv3, bn3, CBAM (4 maps), shortcut (2), sum, relu
            }
        }
        return a
    }

    /// Multiply-add FLOPs (2 per MAC) of one forward pass of one image through convolutions and
    /// linear layers (the convention of the reference figures in ../shared/platform.md).
    public var forwardFLOPs: Double {
        var f = 0.0
        var side = (inputSize + 2 * (stemKernel / 2) - stemKernel) / stemStride + 1
        f += 2 * Double(stemChannels * inputChannels * stemKernel * stemKernel * side * side)
        var cin = stemChannels
        for (i, (d, cout)) in zip(depths, widths).enumerated() {
            let width = bottleneckWidth(stage: i)
            for b in 0..<d {
                let s = b == 0 ? strides[i] : 1
                let hin = side
                side = (side - 1) / s + 1
                let hw = Double(side * side)
                f += 2 * Double(cin * width) * Double(hin * hin)                          // conv1 1x1
                f += 2 * Double(width * (width / cardinality) * 9) * hw                   // grouped 3x3
                f += 2 * Double(width * cout) * hw                                        // conv3 1x1
                if s != 1 || cin != cout { f += 2 * Double(cin * cout) * hw }             // projection
                f += 2 * 2 * 2 * Double(cout * (cout / cbamReduction))                    // CBAM MLP x2 inputs
                f += 2 * Double(2 * cbamKernel * cbamKernel) * hw                         // CBAM spatial conv
                cin = cout
            }
        }
        f += 2 * Double(cin * side * side * embeddingSize)                                // FC
        return f
    }

    // MARK: presets

    /// The default student: trains in minutes on 2 cores at 56x56 (0.054 GFLOP/image forward).
    public static let small = NetworkConfig(
        inputSize: 56, stemChannels: 16, depths: [1, 1, 1], widths: [32, 64, 128], strides: [1, 2, 2],
        cardinality: 4, groupWidth: 4, cbamReduction: 8, cbamKernel: 7, embeddingSize: 128, dropout: 0)
    /// The default teacher: the small student's family, one more block per stage (0.085 GFLOP).
    public static let smallTeacher = NetworkConfig(
        inputSize: 56, stemChannels: 16, depths: [2, 2, 2], widths: [32, 64, 128], strides: [1, 2, 2],
        cardinality: 4, groupWidth: 4, cbamReduction: 8, cbamKernel: 7, embeddingSize: 128, dropout: 0)
    /// ResNeXt-50 (32x4d) with CBAM in every block, face stem (3x3 stride 1), 112x112 input,
    /// 512-d embedding: the paper's network.
    public static let resnext50CBAM = NetworkConfig(
        inputSize: 112, stemChannels: 64, depths: [3, 4, 6, 3], widths: [256, 512, 1024, 2048], strides: [2, 2, 2, 2],
        cardinality: 32, groupWidth: 4, cbamReduction: 16, cbamKernel: 7, embeddingSize: 512, dropout: 0.4)

    /// For smoke tests and CI: 32x32 input, two stages (0.005 GFLOP/image).
    public static let tiny = NetworkConfig(
        inputSize: 32, stemChannels: 8, depths: [1, 1], widths: [16, 32], strides: [1, 2],
        cardinality: 4, groupWidth: 2, cbamReduction: 4, cbamKernel: 3, embeddingSize: 32, dropout: 0)
    public static let tinyTeacher = NetworkConfig(
        inputSize: 32, stemChannels: 8, depths: [2, 1], widths: [16, 32], strides: [1, 2],
        cardinality: 4, groupWidth: 2, cbamReduction: 4, cbamKernel: 3, embeddingSize: 32, dropout: 0)

    public static let presets: [String: NetworkConfig] = [
        "small": small, "small-teacher": smallTeacher, "resnext50-cbam": resnext50CBAM,
        "tiny": tiny, "tiny-teacher": tinyTeacher,
    ]
}
