// CBAM (Woo et al., ECCV 2018): channel attention then spatial attention, on a CNHW tensor.
//
// Legend: C channels, N batch, P = H*W positions, R = C / reduction.
//   avg, max  (C, N)     global average / max pooling of x over positions
//   hA, hM    (R, N)     relu(W1 . + b1) of avg / max           (shared MLP, fc1)
//   caLogit   (C, N)     W2 hA + b2 + W2 hM + b2                 (fc2)
//   ca        (C, N)     sigmoid(caLogit)                        channel attention map
//   xs        (C, N, P)  x * ca                                  channel-refined features
//   pooled    (2, N, P)  (max over C, mean over C) of xs          (CBAM's ChannelPool order)
//   saLogit   (1, N, P)  conv KxK (2 -> 1, no bias) of pooled
//   sa        (1, N, P)  sigmoid(saLogit)                        spatial attention map
//   output    (C, N, P)  xs * sa
// The four maps are readable after forward; distillation losses ADD their gradients into
// `caGrad`, `caLogitGrad`, `saGrad`, `saLogitGrad` (zeroed by a training forward) before
// `backward` runs.
import CKernels

public final class CBAM: Layer {
    public let channels: Int, hidden: Int, kernel: Int
    public let store: ParamStore
    public let name: String
    let w1: Int, b1: Int, w2: Int, b2: Int           // offsets: fc1 (R, C) + (R); fc2 (C, R) + (C)
    let spatial: Conv2d
    public let output = Tensor()
    /// Maps (see legend). caLogit/ca are (C, N); saLogit/sa are (1, N, H, W) = (N, P).
    public let caLogit = Tensor(), ca = Tensor(), sa = Tensor()
    public var saLogit: Tensor { spatial.output }
    let avg = Tensor(), mx = Tensor(), hA = Tensor(), hM = Tensor()
    let xs = Tensor(), pooled = Tensor()
    private var maxIndex: UnsafeMutablePointer<Int32> = .allocate(capacity: 1)
    private var chanArg: UnsafeMutablePointer<Int32> = .allocate(capacity: 1)
    private var indexCapacity = 0, argCapacity = 0
    /// External gradients of the maps, (C, N) / (N, P); zeroed by a training forward.
    public let caGrad = Tensor(), caLogitGrad = Tensor(), saGrad = Tensor(), saLogitGrad = Tensor()
    private var shape = Shape(n: 0, c: 0, h: 0, w: 0)

    public init(_ store: ParamStore, scratch: Scratch, name: String, channels: Int, reduction: Int, kernel: Int) {
        precondition(channels % reduction == 0 && channels >= reduction,
                     "\(name): channels \(channels) not a multiple of reduction \(reduction)")
        self.channels = channels; hidden = channels / reduction; self.kernel = kernel
        self.store = store; self.name = name
        let b1Bound = 1 / Float(channels).squareRoot(), b2Bound = 1 / Float(hidden).squareRoot()
        // PyTorch nn.Linear default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
        w1 = store.register(name + ".mlp.fc1.weight", shape: [hidden, channels], initializer: .uniform(bound: b1Bound))
        b1 = store.register(name + ".mlp.fc1.bias", shape: [hidden], initializer: .uniform(bound: b1Bound), decay: false)
        w2 = store.register(name + ".mlp.fc2.weight", shape: [channels, hidden], initializer: .uniform(bound: b2Bound))
        b2 = store.register(name + ".mlp.fc2.bias", shape: [channels], initializer: .uniform(bound: b2Bound), decay: false)
        spatial = Conv2d(store, scratch: scratch, name: name + ".spatial", inChannels: 2, outChannels: 1,
                         kernel: kernel, stride: 1, padding: kernel / 2)
    }

    deinit { maxIndex.deallocate(); chanArg.deallocate() }

    /// Every tensor with a gradient inside this module (their gradients live only in `backward`).
    var internalTensors: [Tensor] { [output, xs, pooled, spatial.output, sa, avg, mx, hA, hM, caLogit, ca] }

    @discardableResult
    public func plan(_ input: Shape, needsGrad: Bool) -> Shape {
        precondition(input.c == channels, "\(name): input has \(input.c) channels, expected \(channels)")
        shape = input
        let n = input.n, vec = Shape(n: n, c: channels, h: 1, w: 1), hid = Shape(n: n, c: hidden, h: 1, w: 1)
        for t in [avg, mx, caLogit, ca] { t.plan(vec, needsGrad: needsGrad) }
        for t in [hA, hM] { t.plan(hid, needsGrad: needsGrad) }
        xs.plan(input, needsGrad: needsGrad)
        pooled.plan(Shape(n: n, c: 2, h: input.h, w: input.w), needsGrad: needsGrad)
        spatial.plan(pooled.shape, needsGrad: needsGrad)
        sa.plan(spatial.output.shape, needsGrad: needsGrad)
        output.plan(input, needsGrad: needsGrad)
        for t in [caGrad, caLogitGrad] { t.plan(vec, needsGrad: false) }
        for t in [saGrad, saLogitGrad] { t.plan(sa.shape, needsGrad: false) }
        if indexCapacity < channels * n {
            maxIndex.deallocate(); indexCapacity = channels * n; maxIndex = .allocate(capacity: indexCapacity)
        }
        if argCapacity < n * input.plane {
            chanArg.deallocate(); argCapacity = n * input.plane; chanArg = .allocate(capacity: argCapacity)
        }
        return input
    }

    /// y (C, N) = W (C_out, C_in) x (C_in, N) + b, row-major sgemm.
    private func linear(_ y: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                        _ x: UnsafePointer<Float>, out: Int, inp: Int, n: Int, accumulate: Bool) {
        if !accumulate { for o in 0..<out { (y + o * n).update(repeating: b[o], count: n) } }
        else { for o in 0..<out { let bo = b[o]; for j in 0..<n { y[o * n + j] += bo } } }
        kd_sgemm(0, 0, Int32(out), Int32(n), Int32(inp),
                    1, w, Int32(inp), x, Int32(n), 1, y, Int32(n))
    }

    public func forward(_ x: Tensor, training: Bool) { forward(x, training: training, fused: nil) }

    /// The block's fused tail: instead of `output`, writes y = ReLU(output + residual) straight
    /// into `y` (`output`'s values are never formed; backward does not read them), and runs the
    /// pooling and channel-scaling passes fused. Same bits as `forward` followed by the add and
    /// the ReLU.
    func forward(_ x: Tensor, training: Bool, addingTo residual: Tensor, reluInto y: Tensor) {
        forward(x, training: training, fused: (residual, y))
    }

    private func forward(_ x: Tensor, training: Bool, fused: (residual: Tensor, y: Tensor)?) {
        precondition(x.shape == shape, "\(name): forward on \(x.shape) but planned for \(shape)")
        let n = shape.n, p = shape.plane, cn = channels * n, P = store.params
        if fused != nil {
            kd_global_avgmax_forward(avg.value, mx.value, maxIndex, x.value, cn, p)
        } else {
            kd_global_avgpool_forward(avg.value, x.value, cn, p)
            kd_global_maxpool_forward(mx.value, maxIndex, x.value, cn, p)
        }
        linear(hA.value, P + w1, P + b1, avg.value, out: hidden, inp: channels, n: n, accumulate: false)
        linear(hM.value, P + w1, P + b1, mx.value, out: hidden, inp: channels, n: n, accumulate: false)
        for h in [hA.value, hM.value] { for i in 0..<(hidden * n) where h[i] < 0 { h[i] = 0 } }   // relu
        linear(caLogit.value, P + w2, P + b2, hA.value, out: channels, inp: hidden, n: n, accumulate: false)
        linear(caLogit.value, P + w2, P + b2, hM.value, out: channels, inp: hidden, n: n, accumulate: true)
        kd_sigmoid_forward(ca.value, caLogit.value, cn)
        if fused != nil {
            kd_channel_scale_pool_forward(xs.value, pooled.value, chanArg, x.value, ca.value, Int32(channels), Int32(n), p)
        } else {
            kd_channel_scale_forward(xs.value, x.value, ca.value, cn, p)
            kd_channel_pool_forward(pooled.value, chanArg, xs.value, Int32(channels), Int32(n), p)
        }
        spatial.forward(pooled, training: training)
        kd_sigmoid_forward(sa.value, spatial.output.value, n * p)
        if let f = fused {
            precondition(f.residual.shape == shape && f.y.shape == shape, "\(name): fused tail shapes differ")
            kd_spatial_scale_add_relu(f.y.value, xs.value, sa.value, f.residual.value, Int32(channels), Int32(n), p)
        } else {
            kd_spatial_scale_forward(output.value, xs.value, sa.value, Int32(channels), Int32(n), p)
        }
        if training {
            for t in [output, avg, mx, hA, hM, caLogit, ca, xs, pooled, sa] { t.zeroGrad() }
            for t in [caGrad, caLogitGrad, saGrad, saLogitGrad] { t.value.update(repeating: 0, count: t.shape.count) }
        }
    }

    public func backward(_ x: Tensor) {
        guard let dy = output.grad, let dsa = sa.grad, let dxs = xs.grad, let dca = ca.grad,
              let dcaL = caLogit.grad, let dhA = hA.grad, let dhM = hM.grad, let davg = avg.grad, let dmx = mx.grad
        else { preconditionFailure("\(name): backward without gradients planned") }
        let n = shape.n, p = shape.plane, cn = channels * n, C32 = Int32(channels), N32 = Int32(n)
        let P = store.params, G = store.grads, hasG = store.hasGradients
        // output = xs * sa
        kd_spatial_scale_backward(dxs, dsa, dy, xs.value, sa.value, C32, N32, p)
        kd_accumulate(dsa, saGrad.value, n * p)
        let dsaL = spatial.output.grad!
        kd_sigmoid_backward(dsaL, dsa, sa.value, n * p)
        kd_accumulate(dsaL, saLogitGrad.value, n * p)
        spatial.backward(pooled)
        kd_channel_pool_backward(dxs, pooled.grad!, chanArg, C32, N32, p)
        // xs = x * ca
        kd_channel_scale_backward(x.grad, dca, dxs, x.value, ca.value, cn, p)
        kd_accumulate(dca, caGrad.value, cn)
        kd_sigmoid_backward(dcaL, dca, ca.value, cn)
        kd_accumulate(dcaL, caLogitGrad.value, cn)
        // caLogit = fc2(hA) + fc2(hM)
        let r32 = Int32(hidden), c32 = Int32(channels), n32 = Int32(n)
        if hasG {
            for h in [hA, hM] {
                kd_sgemm(0, 1, c32, r32, n32, 1, dcaL, n32, h.value, n32,
                            1, G + w2, r32)
            }
            for c in 0..<channels { var s: Float = 0; for j in 0..<n { s += dcaL[c * n + j] }; G[b2 + c] += 2 * s }
        }
        for (h, dh) in [(hA, dhA), (hM, dhM)] {
            kd_sgemm(1, 0, r32, n32, c32, 1, P + w2, r32, dcaL, n32, 0, dh, n32)
            for i in 0..<(hidden * n) where h.value[i] <= 0 { dh[i] = 0 }   // relu'
        }
        // hA = relu(fc1(avg)), hM = relu(fc1(max))
        if hasG {
            for (dh, v) in [(dhA, avg), (dhM, mx)] {
                kd_sgemm(0, 1, r32, c32, n32, 1, dh, n32, v.value, n32,
                            1, G + w1, c32)
                for r in 0..<hidden { var s: Float = 0; for j in 0..<n { s += dh[r * n + j] }; G[b1 + r] += s }
            }
        }
        guard let dx = x.grad else { return }
        kd_sgemm(1, 0, c32, n32, r32, 1, P + w1, c32, dhA, n32, 0, davg, n32)
        kd_sgemm(1, 0, c32, n32, r32, 1, P + w1, c32, dhM, n32, 0, dmx, n32)
        kd_global_avgpool_backward(dx, davg, cn, p)
        kd_global_maxpool_backward(dx, dmx, maxIndex, cn, p)
    }
}
