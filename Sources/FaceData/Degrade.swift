// Preprocessing (resize, shift, flip, normalization) and the low-quality degradation.
//
// Legend: H, W network input size; planar (3, H, W) floats in 0...255 until `normalize`.
import Foundation

/// How a low-quality view is made from a high-quality one:
/// optional Gaussian blur (at full size) -> down-sample by factor f with `downKernel` -> optional Gaussian
/// noise -> optional JPEG re-compression -> up-sample back to the input size with `upKernel` (bicubic by
/// default) -> clamp to 0...255.
public struct Degradation: Sendable, Equatable {
    /// Factors drawn uniformly per training sample (1 = no down-sampling). Any factor >= 1 is allowed.
    public var factors: [Float]
    public var downKernel: ResizeKernel
    public var upKernel: ResizeKernel
    /// Probability and sigma range (pixels at full size) of the Gaussian blur.
    public var blurProbability: Float
    public var blurSigma: ClosedRange<Float>
    /// Probability and sigma range (0...255 scale) of additive Gaussian noise.
    public var noiseProbability: Float
    public var noiseSigma: ClosedRange<Float>
    /// Probability and quality range of JPEG re-compression.
    public var jpegProbability: Float
    public var jpegQuality: ClosedRange<Int>

    public init(factors: [Float] = [1, 2, 4, 8], downKernel: ResizeKernel = .bicubic, upKernel: ResizeKernel = .bicubic,
                blurProbability: Float = 0, blurSigma: ClosedRange<Float> = 0.5...1.5,
                noiseProbability: Float = 0, noiseSigma: ClosedRange<Float> = 1...5,
                jpegProbability: Float = 0, jpegQuality: ClosedRange<Int> = 30...90) {
        self.factors = factors; self.downKernel = downKernel; self.upKernel = upKernel
        self.blurProbability = blurProbability; self.blurSigma = blurSigma
        self.noiseProbability = noiseProbability; self.noiseSigma = noiseSigma
        self.jpegProbability = jpegProbability; self.jpegQuality = jpegQuality
    }

    /// The evaluation degradation for factor f: down-sample with `downKernel`, up-sample with `upKernel`, nothing random.
    public static func evaluation(factor: Float, downKernel: ResizeKernel = .bicubic, upKernel: ResizeKernel = .bicubic) -> Degradation {
        Degradation(factors: [factor], downKernel: downKernel, upKernel: upKernel)
    }

    /// Checks the configuration; throws a `DataError(.spec, "degradation.<field>", ...)` naming the bad field.
    public func validate() throws {
        guard !factors.isEmpty else { throw DataError(.spec, "degradation.factors", "at least one factor is needed") }
        for f in factors where !(f >= 1 && f <= 64) { throw DataError(.spec, "degradation.factors", "factor \(f) must be in 1...64") }
        for (n, p) in [("blurProbability", blurProbability), ("noiseProbability", noiseProbability), ("jpegProbability", jpegProbability)]
            where !(p >= 0 && p <= 1) { throw DataError(.spec, "degradation.\(n)", "\(p) must be in 0...1") }
        guard blurSigma.lowerBound > 0 else { throw DataError(.spec, "degradation.blurSigma", "must be positive") }
        guard noiseSigma.lowerBound >= 0 else { throw DataError(.spec, "degradation.noiseSigma", "must be >= 0") }
        guard jpegQuality.lowerBound >= 1, jpegQuality.upperBound <= 100 else { throw DataError(.spec, "degradation.jpegQuality", "must be in 1...100") }
    }

    /// The low-resolution size for input size `n` at factor `f` (rounded, at least 1).
    public static func lowSize(_ n: Int, factor f: Float) -> Int { max(1, Int((Float(n) / f).rounded())) }
}

/// Augmentation of the high-quality view, shared by both views so they stay aligned.
public struct Augmentation: Sendable, Equatable {
    /// Mirror with probability 0.5.
    public var flip: Bool
    /// Random shift of up to this many pixels in x and y (a random crop of the edge-padded image).
    public var maxShift: Int
    public init(flip: Bool = true, maxShift: Int = 0) { self.flip = flip; self.maxShift = maxShift }
    public static let none = Augmentation(flip: false, maxShift: 0)
}

/// Per-worker pipeline: decoded image -> (hr, lr) planar float views. Owns scratch buffers, so
/// steady-state processing allocates nothing. Not thread-safe: one per worker thread.
public final class SamplePipeline {
    public let height: Int, width: Int
    public let resizeKernel: ResizeKernel
    let ws = ResizeWorkspace()
    var native: [Float] = []
    var base: [Float]
    var low: [Float] = []
    var bytes: [UInt8] = []

    /// - Parameters: height/width: network input size; resizeKernel: used to bring source images to that size.
    public init(height: Int, width: Int, resizeKernel: ResizeKernel = .bilinear) {
        self.height = height; self.width = width; self.resizeKernel = resizeKernel
        base = [Float](repeating: 0, count: 3 * height * width)
    }

    /// Loads `img` into `base` at the input size (0...255 planar).
    func loadBase(_ img: FaceImage) {
        let n = img.width * img.height
        if native.count < 3 * n { native = [Float](repeating: 0, count: 3 * n) }
        native.withUnsafeMutableBufferPointer { o in
            img.pixels.withUnsafeBufferPointer { p in
                for i in 0..<n {
                    o[i] = Float(p[3 * i]); o[n + i] = Float(p[3 * i + 1]); o[2 * n + i] = Float(p[3 * i + 2])
                }
            }
        }
        native.withUnsafeBufferPointer { s in
            base.withUnsafeMutableBufferPointer { d in
                Resize.planar(s.baseAddress!, channels: 3, height: img.height, width: img.width, into: d.baseAddress!,
                              height: height, width: width, kernel: resizeKernel, workspace: ws)
            }
        }
    }

    /// Applies flip and shift to `base` in place (edge replicated).
    func augment(flip: Bool, dx: Int, dy: Int) {
        guard flip || dx != 0 || dy != 0 else { return }
        let H = height, W = width
        if native.count < 3 * H * W { native = [Float](repeating: 0, count: 3 * H * W) }
        native.withUnsafeMutableBufferPointer { t in
            base.withUnsafeMutableBufferPointer { b in
                for c in 0..<3 {
                    for y in 0..<H {
                        let sy = min(max(y - dy, 0), H - 1)
                        for x in 0..<W {
                            var sx = min(max(x - dx, 0), W - 1)
                            if flip { sx = W - 1 - sx }
                            t[(c * H + y) * W + x] = b[(c * H + sy) * W + sx]
                        }
                    }
                }
                b.baseAddress!.update(from: t.baseAddress!, count: 3 * H * W)
            }
        }
    }

    /// Writes the normalized high-quality view ((x/255 - 0.5) / 0.5) to `hr` (3*H*W floats).
    func writeHR(_ hr: UnsafeMutablePointer<Float>) {
        base.withUnsafeBufferPointer { b in
            for i in 0..<(3 * height * width) { hr[i] = b[i] * (1 / 127.5) - 1 }
        }
    }

    /// Writes the normalized low-quality view of `base` at `factor` to `lr`. Random parts (blur, noise,
    /// JPEG) draw from `rng`.
    func writeLR(_ lr: UnsafeMutablePointer<Float>, factor: Float, degradation d: Degradation, rng: inout Rng) {
        let H = height, W = width, n = 3 * H * W
        let blur = d.blurProbability > 0 && rng.bernoulli(d.blurProbability)
        let sigma = rng.uniform(d.blurSigma.lowerBound, d.blurSigma.upperBound)
        let noisy = d.noiseProbability > 0 && rng.bernoulli(d.noiseProbability)
        let nsig = rng.uniform(d.noiseSigma.lowerBound, d.noiseSigma.upperBound)
        let jpeg = d.jpegProbability > 0 && rng.bernoulli(d.jpegProbability)
        let q = d.jpegQuality.lowerBound + rng.int(d.jpegQuality.count)
        if factor == 1 && !blur && !noisy && !jpeg {
            base.withUnsafeBufferPointer { b in for i in 0..<n { lr[i] = b[i] * (1 / 127.5) - 1 } }
            return
        }
        // lr doubles as scratch for the blurred full-size image.
        base.withUnsafeBufferPointer { b in lr.update(from: b.baseAddress!, count: n) }
        if blur { Resize.gaussianBlur(lr, channels: 3, height: H, width: W, sigma: sigma, workspace: ws) }
        let h = Degradation.lowSize(H, factor: factor), w = Degradation.lowSize(W, factor: factor)
        if low.count < 3 * h * w { low = [Float](repeating: 0, count: 3 * h * w) }
        low.withUnsafeMutableBufferPointer { lb in
            let l = lb.baseAddress!
            Resize.planar(lr, channels: 3, height: H, width: W, into: l, height: h, width: w, kernel: d.downKernel, workspace: ws)
            if noisy { for i in 0..<(3 * h * w) { l[i] += nsig * rng.gaussian() } }
            if jpeg { recompress(l, height: h, width: w, quality: q) }
            Resize.planar(l, channels: 3, height: h, width: w, into: lr, height: H, width: W, kernel: d.upKernel, workspace: ws)
        }
        for i in 0..<n { lr[i] = min(max(lr[i], 0), 255) * (1 / 127.5) - 1 }
    }

    /// JPEG round trip of planar data in place; on an encoder failure the data is left as it is.
    private func recompress(_ p: UnsafeMutablePointer<Float>, height h: Int, width w: Int, quality: Int) {
        let m = h * w
        if bytes.count < 3 * m { bytes = [UInt8](repeating: 0, count: 3 * m) }
        for i in 0..<m { for c in 0..<3 { bytes[3 * i + c] = UInt8(min(max(p[c * m + i], 0), 255).rounded()) } }
        guard let enc = try? bytes.withUnsafeBufferPointer({ try ImageCodec.encodeJPEG($0.baseAddress!, width: w, height: h, quality: quality) }),
              let dec = try? ImageCodec.decodeJPEG(enc) else { return }
        for i in 0..<m { for c in 0..<3 { p[c * m + i] = Float(dec.pixels[3 * i + c]) } }
    }

    /// Full processing of one image for evaluation: resize to the input size, degrade at `factor`
    /// (deterministic: `Degradation.evaluation`), optional mirror, normalized into `out` (3*H*W floats);
    /// then, at factors above 1, blurred by `blur` (A-SKD's protocol; nil = no blur).
    public func evaluationView(_ img: FaceImage, factor: Float, downKernel: ResizeKernel = .bicubic,
                               upKernel: ResizeKernel = .bicubic, flip: Bool = false, blur: AxisBlur? = nil,
                               into out: UnsafeMutablePointer<Float>) {
        loadBase(img)
        if flip { augment(flip: true, dx: 0, dy: 0) }
        var rng = Rng(state: 0)
        writeLR(out, factor: factor, degradation: .evaluation(factor: factor, downKernel: downKernel, upKernel: upKernel), rng: &rng)
        if let blur, factor > 1 {
            if native.count < max(height, width) { native = [Float](repeating: 0, count: max(height, width)) }
            native.withUnsafeMutableBufferPointer { blur.apply(out, channels: 3, height: height, width: width, tmp: $0.baseAddress!) }
        }
    }

    /// Training processing of one image: the shared augmentation from `rng`, then hr and lr views.
    public func trainingViews(_ img: FaceImage, factor: Float, augmentation a: Augmentation, degradation d: Degradation,
                              rng: inout Rng, hr: UnsafeMutablePointer<Float>, lr: UnsafeMutablePointer<Float>) {
        loadBase(img)
        let flip = a.flip && rng.bernoulli(0.5)
        let dx = a.maxShift > 0 ? rng.int(2 * a.maxShift + 1) - a.maxShift : 0
        let dy = a.maxShift > 0 ? rng.int(2 * a.maxShift + 1) - a.maxShift : 0
        augment(flip: flip, dx: dx, dy: dy)
        writeHR(hr)
        writeLR(lr, factor: factor, degradation: d, rng: &rng)
    }
}
