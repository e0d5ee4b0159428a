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

    /// Every problem with the configuration, one line each (empty when valid).
    public func problems(prefix: String = "model") -> [String] {
        var p: [String] = []
        func need(_ ok: Bool, _ msg: String) { if !ok { p.append("\(prefix): \(msg)") } }
        need(inputSize >= 8, "inputSize \(inputSize) must be >= 8")
        need(inputChannels >= 1, "inputChannels must be >= 1")
        need(stemChannels >= 1, "stemChannels must be >= 1")
        need(stemKernel >= 1 && stemKernel % 2 == 1, "stemKernel \(stemKernel) must be odd")
        need(stemStride >= 1, "stemStride must be >= 1")
        need(!depths.isEmpty, "depths must not be empty")
        need(depths.count == widths.count && depths.count == strides.count,
             "depths (\(depths.count)), widths (\(widths.count)) and strides (\(strides.count)) must have the same length")
        need(depths.allSatisfy { $0 >= 1 }, "every depth must be >= 1")
        need(strides.allSatisfy { $0 == 1 || $0 == 2 }, "strides must be 1 or 2")
        need(cardinality >= 1 && groupWidth >= 1, "cardinality and groupWidth must be >= 1")
        for (i, w) in widths.enumerated() {
            need(w >= cbamReduction && w % cbamReduction == 0,
                 "widths[\(i)] = \(w) must be a multiple of cbamReduction \(cbamReduction)")
        }
        need(cbamKernel >= 1 && cbamKernel % 2 == 1, "cbamKernel \(cbamKernel) must be odd")
        need(embeddingSize >= 2, "embeddingSize must be >= 2")
        need(dropout >= 0 && dropout < 1, "dropout \(dropout) must be in [0, 1)")
        if p.isEmpty { need(stageSides.last! >= 1, "input \(inputSize) too small for \(strides.count) stages") }
        return p
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
