import FaceData
import Foundation
import XCTest

final class FolderAndPairsTests: XCTestCase {
    func testFolderSkipsBadFilesAndLabelsSortedNames() throws {
        let dir = try tempDir(self), root = dir + "/f"
        for (id, name) in ["bob", "Alice", "carol"].enumerated() {
            for v in 0..<3 { try write(try ImageCodec.encodePNG(face(id, v)), "\(root)/\(name)/\(v).png") }
        }
        try write(Array("notes".utf8), root + "/bob/readme.txt")
        let jpg = try ImageCodec.encodeJPEG(face(9, 9))
        try write(Array(jpg.prefix(jpg.count / 2)), root + "/carol/cut.jpg")
        try write(try ImageCodec.encodePNG(face(1, 1, size: 30)), root + "/carol/big.png")
        try write(Array(".".utf8), root + "/carol/.hidden")
        guard let f = try DataSource(parsing: "folder:\(root);size=24x24").trainingSet() as? ImageFolder else { return XCTFail() }
        XCTAssertEqual(f.classNames, ["Alice", "bob", "carol"])       // byte order: uppercase first
        XCTAssertEqual(f.count, 9)
        XCTAssertEqual(f.skipped.count, 3)
        let report = f.scanReport()
        XCTAssertTrue(report.contains("readme.txt: not an image"), report)
        XCTAssertTrue(report.contains("cut.jpg"), report)
        XCTAssertTrue(report.contains("big.png: size 30x30, expected 24x24"), report)
        XCTAssertEqual(try f.sample(3).label, 1)
        try f.writeLabels(to: dir + "/labels.tsv")
        XCTAssertEqual(try String(contentsOfFile: dir + "/labels.tsv", encoding: .utf8), "0\tAlice\n1\tbob\n2\tcarol\n")
        // strict mode names the first bad file
        assertThrowsDataError(.decode, containing: "bob/readme.txt", try ImageFolder(root: root, strict: true))
        // an identity folder with no usable image is an error
        try write(Array("x".utf8), root + "/dave/a.txt")
        assertThrowsDataError(.empty, containing: "dave", try ImageFolder(root: root))
        assertThrowsDataError(.io, containing: "no such folder", try ImageFolder(root: dir + "/missing"))
    }

    func testPairsTxtLFWStyle() throws {
        let dir = try tempDir(self), root = dir + "/lfw"
        for (id, name) in ["Ann_A", "Ben_B"].enumerated() {
            for v in 1...2 { try write(try ImageCodec.encodeJPEG(face(id, v)), "\(root)/\(name)/\(name)_\(String(format: "%04d", v)).jpg") }
        }
        try write(Array("1\t2\nAnn_A\t1\t2\nAnn_A\t1\tBen_B\t2\nAnn_A/Ann_A_0001.jpg Ben_B/Ben_B_0001.jpg 0\n".utf8), dir + "/pairs.txt")
        let src = try DataSource(parsing: "pairs:\(dir)/pairs.txt@\(root)")
        let p = try src.pairSet()
        XCTAssertEqual(p.issame, [true, false, false])
        XCTAssertEqual(try p.image(3), try ImageCodec.load(root + "/Ben_B/Ben_B_0002.jpg"))
        try write(Array("Ann_A 1 7\n".utf8), dir + "/bad.txt")
        assertThrowsDataError(.io, containing: "bad.txt:1", try PairsFile(list: dir + "/bad.txt", root: root))
        try write(Array("Ann_A one\n".utf8), dir + "/bad2.txt")
        assertThrowsDataError(.format, containing: "bad2.txt:1", try PairsFile(list: dir + "/bad2.txt", root: root))
    }

    func testGeneratedPairsAreBalancedFoldDisjointAndSeeded() throws {
        let set = try SyntheticTrainingSet(SyntheticConfig(identities: 40, imagesPerIdentity: 3))
        let p = try GeneratedPairSet(source: set, pairs: 200, seed: 5)
        XCTAssertEqual(p.pairCount, 200)
        XCTAssertEqual(p.issame.filter { $0 }.count, 100)
        var foldIds = [Set<Int>](repeating: [], count: 10)
        for i in 0..<200 {
            let a = try set.label(p.members[2 * i]), b = try set.label(p.members[2 * i + 1])
            XCTAssertEqual(a == b, p.issame[i]); XCTAssertNotEqual(p.members[2 * i], p.members[2 * i + 1])
            foldIds[p.fold(of: i)].formUnion([a, b])
        }
        for i in 0..<10 { for j in (i + 1)..<10 { XCTAssertTrue(foldIds[i].isDisjoint(with: foldIds[j]), "folds \(i),\(j)") } }
        XCTAssertEqual(try GeneratedPairSet(source: set, pairs: 200, seed: 5).members, p.members)
        XCTAssertNotEqual(try GeneratedPairSet(source: set, pairs: 200, seed: 6).members, p.members)
        let small = try SyntheticTrainingSet(SyntheticConfig(identities: 12, imagesPerIdentity: 3))
        assertThrowsDataError(.spec, containing: "identity-disjoint", try GeneratedPairSet(source: small, pairs: 20))
    }

    func testSyntheticPairsDisjointFromTraining() throws {
        let c = SyntheticConfig(identities: 50, imagesPerIdentity: 2, pairs: 100, verificationIdentities: 100)
        let p = try SyntheticPairSet(c)
        XCTAssertEqual(p.issame.filter { $0 }.count, 50)
        let train = try SyntheticTrainingSet(c)
        let trainImages = Set(try (0..<train.count).map { try train.sample($0).image.pixels })
        for j in 0..<20 { XCTAssertFalse(trainImages.contains(try p.image(j).pixels)) }
        // same pairs are two different images of one identity
        XCTAssertNotEqual(try p.image(0), try p.image(1))
    }

    /// Real faces: the ORL database (AT&T Laboratories Cambridge, formerly the Olivetti Research
    /// Laboratory), 40 people x 10 PGM images. Verification pairs generated from the folder run through
    /// the evaluation pipeline at x1 and x8, and through `kdtrain pack bin` and back.
    func testORLFacesThroughPairsPipeline() throws {
        let orl = try orlFolder()
        let src = try DataSource(parsing: "folder:\(orl);pairs=200;seed=3")
        let pairs = try src.pairSet()
        XCTAssertEqual(pairs.pairCount, 200)
        let loader = PairImageLoader(pairs: pairs, height: 56, width: 56, threads: 2)
        let x1 = try loader.loadAll(factor: 1), x8 = try loader.loadAll(factor: 8)
        XCTAssertEqual(x1.count, 400 * 3 * 56 * 56)
        XCTAssertTrue(x1.allSatisfy { $0 >= -1 && $0 <= 1 })
        // grayscale expanded: the three planes of an image are equal
        XCTAssertEqual(Array(x1[0..<3136]), Array(x1[3136..<6272]))
        // x8 removes detail: high-frequency energy drops a lot
        func hf(_ a: [Float]) -> Float { var s: Float = 0; for i in stride(from: 1, to: a.count, by: 1) where i % 56 != 0 { s += abs(a[i] - a[i - 1]) }; return s }
        XCTAssertLessThan(hf(x8), hf(x1) * 0.5)
        // simple pixel-distance verification: same pairs are closer than different ones on average at x1
        func dist(_ a: [Float], _ i: Int) -> Float {
            let n = 3 * 56 * 56; var s: Float = 0
            for k in 0..<n { let d = a[2 * i * n + k] - a[(2 * i + 1) * n + k]; s += d * d }
            return s
        }
        let same = (0..<200).filter { pairs.issame[$0] }.map { dist(x1, $0) }, diff = (0..<200).filter { !pairs.issame[$0] }.map { dist(x1, $0) }
        XCTAssertLessThan(same.reduce(0, +) / Float(same.count), diff.reduce(0, +) / Float(diff.count))
        // pack as .bin and read back
        let dir = try tempDir(self)
        try Packer.bin(from: pairs, to: dir + "/orl.bin", quality: 95, size: 56)
        let bin = try DataSource(parsing: "bin:\(dir)/orl.bin").pairSet()
        XCTAssertEqual(bin.issame, pairs.issame)
        XCTAssertEqual(try bin.image(0).width, 56)
    }
}
