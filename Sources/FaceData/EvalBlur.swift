// The post-up-sampling blur of A-SKD's evaluation protocol (gist-ailab/teaching-where-to-look,
// dataset/agedb.py + utility/noise.py): after nearest down- and up-sampling, every degraded image
// goes through torchvision-style `gaussian_blur(img, kernel_size=[5, 5], sigma=[sx, sy])`: a
// separable kernel k_i = exp(-x_i^2 / 2 sigma^2) / sum over x = linspace(-(K-1)/2, (K-1)/2, K),
// with sigma_x along the width and sigma_y along the height, and reflect padding (no edge repeat).
// A-SKD calls it with sigma = [0.1, 2.0], which torchvision reads per axis (not as a range).
import Foundation

/// A separable Gaussian blur with a fixed odd kernel size and one sigma per axis.
public struct AxisBlur: Sendable, Equatable {
    public var sigmaX: Float, sigmaY: Float, kernel: Int
    public init(sigmaX: Float, sigmaY: Float, kernel: Int = 5) {
        self.sigmaX = sigmaX; self.sigmaY = sigmaY; self.kernel = kernel
    }

    /// torchvision's `_get_gaussian_kernel1d`.
    static func weights(_ k: Int, sigma: Float) -> [Float] {
        let half = Float(k - 1) / 2
        let pdf = (0..<k).map { i -> Float in
            let x = k == 1 ? 0 : -half + Float(i) * (2 * half / Float(k - 1))
            return exp(-0.5 * (x / sigma) * (x / sigma))
        }
        let s = pdf.reduce(0, +)
        return pdf.map { $0 / s }
    }

    /// Reflect index (PyTorch "reflect": -1 -> 1, n -> n - 2).
    @inline(__always) static func reflect(_ i: Int, _ n: Int) -> Int {
        if n == 1 { return 0 }
        var j = i
        while j < 0 || j >= n { j = j < 0 ? -j : 2 * (n - 1) - j }
        return j
    }

    /// Blurs `c` planes of H x W in place; `tmp` needs max(H, W) floats.
    public func apply(_ p: UnsafeMutablePointer<Float>, channels c: Int, height H: Int, width W: Int,
                      tmp: UnsafeMutablePointer<Float>) {
        let kx = AxisBlur.weights(kernel, sigma: sigmaX), ky = AxisBlur.weights(kernel, sigma: sigmaY), r = kernel / 2
        for ch in 0..<c {
            let plane = p + ch * H * W
            for y in 0..<H {
                let row = plane + y * W
                for x in 0..<W { var a: Float = 0; for j in 0..<kernel { a += row[AxisBlur.reflect(x + j - r, W)] * kx[j] }; tmp[x] = a }
                row.update(from: tmp, count: W)
            }
            for x in 0..<W {
                for y in 0..<H { var a: Float = 0; for j in 0..<kernel { a += plane[AxisBlur.reflect(y + j - r, H) * W + x] * ky[j] }; tmp[y] = a }
                for y in 0..<H { plane[y * W + x] = tmp[y] }
            }
        }
    }
}
