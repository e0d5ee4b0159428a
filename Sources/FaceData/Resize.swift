// Resampling and blur of planar float images (C, H, W), values in 0...255.
//
// Conventions (documented because "bicubic" means different things in different libraries):
// - bilinear / bicubic: separable filters with pixel centres at i + 0.5 (align_corners = false); when
//   down-sampling the filter support is stretched by the scale factor (anti-aliasing). This is the
//   convention of Pillow and of torch.nn.functional.interpolate(..., antialias=True); bicubic uses
//   a = -0.5 as they do. Tests compare against torch (Tests/FaceDataTests/Fixtures, made by
//   scripts/make_data_fixtures.py).
// - area: each output pixel is the exact area-weighted mean of the input pixels its footprint
//   covers (OpenCV INTER_AREA); for integer factors it equals torch's "area" (adaptive average pool).
// - nearest: source index floor(i * in/out), as torch's "nearest".
// - Gaussian blur: kernel radius ceil(3 sigma), weights exp(-x^2 / 2 sigma^2) normalized, edges replicated.
import Foundation

/// A resampling kernel.
public enum ResizeKernel: String, Sendable, CaseIterable { case area, bilinear, bicubic, nearest }

/// One-dimensional resampling weights: output i = sum_k weight[i*taps + k] * input[start[i] + k].
struct ResampleWeights {
    let taps: Int
    let start: [Int]
    let weight: [Float]

    init(src: Int, dst: Int, kernel: ResizeKernel) {
        precondition(src > 0 && dst > 0)
        let scale = Double(src) / Double(dst)
        var starts = [Int](), rows = [[Double]]()
        starts.reserveCapacity(dst); rows.reserveCapacity(dst)
        switch kernel {
        case .nearest:
            let s = Float(src) / Float(dst)
            for i in 0..<dst { starts.append(min(Int((Float(i) * s).rounded(.down)), src - 1)); rows.append([1]) }
        case .area:
            for i in 0..<dst {
                let a = Double(i) * scale, b = Double(i + 1) * scale
                let j0 = max(0, Int(a.rounded(.down))), j1 = min(src, Int(b.rounded(.up)))
                var r = [Double]()
                for j in j0..<max(j1, j0 + 1) { r.append(max(0, min(b, Double(j + 1)) - max(a, Double(j)))) }
                let s = r.reduce(0, +)
                starts.append(j0); rows.append(r.map { s > 0 ? $0 / s : 0 })
            }
        case .bilinear, .bicubic:
            let support0 = kernel == .bilinear ? 1.0 : 2.0
            let fs = max(scale, 1), support = support0 * fs
            for i in 0..<dst {
                let center = (Double(i) + 0.5) * scale
                let xmin = max(Int(center - support + 0.5), 0)          // truncation, as Pillow and torch
                let xmax = min(Int(center + support + 0.5), src)
                var r = [Double]()
                for j in xmin..<max(xmax, xmin + 1) {
                    let x = (Double(j) - center + 0.5) / fs
                    r.append(kernel == .bilinear ? ResampleWeights.triangle(x) : ResampleWeights.cubic(x))
                }
                let s = r.reduce(0, +)
                starts.append(xmin); rows.append(r.map { s != 0 ? $0 / s : 0 })
            }
        }
        let taps = rows.map(\.count).max() ?? 1
        var w = [Float](repeating: 0, count: dst * taps)
        for i in 0..<dst {
            // Keep every window inside the source: shift it left when it would overrun, padding with zeros.
            var st = starts[i], r = rows[i]
            if st + taps > src { let shift = st + taps - src; st -= shift; r = [Double](repeating: 0, count: shift) + r }
            starts[i] = st
            for k in 0..<r.count where k < taps { w[i * taps + k] = Float(r[k]) }
        }
        self.taps = taps; self.start = starts; self.weight = w
    }

    static func triangle(_ x: Double) -> Double { max(0, 1 - abs(x)) }
    static func cubic(_ x0: Double) -> Double {
        let a = -0.5, x = abs(x0)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }
}

/// Per-thread scratch space and weight cache for resampling. Not thread-safe: give each worker its own.
public final class ResizeWorkspace {
    private var cache: [Int: ResampleWeights] = [:]
    var tmp: [Float] = []
    public init() {}
    func weights(src: Int, dst: Int, kernel: ResizeKernel) -> ResampleWeights {
        let key = (src << 34) | (dst << 4) | (ResizeKernel.allCases.firstIndex(of: kernel) ?? 0)
        if let w = cache[key] { return w }
        let w = ResampleWeights(src: src, dst: dst, kernel: kernel)
        if cache.count > 256 { cache.removeAll() }
        cache[key] = w
        return w
    }
}

public enum Resize {
    /// Resizes planar (C, H, W) `src` to (C, h, w) `dst`. Horizontal pass first, then vertical.
    /// - Precondition: `src` holds c*H*W floats and `dst` c*h*w; they must not overlap.
    public static func planar(_ src: UnsafePointer<Float>, channels c: Int, height H: Int, width W: Int,
                              into dst: UnsafeMutablePointer<Float>, height h: Int, width w: Int,
                              kernel: ResizeKernel, workspace ws: ResizeWorkspace) {
        if H == h && W == w { dst.update(from: src, count: c * H * W); return }
        let wx = ws.weights(src: W, dst: w, kernel: kernel), wy = ws.weights(src: H, dst: h, kernel: kernel)
        if ws.tmp.count < c * H * w { ws.tmp = [Float](repeating: 0, count: c * H * w) }
        ws.tmp.withUnsafeMutableBufferPointer { tb in
            let t = tb.baseAddress!
            wx.weight.withUnsafeBufferPointer { xw in
                let taps = wx.taps
                for row in 0..<(c * H) {
                    let s = src + row * W, o = t + row * w
                    for i in 0..<w {
                        let p = s + wx.start[i], q = xw.baseAddress! + i * taps
                        var acc: Float = 0
                        for k in 0..<taps { acc += p[k] * q[k] }
                        o[i] = acc
                    }
                }
            }
            wy.weight.withUnsafeBufferPointer { yw in
                let taps = wy.taps
                for ch in 0..<c {
                    let s = t + ch * H * w, o = dst + ch * h * w
                    for j in 0..<h {
                        let orow = o + j * w
                        let base = s + wy.start[j] * w
                        let wq = yw.baseAddress! + j * taps
                        let w0 = wq[0]
                        for i in 0..<w { orow[i] = base[i] * w0 }
                        for k in 1..<max(taps, 1) {
                            let wk = wq[k]; if wk == 0 { continue }
                            let r = base + k * w
                            for i in 0..<w { orow[i] += r[i] * wk }   // vectorizes
                        }
                    }
                }
            }
        }
    }

    /// Convenience: resizes an 8-bit image (rounding and clamping the result).
    public static func image(_ img: FaceImage, width w: Int, height h: Int, kernel: ResizeKernel) -> FaceImage {
        let src = img.planarFloats()
        var dst = [Float](repeating: 0, count: 3 * w * h)
        let ws = ResizeWorkspace()
        src.withUnsafeBufferPointer { s in
            dst.withUnsafeMutableBufferPointer { d in
                planar(s.baseAddress!, channels: 3, height: img.height, width: img.width,
                       into: d.baseAddress!, height: h, width: w, kernel: kernel, workspace: ws)
            }
        }
        return dst.withUnsafeBufferPointer { FaceImage(planar: $0, width: w, height: h) }
    }

    /// Array convenience over `planar` (allocates; for tests and tools).
    public static func planarArray(_ src: [Float], channels c: Int, height H: Int, width W: Int,
                                   toHeight h: Int, width w: Int, kernel: ResizeKernel) -> [Float] {
        precondition(src.count == c * H * W)
        var dst = [Float](repeating: 0, count: c * h * w)
        let ws = ResizeWorkspace()
        src.withUnsafeBufferPointer { s in
            dst.withUnsafeMutableBufferPointer { d in
                planar(s.baseAddress!, channels: c, height: H, width: W, into: d.baseAddress!, height: h, width: w,
                       kernel: kernel, workspace: ws)
            }
        }
        return dst
    }

    /// Normalized Gaussian taps for `sigma` (radius ceil(3 sigma), at least 1).
    public static func gaussianKernel(sigma: Float) -> [Float] {
        let r = max(1, Int((3 * sigma).rounded(.up)))
        var k = (-r...r).map { x in expf(-Float(x * x) / (2 * sigma * sigma)) }
        let s = k.reduce(0, +); for i in k.indices { k[i] /= s }
        return k
    }

    /// In-place separable Gaussian blur of planar (C, H, W) data, edges replicated.
    public static func gaussianBlur(_ p: UnsafeMutablePointer<Float>, channels c: Int, height H: Int, width W: Int,
                                    sigma: Float, workspace ws: ResizeWorkspace) {
        guard sigma > 0 else { return }
        let k = gaussianKernel(sigma: sigma), r = k.count / 2
        if ws.tmp.count < max(W, H) + 2 * r { ws.tmp = [Float](repeating: 0, count: max(W, H) + 2 * r) }
        ws.tmp.withUnsafeMutableBufferPointer { tb in
            let t = tb.baseAddress!
            for ch in 0..<c {
                let plane = p + ch * H * W
                for y in 0..<H {                       // rows
                    let row = plane + y * W
                    for i in 0..<(W + 2 * r) { t[i] = row[min(max(i - r, 0), W - 1)] }
                    for x in 0..<W { var a: Float = 0; for j in 0..<k.count { a += t[x + j] * k[j] }; row[x] = a }
                }
                for x in 0..<W {                       // columns
                    for i in 0..<(H + 2 * r) { t[i] = plane[min(max(i - r, 0), H - 1) * W + x] }
                    for y in 0..<H { var a: Float = 0; for j in 0..<k.count { a += t[y + j] * k[j] }; plane[y * W + x] = a }
                }
            }
        }
    }
}
