// Procedural synthetic faces: deterministic, distinct identities, identity recoverable from pixels.
import FaceData
import Foundation
import XCTest
import KDCore

final class SyntheticTests: XCTestCase {
    func testDeterministicAndDistinct() throws {
        let set = try SyntheticTrainingSet(SyntheticConfig(seed: 7, identities: 20, imagesPerIdentity: 5))
        XCTAssertEqual(set.count, 100); XCTAssertEqual(set.classCount, 20)
        let a = try set.sample(13), b = try set.sample(13)
        XCTAssertEqual(a.image, b.image); XCTAssertEqual(a.label, 2)
        XCTAssertNotEqual(try set.sample(14).image, a.image)
        let other = try SyntheticTrainingSet(SyntheticConfig(seed: 8, identities: 20, imagesPerIdentity: 5))
        XCTAssertNotEqual(try other.sample(13).image, a.image)
        XCTAssertThrowsError(try set.sample(100))
    }

    /// Identity must be recoverable from raw pixels well above chance: a nearest-class-mean
    /// classifier on raw pixels (a weak, model-free check of the generator's difficulty).
    func testIdentityIsRecoverableFromPixels() throws {
        let cfg = SyntheticConfig(seed: 3, identities: 30, imagesPerIdentity: 12)
        let set = try SyntheticTrainingSet(cfg)
        let pipe = SamplePipeline(height: 56, width: 56)
        var acc = [Float: Float]()
        for f: Float in [1, 8] {
            var feats = [[Float]](), labels = [Int]()
            for i in 0..<set.count {
                let s = try set.sample(i)
                var v = [Float](repeating: 0, count: 3 * 56 * 56)
                v.withUnsafeMutableBufferPointer { pipe.evaluationView(s.image, factor: f, into: $0.baseAddress!) }
                // gradient features reduce sensitivity to illumination
                var g = [Float](); g.reserveCapacity(3 * 56 * 55)
                for c in 0..<3 { for y in 0..<56 { for x in 0..<55 { g.append(v[(c * 56 + y) * 56 + x + 1] - v[(c * 56 + y) * 56 + x]) } } }
                feats.append(g); labels.append(s.label)
            }
            // class means from the first 8 images, test on the last 4
            var means = [[Float]](repeating: [Float](repeating: 0, count: feats[0].count), count: cfg.identities)
            for i in 0..<set.count where i % 12 < 8 { for k in feats[i].indices { means[labels[i]][k] += feats[i][k] / 8 } }
            var right = 0, total = 0
            for i in 0..<set.count where i % 12 >= 8 {
                let d = means.map { m in zip(m, feats[i]).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
                if d.firstIndex(of: d.min()!) == labels[i] { right += 1 }
                total += 1
            }
            acc[f] = Float(right) / Float(total)
        }
        print("nearest-mean pixel-gradient accuracy (30 ids, chance 0.033): x1 \(acc[1]!), x8 \(acc[8]!)")
        XCTAssertGreaterThan(acc[1]!, 0.1)
    }

    /// Writes a contact sheet of synthetic faces when KDTRAIN_DUMP names a folder (for looking at
    /// them); generation speed is measured by `kdtrain bench`, not here.
    func testContactSheetDump() throws {
        guard ProcessInfo.processInfo.environment["KDTRAIN_DUMP"] != nil else { throw XCTSkip("set KDTRAIN_DUMP=FOLDER to write a contact sheet") }
        if let dir = ProcessInfo.processInfo.environment["KDTRAIN_DUMP"] {
            let faces = SyntheticFaces(SyntheticConfig(width: 112, height: 112))
            var grid = FaceImage(width: 112 * 8, height: 112 * 6)
            for id in 0..<6 { for v in 0..<8 {
                let im = faces.render(key: UInt64(id), variation: UInt64(v))
                for y in 0..<112 { for x in 0..<112 { for c in 0..<3 {
                    grid.pixels[((id * 112 + y) * 896 + v * 112 + x) * 3 + c] = im.pixels[(y * 112 + x) * 3 + c] } } }
            } }
            try AtomicFile.write(try ImageCodec.encodePNG(grid), to: dir + "/synthetic.png")
        }
    }
}
