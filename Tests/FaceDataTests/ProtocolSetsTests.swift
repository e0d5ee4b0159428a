// The identification folders (TinyFace layout) and the positive/negative pair lists (SurvFace): labels from
// file names, order, and one clear error naming the folder, file or list line for each kind of bad input.
import FaceData
import Foundation
import XCTest

final class ProtocolSetsTests: XCTestCase {
    func png(_ path: String, key: Int = 1, variation: Int = 0) throws {
        try write(try ImageCodec.encodePNG(face(key, variation)), path)
    }

    /// A TinyFace-shaped root: Probe/{1_1, 2_1}, Gallery_Match/{1_2, 1_3, 2_2}, Gallery_Distractor/{1_9, x}
    /// (a distractor named like identity 1 still matches nothing), plus a README that is ignored.
    func tinyFace(_ root: String) throws {
        for (dir, names) in [("Probe", ["2_1.png", "1_1.png"]), ("Gallery_Match", ["1_2.png", "2_2.png", "1_3.png"]),
                             ("Gallery_Distractor", ["1_9.png", "x.png"])] {
            for (k, n) in names.enumerated() { try png("\(root)/\(dir)/\(n)", key: k) }
        }
        try write(Array("notes".utf8), root + "/Probe/README.txt")
    }

    func testTinyFaceLayoutLabelsAndOrder() throws {
        let root = try tempDir(self)
        try tinyFace(root)
        let s = try IdentificationSet(spec: "tinyface:\(root)/")
        XCTAssertEqual(s.probes.map { URL(fileURLWithPath: $0).lastPathComponent }, ["1_1.png", "2_1.png"])
        XCTAssertEqual(s.gallery.map { URL(fileURLWithPath: $0).lastPathComponent }, ["1_2.png", "1_3.png", "2_2.png", "1_9.png", "x.png"])
        XCTAssertEqual(s.identities, ["1", "2"])
        XCTAssertEqual(s.probeLabels, [0, 1])
        XCTAssertEqual(s.galleryLabels, [0, 0, 1, -1, -1])
        XCTAssertEqual(s.matchCount, 3)
        XCTAssertEqual(s.distractorCount, 2)
        XCTAssertEqual(s.ignored, 1)
        XCTAssertEqual(s.probeDir, root + "/Probe")
        // Explicit folders, without distractors.
        let f = try IdentificationSet(spec: "folders:\(root)/Probe,\(root)/Gallery_Match")
        XCTAssertEqual(f.gallery.count, 3)
        XCTAssertEqual(f.galleryLabels, [0, 0, 1])
        XCTAssertNil(f.distractorDir)
    }

    func testIdentityPrefix() {
        XCTAssertEqual(IdentificationSet.identity(ofFile: "/a/b/17_3.jpg"), "17")
        XCTAssertEqual(IdentificationSet.identity(ofFile: "a_b_c.jpg"), "a")
        XCTAssertNil(IdentificationSet.identity(ofFile: "/a/b_c/17.jpg"))
        XCTAssertNil(IdentificationSet.identity(ofFile: "_3.jpg"))
    }

    func testIdentificationBadInputs() throws {
        let root = try tempDir(self)
        try tinyFace(root)
        // Specs.
        assertThrowsDataError(.spec, containing: "expected tinyface:ROOT or folders:", try IdentificationSet(spec: root))
        assertThrowsDataError(.spec, containing: "PROBE,MATCH", try IdentificationSet(spec: "folders:\(root)/Probe"))
        assertThrowsDataError(.spec, containing: "needs the Testing_Set folder", try IdentificationSet(spec: "tinyface:"))
        // A missing folder is named.
        assertThrowsDataError(.io, containing: "\(root)/nope/Gallery_Match: no such folder (the gallery match folder)",
                              try IdentificationSet(probe: root + "/Probe", match: root + "/nope/Gallery_Match", distractor: nil))
        // tinyface: needs all three folders.
        let two = root + "/two"
        try png(two + "/Probe/1_1.png"); try png(two + "/Gallery_Match/1_2.png")
        assertThrowsDataError(.io, containing: "\(two)/Gallery_Distractor: no such folder (the gallery distractor folder)",
                              try IdentificationSet(spec: "tinyface:\(two)"))
        // An empty probe folder.
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        assertThrowsDataError(.empty, containing: "\(root)/empty: no probe images",
                              try IdentificationSet(probe: root + "/empty", match: root + "/Gallery_Match", distractor: nil))
        // A probe identity absent from the gallery: the probe file and the gallery folder are named.
        try png(root + "/Probe/3_1.png")
        assertThrowsDataError(.spec, containing: "\(root)/Probe/3_1.png: probe identity '3' has no image in the gallery match folder",
                              try IdentificationSet(spec: "tinyface:\(root)"))
        try FileManager.default.removeItem(atPath: root + "/Probe/3_1.png")
        // A probe without an identity prefix.
        try png(root + "/Probe/7.png")
        assertThrowsDataError(.format, containing: "\(root)/Probe/7.png: file name has no identity prefix",
                              try IdentificationSet(spec: "tinyface:\(root)"))
        try FileManager.default.removeItem(atPath: root + "/Probe/7.png")
        // An unsupported image format.
        try write([0x42, 0x4D, 0, 0], root + "/Gallery_Distractor/y.bmp")
        assertThrowsDataError(.unsupported, containing: "y.bmp: unsupported image format .bmp", try IdentificationSet(spec: "tinyface:\(root)"))
    }

    func testPairListsOrderAndBadLines() throws {
        let root = try tempDir(self)
        for n in ["a/1.png", "a/2.png", "b/1.png"] { try png(root + "/img/" + n) }
        try write(Array("# positives\na/1.png a/2.png\n\n".utf8), root + "/pos.txt")
        try write(Array("a/1.png\tb/1.png\r\n\(root)/img/a/2.png b/1.png  # absolute path\n".utf8), root + "/neg.txt")
        let s = try ListPairSet(spec: "\(root)/pos.txt,\(root)/neg.txt@\(root)/img")
        XCTAssertEqual(s.pairCount, 3)
        XCTAssertEqual(s.positives, 1)
        XCTAssertEqual(s.issame, [true, false, false])
        XCTAssertEqual(s.paths.map { String($0.dropFirst(root.count + 5)) }, ["a/1.png", "a/2.png", "a/1.png", "b/1.png", "a/2.png", "b/1.png"])
        XCTAssertEqual(try s.image(3), face(1, 0))
        // Bad specs and lines: one message naming the list and line.
        assertThrowsDataError(.spec, containing: "expected POSITIVE_LIST,NEGATIVE_LIST@IMAGE_ROOT", try ListPairSet(spec: "\(root)/pos.txt@\(root)/img"))
        assertThrowsDataError(.spec, containing: "expected POSITIVE_LIST,NEGATIVE_LIST@IMAGE_ROOT", try ListPairSet(spec: "\(root)/pos.txt,\(root)/neg.txt"))
        try write(Array("a/1.png a/2.png\na/1.png a/2.png 1\n".utf8), root + "/bad.txt")
        assertThrowsDataError(.format, containing: "\(root)/bad.txt:2: expected two image paths 'PATH1 PATH2', got 3 field(s)",
                              try ListPairSet(positive: root + "/bad.txt", negative: root + "/neg.txt", root: root + "/img"))
        try write(Array("a/1.png a/9.png\n".utf8), root + "/missing.txt")
        assertThrowsDataError(.io, containing: "\(root)/missing.txt:1: no image \(root)/img/a/9.png",
                              try ListPairSet(positive: root + "/pos.txt", negative: root + "/missing.txt", root: root + "/img"))
        try write(Array("# nothing\n\n".utf8), root + "/empty.txt")
        assertThrowsDataError(.empty, containing: "\(root)/empty.txt: no pairs",
                              try ListPairSet(positive: root + "/pos.txt", negative: root + "/empty.txt", root: root + "/img"))
        assertThrowsDataError(.io, containing: "no such folder (the image root", try ListPairSet(positive: root + "/pos.txt", negative: root + "/neg.txt", root: root + "/x"))
        XCTAssertThrowsError(try ListPairSet(positive: root + "/nolist.txt", negative: root + "/neg.txt", root: root + "/img")) {
            XCTAssert("\($0)".contains("nolist.txt"), "\($0)")
        }
    }
}
