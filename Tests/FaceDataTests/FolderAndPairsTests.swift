// Image folders (labels, skipped files, size checks) and pair sets: LFW-style pairs.txt (also with
// Windows line ends), generated identity-disjoint pairs, synthetic pairs, ORL faces end to end.
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
        // strict mode names the first unreadable image; readme.txt is not an image, so it does not count
        assertThrowsDataError(.decode, containing: "carol/cut.jpg: JPEG", try ImageFolder(root: root, strict: true))
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

    func testPairsTxtWithWindowsLineEndsReadsTheSamePairs() throws {
        let dir = try tempDir(self), root = dir + "/lfw"
        for (id, name) in ["Ann_A", "Ben_B"].enumerated() {
            for v in 1...2 { try write(try ImageCodec.encodeJPEG(face(id, v)), "\(root)/\(name)/\(name)_\(String(format: "%04d", v)).jpg") }
        }
        let lines = ["1\t3", "Ann_A\t1\t2", "Ann_A\t1\tBen_B\t2", "Ann_A/Ann_A_0001.jpg Ben_B/Ben_B_0001.jpg 0"]
        try write(Array((lines.joined(separator: "\n") + "\n").utf8), dir + "/unix.txt")
        try write(Array((lines.joined(separator: "\r\n") + "\r\n").utf8), dir + "/windows.txt")
        let unix = try PairsFile(list: dir + "/unix.txt", root: root)
        let windows = try PairsFile(list: dir + "/windows.txt", root: root)
        XCTAssertEqual(windows.issame, [true, false, false])
        XCTAssertEqual(windows.paths, unix.paths)
        // A mistake on a later line keeps its line number.
        try write(Array("Ann_A 1 2\r\nAnn_A one\r\n".utf8), dir + "/bad.txt")
        assertThrowsDataError(.format, containing: "bad.txt:2", try PairsFile(list: dir + "/bad.txt", root: root))
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

    /// Images are chosen by extension (case-insensitive), as torchvision's ImageFolder does; other files
    /// are ignored and counted, formats kdtrain cannot read are named; `;bycontent` reads every file.
    func testFolderChoosesImagesByExtensionUnlessByContent() throws {
        let dir = try tempDir(self), root = dir + "/f"
        let pgm = Array("P5 24 24 255\n".utf8) + [UInt8](repeating: 90, count: 576)
        for id in ["a", "b"] {
            try write(try ImageCodec.encodePNG(face(1, 1)), "\(root)/\(id)/one.PNG")
            try write(try ImageCodec.encodeJPEG(face(1, 2)), "\(root)/\(id)/two.JPeG")
            try write(pgm, "\(root)/\(id)/three.pgm")
        }
        try write(pgm, root + "/a/old.pgm.bad")
        try write(Array("about these faces".utf8), root + "/a/README.txt")
        try write(Array("x".utf8), root + "/a/notes")
        try FileManager.default.createDirectory(atPath: root + "/b/more", withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo(root + "/b/pipe.jpg", 0o644), 0)          // reading it would block the scan
        let f = try ImageFolder(root: root)
        XCTAssertEqual(f.count, 6)
        XCTAssertEqual(f.skipped.map { ($0.path as NSString).lastPathComponent }, ["README.txt", "notes", "old.pgm.bad", "more", "pipe.jpg"])
        XCTAssertEqual(Set(f.skipped.map(\.kind)), [.otherFile, .misplaced])
        XCTAssertTrue(f.summary.contains("5 files left out (3 not an image file, 2 outside the identity folders)"), f.summary)
        XCTAssertTrue(f.scanReport().contains("old.pgm.bad: not an image file (extension .bad)"), f.scanReport())
        // strict means "no unreadable image", not "no other file"
        XCTAssertEqual(try ImageFolder(root: root, strict: true).count, 6)
        // by content: the .pgm.bad file is an image; README and notes are still ignored
        guard let c = try DataSource(parsing: "folder:\(root);bycontent").trainingSet() as? ImageFolder else { return XCTFail() }
        XCTAssertEqual(c.count, 7); XCTAssertTrue(c.byContent)
        XCTAssertEqual(c.skipped.filter { $0.kind == .otherFile }.map { ($0.path as NSString).lastPathComponent }, ["README.txt", "notes"])
        // a GIF (by extension, or by content) is named as unsupported, and is an error in strict mode
        let gif = Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0, 0x3B]
        try write(gif, root + "/b/anim.gif")
        try write(gif, root + "/b/looks.jpg")
        let g = try ImageFolder(root: root)
        XCTAssertEqual(g.skipped.filter { $0.kind == .unsupported }.map(\.reason), ["GIF is not supported; convert to PNG or JPEG", "GIF is not supported; convert to PNG or JPEG"])
        assertThrowsDataError(.unsupported, containing: "b/anim.gif: GIF is not supported; convert to PNG or JPEG", try ImageFolder(root: root, strict: true))
        // the same report through the protocol the pipeline can use for folders and .rec files alike
        let reporting: any SkipReporting = g
        XCTAssertEqual(reporting.scanReport(), g.scanReport(limit: 50))
        // the full list of files left out, for the run directory
        try reporting.writeSkipped(to: dir + "/skipped.tsv")
        let lines = try String(contentsOfFile: dir + "/skipped.tsv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 1 + g.skipped.count)
        XCTAssertEqual(lines[0], "path\tkind\treason")
        XCTAssertTrue(lines.contains("\(root)/a/README.txt\tnot an image file\tnot an image file (extension .txt)"), "\(lines)")
        XCTAssertTrue(lines.contains("\(root)/b/anim.gif\tunsupported format\tGIF is not supported; convert to PNG or JPEG"), "\(lines)")
    }

    /// A folder whose images are all left out says why, with counts per reason.
    func testFolderWithNoUsableImageSaysWhy() throws {
        let dir = try tempDir(self)
        let pgm = Array("P5 2 2 255\n".utf8) + [1, 2, 3, 4]
        for id in ["x", "y"] { for v in 0..<2 { try write(pgm, "\(dir)/bad/\(id)/\(v).pgm.bad") } }
        assertThrowsDataError(.empty, containing: "no usable image in any of the 2 identity folders: 4 files left out (4 not an image file); images are recognized by extension (.jpg .jpeg .png .pgm .ppm .pnm), add ;bycontent",
                              try ImageFolder(root: dir + "/bad"))
        XCTAssertEqual(try ImageFolder(root: dir + "/bad", byContent: true).count, 4)
        try write(try ImageCodec.encodePNG(face(1, 1)), dir + "/mixed/ok/1.png")
        try write(Array("GIF87a".utf8) + [0, 0], dir + "/mixed/broken/1.gif")
        try write(Array("P5 24 24 255\n".utf8) + [1, 2, 3], dir + "/mixed/broken/2.pgm")
        try write(Array("hello".utf8), dir + "/mixed/broken/3.txt")
        assertThrowsDataError(.empty, containing: "mixed/broken: identity folder has no usable image: 3 files left out (1 not an image file, 1 unsupported format, 1 unreadable image)",
                              try ImageFolder(root: dir + "/mixed"))
    }

    /// Images whose size differs from the folder's majority are listed: the loader stretches them.
    func testFolderReportsImagesOfAnotherSize() throws {
        let dir = try tempDir(self)
        for id in 0..<2 { for v in 0..<3 { try write(try ImageCodec.encodePNG(face(id, v)), "\(dir)/f/p\(id)/\(v).png") } }
        let odd = FaceImage(width: 30, height: 20)
        try write(try ImageCodec.encodePNG(odd), dir + "/f/p1/wide.png")
        let f = try ImageFolder(root: dir + "/f")
        XCTAssertEqual(f.count, 7)
        XCTAssertEqual(f.majoritySize, DataSource.Size(width: 24, height: 24))
        XCTAssertEqual(f.offSizeImages.map(\.path), [dir + "/f/p1/wide.png"])
        let r = f.scanReport()
        XCTAssertTrue(r.contains("1 images are not 24x24 like most of this folder; they are stretched"), r)
        XCTAssertTrue(r.contains("size 30x20: \(dir)/f/p1/wide.png"), r)
        try FileManager.default.removeItem(atPath: dir + "/f/p1/wide.png")
        XCTAssertFalse(try ImageFolder(root: dir + "/f").scanReport().contains("images are not"))
    }

    func testFolderPathThatIsAFileSaysSo() throws {
        let dir = try tempDir(self)
        try write(Array("x".utf8), dir + "/faces.zip")
        assertThrowsDataError(.io, containing: "faces.zip: is a file, not a folder", try DataSource(parsing: "folder:\(dir)/faces.zip").trainingSet())
        assertThrowsDataError(.io, containing: "missing: no such folder", try ImageFolder(root: dir + "/missing"))
    }

    /// A training set with one identity is refused when opened (the margin head needs two classes).
    func testSingleIdentityTrainingSetIsRefused() throws {
        let dir = try tempDir(self)
        for v in 0..<3 { try write(try ImageCodec.encodePNG(face(0, v)), "\(dir)/one/only/\(v).png") }
        assertThrowsDataError(.empty, containing: "\(dir)/one: only 1 identity; training needs at least 2",
                              try DataSource(parsing: "folder:\(dir)/one").trainingSet())
        let imgs = try (0..<3).map { try ImageCodec.encodeJPEG(face(0, $0)) }
        try RecordIO.write(rec: dir + "/one.rec", idx: dir + "/one.idx", layout: .scalar, count: 3) { (label: 0, image: imgs[$0]) }
        assertThrowsDataError(.empty, containing: "one.rec: only 1 identity; training needs at least 2",
                              try DataSource(parsing: "rec:\(dir)/one.rec").trainingSet())
        // the legacy layout (header record, identity records) with a single identity
        try RecordIO.write(rec: dir + "/l.rec", idx: dir + "/l.idx", layout: .legacy, count: 3) { (label: 0, image: imgs[$0]) }
        XCTAssertEqual(try RecordSet(rec: dir + "/l.rec").count, 3)
        assertThrowsDataError(.empty, containing: "only 1 identity", try DataSource(parsing: "rec:\(dir)/l.rec").trainingSet())
        // two identities are fine
        try write(try ImageCodec.encodePNG(face(1, 0)), "\(dir)/one/second/0.png")
        XCTAssertEqual(try DataSource(parsing: "folder:\(dir)/one").trainingSet().classCount, 2)
    }

    /// `pack rec --size` resizes to a square side and writes insightface's property file and a label map;
    /// without --size, images of several sizes are refused. `pack bin` without --size refuses non-square images.
    func testPackRecSizePropertyAndPackBinSquareness() throws {
        let dir = try tempDir(self)
        for id in 0..<3 { for v in 0..<2 { try write(try ImageCodec.encodeJPEG(face(id, v)), "\(dir)/f/id\(id)/\(v).jpg") } }
        try write(try ImageCodec.encodePNG(FaceImage(width: 30, height: 20)), dir + "/f/id2/wide.png")
        let f = try ImageFolder(root: dir + "/f")
        assertThrowsDataError(.spec, containing: "wide.png: is 30x20 but most images of", try Packer.rec(from: f, to: dir + "/out/train.rec"))
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        try Packer.rec(from: f, to: dir + "/out/train.rec", size: 32)
        let set = try RecordSet(rec: dir + "/out/train.rec")
        XCTAssertEqual(set.count, 7)
        for i in 0..<7 { let im = try set.sample(i).image; XCTAssertEqual([im.width, im.height], [32, 32]) }
        XCTAssertEqual(try String(contentsOfFile: dir + "/out/property", encoding: .utf8), "3,32,32\n")
        XCTAssertEqual(try String(contentsOfFile: dir + "/out/labels.tsv", encoding: .utf8), "0\tid0\n1\tid1\n2\tid2\n")
        // without --size and one size: property states it, JPEGs stored as they are
        try FileManager.default.removeItem(atPath: dir + "/f/id2/wide.png")
        try FileManager.default.createDirectory(atPath: dir + "/keep", withIntermediateDirectories: true)
        let g = try ImageFolder(root: dir + "/f")
        try Packer.rec(from: g, to: dir + "/keep/train.rec")
        XCTAssertEqual(try String(contentsOfFile: dir + "/keep/property", encoding: .utf8), "3,24,24\n")
        XCTAssertEqual(try RecordSet(rec: dir + "/keep/train.rec").encoded(0), try [UInt8](Data(contentsOf: URL(fileURLWithPath: g.files[0]))))

        struct NonSquare: PairSet {
            var pairCount: Int { 1 }
            var issame: [Bool] { [true] }
            func image(_ j: Int) throws -> FaceImage { FaceImage(width: 20, height: 24) }
            var summary: String { "non-square pairs" }
        }
        assertThrowsDataError(.spec, containing: "non-square pairs image 0: is 20x24, not square; give --size",
                              try Packer.bin(from: NonSquare(), to: dir + "/ns.bin"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/ns.bin"))
        try Packer.bin(from: NonSquare(), to: dir + "/ns.bin", size: 16)
        let back = try BinPairSet(path: dir + "/ns.bin")
        XCTAssertEqual([try back.image(1).width, try back.image(1).height], [16, 16])
    }
}
