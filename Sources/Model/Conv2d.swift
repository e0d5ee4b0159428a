// 2-d convolution (grouped, strided, padded, optional bias) by im2col + OpenBLAS sgemm, or by
// a direct kernel for convolutions with few channels per group.
//
// Legend: N batch, Ci/Co input/output channels, G groups, Cig = Ci/G, Cog = Co/G, K kernel,
// H x W input, Ho x Wo output, L = N*Ho*Wo.
// Activations are CNHW, so group g's input channels (Cig, N, H, W) and output channels
// (Cog, N, Ho, Wo) are contiguous and each group is ONE gemm over the whole batch:
//   y_g (Cog, L) = W_g (Cog, Cig*K*K) x col_g (Cig*K*K, L)
// A 1x1 stride-1 unpadded convolution skips im2col: col_g is x_g itself.
//
// Direct path (kd_conv_direct_*, conv_direct.c): no column matrix; the input is copied once into
// a zero-padded buffer and each output row tile is accumulated in registers over all taps.
// It pays off where the gemm is tiny: CBAM's 2->1 7x7 conv (a GEMV over a (98, L) column
// matrix) and grouped 3x3 convs with group width 4 or 8 (M = Cog = 4, K = 36). See
// `ConvAlgorithm` for the selection rule and the measurements behind it.
import CKernels

/// How a `Conv2d` computes. `.auto` picks per shape (see `Conv2d.directIsFaster`).
public enum ConvAlgorithm: Sendable {
    case auto
    /// im2col + one sgemm per group (1x1 stride-1 unpadded: sgemm on the input itself).
    case im2col
    /// Direct kernel; requires `Conv2d.directSupported` (kernel <= 7, stride 1 or 2, padding < kernel).
    case direct
}

public final class Conv2d: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    public let groups: Int
    public let store: ParamStore
    public let weightName: String
    /// Offsets into store.params: weight (Co, Cig, K, K) as in PyTorch; bias (Co) or nil.
    public let weightOffset: Int
    public let biasOffset: Int?
    public let output = Tensor()
    private let scratch: Scratch
    private var inShape = Shape(n: 0, c: 0, h: 0, w: 0)
    /// The requested algorithm; takes effect at the next `plan`.
    public var algorithm: ConvAlgorithm = .auto
    /// The path `plan` chose (true: direct kernel).
    public private(set) var usesDirect = false

    /// Registers `name.weight` (and `name.bias`) in `store`. Weights are Kaiming-normal over
    /// fan-out (as torchvision's ResNet/ResNeXt), biases zero.
    public init(_ store: ParamStore, scratch: Scratch, name: String, inChannels: Int, outChannels: Int,
                kernel: Int, stride: Int = 1, padding: Int = 0, groups: Int = 1, bias: Bool = false) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0,
                     "\(name): channels \(inChannels)->\(outChannels) not divisible by groups \(groups)")
        precondition(kernel >= 1 && stride >= 1 && padding >= 0)
        self.inChannels = inChannels; self.outChannels = outChannels; self.kernel = kernel
        self.stride = stride; self.padding = padding; self.groups = groups
        self.store = store; self.scratch = scratch
        weightName = name + ".weight"
        let fanOut = Float(outChannels / groups * kernel * kernel)
        weightOffset = store.register(weightName, shape: [outChannels, inChannels / groups, kernel, kernel],
                                      initializer: .normal(std: (2 / fanOut).squareRoot()))
        biasOffset = bias ? store.register(name + ".bias", shape: [outChannels],
                                           initializer: .constant(0), decay: false) : nil
    }

    private var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

    /// Whether the direct kernel handles this convolution's geometry.
    public var directSupported: Bool { kernel <= 7 && (stride == 1 || stride == 2) && padding < kernel }

    /// The `.auto` rule: the direct kernel when it handles the geometry, the convolution is not
    /// pointwise (that one is a plain sgemm on the input, no im2col), and a group is small:
    /// Cig * Cog <= 64 (group width <= 8 when Cig = Cog; CBAM's 2 -> 1; a 3 -> 16 stem).
    /// Measured with ConvDirectTests/testLayerBenchmark (OpenBLAS Haswell kernels, 1 thread,
    /// machine shared with other builds, best of 5, ms forward / backward, im2col -> direct):
    ///   CBAM 2->1 7x7, 64x56x56          22.6 / 61.0  ->  1.9 / 2.1
    ///   3x3 group width 4, 64x56x56       36.1 / 94.9  -> 10.7 / 23.6
    ///   3x3 width 4 stride 2, 64x56x56    41.8 / 91.6  -> 10.5 / 47.7
    ///   3x3 width 8, 4x28x28 (r50)        11.7 / 25.2  ->  3.0 / 10.1
    ///   3x3 width 16, 4x14x14 (r50)        4.1 /  9.0  ->  3.7 /  7.2  (about even: im2col kept)
    ///   3x3 width 32, 4x7x7 (r50)          3.8 /  7.7  ->  3.6 /  9.7  (direct loses backward)
    /// Above 64 the gemm's M and K are large enough for OpenBLAS to run near its peak.
    public var directIsFaster: Bool {
        directSupported && !isPointwise && (inChannels / groups) * (outChannels / groups) <= 64
    }

    public func outputShape(_ s: Shape) -> Shape {
        Shape(n: s.n, c: outChannels, h: (s.h + 2 * padding - kernel) / stride + 1,
              w: (s.w + 2 * padding - kernel) / stride + 1)
    }

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        precondition(input.c == inChannels, "conv \(weightName): input has \(input.c) channels, expected \(inChannels)")
        precondition(input.h + 2 * padding >= kernel && input.w + 2 * padding >= kernel,
                     "conv \(weightName): input \(input.h)x\(input.w) smaller than kernel \(kernel)")
        inShape = input
        let out = outputShape(input)
        output.plan(out, needsGrad: needsGrad)
        switch algorithm {
        case .auto: usesDirect = directIsFaster
        case .im2col: usesDirect = false
        case .direct:
            precondition(directSupported, "conv \(weightName): direct algorithm needs kernel <= 7, stride 1 or 2, "
                         + "padding < kernel (have kernel \(kernel), stride \(stride), padding \(padding))")
            usesDirect = true
        }
        if usesDirect {
            scratch.reserve(kd_conv_direct_scratch(Int32(inChannels), Int32(outChannels), Int32(groups), Int32(input.n),
                                                   Int32(input.h), Int32(input.w), Int32(kernel), Int32(stride),
                                                   Int32(padding), Int32(out.h), Int32(out.w)))
        } else if !isPointwise {
            scratch.reserve(inChannels * kernel * kernel * out.n * out.h * out.w)
        }
        return out
    }

    public func forward(_ x: Tensor, training: Bool) {
        let s = x.shape, o = output.shape
        precondition(s == inShape, "conv \(weightName): forward on \(s) but planned for \(inShape)")
        let L = o.n * o.h * o.w, kk = kernel * kernel
        let cig = inChannels / groups, cog = outChannels / groups
        let w = store.params + weightOffset
        if usesDirect {
            kd_conv_direct_forward(x.value, w, output.value, scratch.pointer, Int32(inChannels), Int32(outChannels),
                                   Int32(groups), Int32(s.n), Int32(s.h), Int32(s.w), Int32(kernel), Int32(stride),
                                   Int32(padding), Int32(o.h), Int32(o.w))
        } else {
            let col: UnsafeMutablePointer<Float>
            if isPointwise { col = x.value } else {
                col = scratch.pointer
                kd_im2col(x.value, col, Int32(s.c), Int32(s.n), Int32(s.h), Int32(s.w), Int32(kernel),
                          Int32(stride), Int32(padding), Int32(o.h), Int32(o.w))
            }
            for g in 0..<groups {
                kd_sgemm(0, 0, Int32(cog), Int32(L), Int32(cig * kk),
                            1, w + g * cog * cig * kk, Int32(cig * kk), col + g * cig * kk * L, Int32(L),
                            0, output.value + g * cog * L, Int32(L))
            }
        }
        if let bo = biasOffset {
            let b = store.params + bo
            for c in 0..<outChannels {
                let row = output.value + c * L, bc = b[c]
                for i in 0..<L { row[i] += bc }
            }
        }
        if training { output.zeroGrad() }
    }

    public func backward(_ x: Tensor) {
        let s = x.shape, o = output.shape
        guard let dy = output.grad else { preconditionFailure("conv \(weightName): backward without grad") }
        let L = o.n * o.h * o.w, kk = kernel * kernel
        let cig = inChannels / groups, cog = outChannels / groups
        let w = store.params + weightOffset
        if usesDirect {
            precondition(s == inShape, "conv \(weightName): backward on \(s) but planned for \(inShape)")
            let dims = (Int32(inChannels), Int32(outChannels), Int32(groups), Int32(s.n), Int32(s.h), Int32(s.w),
                        Int32(kernel), Int32(stride), Int32(padding), Int32(o.h), Int32(o.w))
            if store.hasGradients {
                kd_conv_direct_backward_weight(x.value, dy, store.grads + weightOffset, scratch.pointer, dims.0, dims.1,
                                               dims.2, dims.3, dims.4, dims.5, dims.6, dims.7, dims.8, dims.9, dims.10)
                if let bo = biasOffset { addBiasGradient(dy, store.grads + bo, L) }
            }
            if let dx = x.grad {
                kd_conv_direct_backward_input(dy, w, dx, scratch.pointer, dims.0, dims.1, dims.2, dims.3, dims.4,
                                              dims.5, dims.6, dims.7, dims.8, dims.9, dims.10)
            }
            return
        }
        // dW_g (Cog, Cig*K*K) += dy_g (Cog, L) x col_g^T
        if store.hasGradients {
            let col: UnsafeMutablePointer<Float>
            if isPointwise { col = x.value } else {
                col = scratch.pointer
                kd_im2col(x.value, col, Int32(s.c), Int32(s.n), Int32(s.h), Int32(s.w), Int32(kernel),
                          Int32(stride), Int32(padding), Int32(o.h), Int32(o.w))
            }
            let dw = store.grads + weightOffset
            for g in 0..<groups {
                kd_sgemm(0, 1, Int32(cog), Int32(cig * kk), Int32(L),
                            1, dy + g * cog * L, Int32(L), col + g * cig * kk * L, Int32(L),
                            1, dw + g * cog * cig * kk, Int32(cig * kk))
            }
            if let bo = biasOffset { addBiasGradient(dy, store.grads + bo, L) }
        }
        // dcol_g (Cig*K*K, L) = W_g^T x dy_g; then scatter-add into dx.
        guard let dx = x.grad else { return }
        let dcol = isPointwise ? dx : scratch.pointer
        for g in 0..<groups {
            kd_sgemm(1, 0, Int32(cig * kk), Int32(L), Int32(cog),
                        1, w + g * cog * cig * kk, Int32(cig * kk), dy + g * cog * L, Int32(L),
                        isPointwise ? 1 : 0, dcol + g * cig * kk * L, Int32(L))
        }
        if !isPointwise {
            kd_col2im_add(dcol, dx, Int32(s.c), Int32(s.n), Int32(s.h), Int32(s.w), Int32(kernel),
                          Int32(stride), Int32(padding), Int32(o.h), Int32(o.w))
        }
    }

    /// db[c] += sum of dy's row c, dy (Co, L).
    private func addBiasGradient(_ dy: UnsafePointer<Float>, _ db: UnsafeMutablePointer<Float>, _ L: Int) {
        for c in 0..<outChannels {
            let row = dy + c * L
            var acc: Float = 0
            for i in 0..<L { acc += row[i] }
            db[c] += acc
        }
    }
}
