// A-SKD's evaluation blur (5x5 Gaussian, one sigma per axis, reflect padding) against an
// independent numpy re-implementation of torchvision's gaussian_blur (fixture written by
// scripts/make_study_reference.py), and its place in the evaluation view.
import Foundation
import XCTest
import FaceData

final class EvalBlurTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable { let kernel: Int, sigmaX: Float, sigmaY: Float, output: [Float] }
        let channels: Int, height: Int, width: Int, input: [Float], cases: [Case]
    }

    func testMatchesTorchvisionGaussianBlurWithReflectPadding() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "eval_blur", withExtension: "json", subdirectory: "Fixtures"))
        let fx = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        for c in fx.cases {
            var img = fx.input
            var tmp = [Float](repeating: 0, count: max(fx.height, fx.width))
            let blur = AxisBlur(sigmaX: c.sigmaX, sigmaY: c.sigmaY, kernel: c.kernel)
            img.withUnsafeMutableBufferPointer { p in
                tmp.withUnsafeMutableBufferPointer { blur.apply(p.baseAddress!, channels: fx.channels, height: fx.height, width: fx.width, tmp: $0.baseAddress!) }
            }
            let worst = zip(img, c.output).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-5, "kernel \(c.kernel) sigma (\(c.sigmaX), \(c.sigmaY)): max difference \(worst)")
        }
    }

    func testBlurOnlyAtDegradedFactors() {
        let side = 16
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        for i in 0..<pixels.count { pixels[i] = UInt8((i * 37) % 251) }
        let img = FaceImage(width: side, height: side, pixels: pixels)
        let p = SamplePipeline(height: side, width: side)
        var plain = [Float](repeating: 0, count: 3 * side * side), blurred = plain
        let blur = AxisBlur(sigmaX: 0.1, sigmaY: 2.0)
        p.evaluationView(img, factor: 1, into: &plain)
        p.evaluationView(img, factor: 1, blur: blur, into: &blurred)
        XCTAssertEqual(plain, blurred, "x1 is not degraded, so not blurred (A-SKD skips the blur at full size)")
        p.evaluationView(img, factor: 2, downKernel: .nearest, upKernel: .nearest, into: &plain)
        p.evaluationView(img, factor: 2, downKernel: .nearest, upKernel: .nearest, blur: blur, into: &blurred)
        XCTAssertNotEqual(plain, blurred)
        // sigma_x = 0.1 barely mixes columns: each blurred row is the column-wise blur of the plain one.
        var expect = plain, tmp = [Float](repeating: 0, count: side)
        expect.withUnsafeMutableBufferPointer { e in tmp.withUnsafeMutableBufferPointer { blur.apply(e.baseAddress!, channels: 3, height: side, width: side, tmp: $0.baseAddress!) } }
        XCTAssertEqual(expect, blurred)
    }
}
