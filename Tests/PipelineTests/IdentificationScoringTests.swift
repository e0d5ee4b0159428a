// The BLAS scorer of identification against the plain loop: the same scores to rounding and the same
// ranks, on random unit embeddings large enough for several score blocks.
import Evaluation
import Pipeline
import XCTest

final class IdentificationScoringTests: XCTestCase {
    func testBLASScoresMatchTheLoop() throws {
        var state: UInt64 = 11
        func next() -> Double { state = state &* 6364136223846793005 &+ 1442695040888963407; return Double(state >> 11) / Double(1 << 53) - 0.5 }
        func unitRows(_ n: Int, _ e: Int) -> [Double] {
            (0..<n).flatMap { _ -> [Double] in let r = (0..<e).map { _ in next() }; let s = r.map { $0 * $0 }.reduce(0, +).squareRoot(); return r.map { $0 / s } }
        }
        let e = 16, np = 130, ng = 97
        let probes = unitRows(np, e), gallery = unitRows(ng, e)
        var a = [Double](repeating: 0, count: np * ng), b = a
        probes.withUnsafeBufferPointer { p in gallery.withUnsafeBufferPointer { g in
            a.withUnsafeMutableBufferPointer { IdentificationProtocol.loopScores(p.baseAddress!, np, g.baseAddress!, ng, e, $0.baseAddress!) }
            b.withUnsafeMutableBufferPointer { IdentificationEvaluator.blasScores(p.baseAddress!, np, g.baseAddress!, ng, e, $0.baseAddress!) }
        } }
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-14) }
        XCTAssert(a.contains { abs($0) > 0.3 }, "scores should not be trivial")
        let gl = (0..<ng).map { $0 < 80 ? $0 % 20 : IdentificationProtocol.distractorLabel }, pl = (0..<np).map { $0 % 20 }
        let loop = try IdentificationProtocol.evaluate(probes: probes, probeLabels: pl, gallery: gallery, galleryLabels: gl, dimension: e)
        let blas = try IdentificationProtocol.evaluate(probes: probes, probeLabels: pl, gallery: gallery, galleryLabels: gl, dimension: e,
                                                       score: IdentificationEvaluator.blasScores)
        XCTAssertEqual(blas, loop)
    }
}
