// 2-d convolution (grouped, strided, padded, optional bias) by im2col + OpenBLAS sgemm.
//
// Legend: N batch, Ci/Co input/output channels, G groups, Cig = Ci/G, Cog = Co/G, K kernel,
// H x W input, Ho x Wo output, L = N*Ho*Wo.
// Activations are CNHW, so group g's input channels (Cig, N, H, W) and output channels
// (Cog, N, Ho, Wo) are contiguous and each group is ONE gemm over the whole batch:
//   y_g (Cog, L) = W_g (Cog, Cig*K*K) x col_g (Cig*K*K, L)
// A 1x1 stride-1 unpadded convolution skips im2col: col_g is x_g itself.
import COpenBLAS
import CKernels

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
        if !isPointwise { scratch.reserve(inChannels * kernel * kernel * out.n * out.h * out.w) }
        return out
    }

    public func forward(_ x: Tensor, training: Bool) {
        let s = x.shape, o = output.shape
        precondition(s == inShape, "conv \(weightName): forward on \(s) but planned for \(inShape)")
        let L = o.n * o.h * o.w, kk = kernel * kernel
        let cig = inChannels / groups, cog = outChannels / groups
        let col: UnsafeMutablePointer<Float>
        if isPointwise { col = x.value } else {
            col = scratch.pointer
            kd_im2col(x.value, col, Int32(s.c), Int32(s.n), Int32(s.h), Int32(s.w), Int32(kernel),
                      Int32(stride), Int32(padding), Int32(o.h), Int32(o.w))
        }
        let w = store.params + weightOffset
        for g in 0..<groups {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cog), Int32(L), Int32(cig * kk),
                        1, w + g * cog * cig * kk, Int32(cig * kk), col + g * cig * kk * L, Int32(L),
                        0, output.value + g * cog * L, Int32(L))
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
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(cog), Int32(cig * kk), Int32(L),
                            1, dy + g * cog * L, Int32(L), col + g * cig * kk * L, Int32(L),
                            1, dw + g * cog * cig * kk, Int32(cig * kk))
            }
            if let bo = biasOffset {
                let db = store.grads + bo
                for c in 0..<outChannels {
                    let row = dy + c * L
                    var acc: Float = 0
                    for i in 0..<L { acc += row[i] }
                    db[c] += acc
                }
            }
        }
        // dcol_g (Cig*K*K, L) = W_g^T x dy_g; then scatter-add into dx.
        guard let dx = x.grad else { return }
        let dcol = isPointwise ? dx : scratch.pointer
        for g in 0..<groups {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(cig * kk), Int32(L), Int32(cog),
                        1, w + g * cog * cig * kk, Int32(cig * kk), dy + g * cog * L, Int32(L),
                        isPointwise ? 1 : 0, dcol + g * cig * kk * L, Int32(L))
        }
        if !isPointwise {
            kd_col2im_add(dcol, dx, Int32(s.c), Int32(s.n), Int32(s.h), Int32(s.w), Int32(kernel),
                          Int32(stride), Int32(padding), Int32(o.h), Int32(o.w))
        }
    }
}
