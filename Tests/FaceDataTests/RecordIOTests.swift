// insightface RecordIO: pack and read both layouts, split records, legacy vector labels, .rec without
// .idx, malformed framing and corrupt images found when the set is opened (strict or skipped).
import FaceData
import Foundation
import XCTest

final class RecordIOTests: XCTestCase {
    /// A folder of 3 identities x 4 images in mixed formats.
    func makeFolder(_ root: String) throws {
        for id in 0..<3 {
            for v in 0..<4 {
                let img = face(id, v)
                let bytes: [UInt8] = v % 3 == 0 ? try ImageCodec.encodeJPEG(img) : v % 3 == 1 ? try ImageCodec.encodePNG(img) : ImageCodec.encodePPM(img)
                try write(bytes, "\(root)/person\(id)/\(v).\(["jpg", "png", "ppm"][v % 3])")
            }
        }
    }

    func testPackAndReadBothLayouts() throws {
        let dir = try tempDir(self)
        try makeFolder(dir + "/faces")
        let folder = try ImageFolder(root: dir + "/faces")
        XCTAssertEqual(folder.count, 12)
        for layout in [RecordSet.Layout.legacy, .scalar] {
            let rec = dir + "/\(layout.rawValue).rec"
            try Packer.rec(from: folder, to: rec, layout: layout)
            let set = try RecordSet(rec: rec)
            XCTAssertEqual(set.layout, layout)
            XCTAssertEqual(set.count, 12); XCTAssertEqual(set.classCount, 3)
            for i in 0..<12 {
                let s = try set.sample(i)
                XCTAssertEqual(s.label, Int(folder.labels[i]))
                let orig = try folder.sample(i).image
                let mad = zip(orig.pixels, s.image.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +) / orig.pixels.count
                XCTAssertLessThan(mad, 10, "\(layout) sample \(i)")   // PNG/PPM re-encoded as JPEG q95
            }
            // JPEG files are stored byte for byte.
            XCTAssertEqual(try set.encoded(0), try [UInt8](Data(contentsOf: URL(fileURLWithPath: folder.files[0]))))
        }
        // Legacy: header record written last and listed in the .idx; keys 1..N, identity records N+1..N+K.
        let idx = try String(contentsOfFile: dir + "/legacy.idx", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(idx.count, 12 + 3 + 1)
        XCTAssertTrue(idx.last!.hasPrefix("0\t"))
    }

    func testSplitRecordsJoinWithMagic() throws {
        let dir = try tempDir(self)
        let m: [UInt8] = [0x0a, 0x23, 0xd7, 0xce]
        // Payloads whose image bytes contain the magic at aligned offsets (start, middle, twice in a row, end).
        let images: [[UInt8]] = [m + [1, 2, 3, 4] + m + m + [5, 6, 7], [9, 9, 9, 9] + m, m, [1, 2, 3]]
        try RecordIO.write(rec: dir + "/s.rec", idx: dir + "/s.idx", layout: .scalar, count: images.count) { (label: $0, image: images[$0]) }
        let set = try RecordSet(rec: dir + "/s.rec", validateImages: false)
        for i in images.indices { XCTAssertEqual(try set.encoded(i), images[i], "record \(i)") }
        // The framed bytes really are split (continuation flags present).
        let framed = RecordIO.frame(RecordIO.pack(RecordIO.Header(label: 0), images[0]))
        let flags = stride(from: 0, to: framed.count - 7, by: 4).compactMap { o -> UInt32? in
            let w = framed[o..<o + 4].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            guard w == RecordIO.magic else { return nil }
            return framed[o + 4..<o + 8].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) } >> 29
        }
        XCTAssertEqual(flags, [1, 2, 2, 3])
    }

    func testMalformedRecordFilesGiveNamedErrors() throws {
        let dir = try tempDir(self)
        let imgs: [[UInt8]] = [[1, 2, 3, 4, 5], [0x0a, 0x23, 0xd7, 0xce, 8, 8, 8, 8, 8]]
        try RecordIO.write(rec: dir + "/a.rec", idx: dir + "/a.idx", layout: .scalar, count: 2) { (label: $0, image: imgs[$0]) }
        let rec = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/a.rec")))
        // offset past the end of the file
        try write(Array("0\t0\n1\t99999\n".utf8), dir + "/b.idx"); try write(rec, dir + "/b.rec")
        assertThrowsDataError(.format, containing: "key 1", try RecordSet(rec: dir + "/b.rec", validateImages: false))
        // bad idx line
        try write(Array("0\t0\nnonsense\n".utf8), dir + "/c.idx"); try write(rec, dir + "/c.rec")
        assertThrowsDataError(.format, containing: "c.idx:2", try RecordSet(rec: dir + "/c.rec", validateImages: false))
        // bad magic
        var bad = rec; bad[0] ^= 0xFF
        try write(bad, dir + "/d.rec"); try write(Array("0\t0\n".utf8), dir + "/d.idx")
        assertThrowsDataError(.format, containing: "bad magic", try RecordSet(rec: dir + "/d.rec", validateImages: false))
        // unterminated split record: cut the file inside record 1 (which is split)
        let idx = try RecordIO.readIndex(dir + "/a.idx")
        try write(Array(rec.prefix(idx[1].offset + 12)), dir + "/e.rec"); try write(Array("0\t\(idx[1].offset)\n".utf8), dir + "/e.idx")
        assertThrowsDataError(.format, containing: "past the end", try RecordSet(rec: dir + "/e.rec", validateImages: false))
        // a missing .rec is reported as such, even when its .idx exists
        try write(Array("0\t0\n".utf8), dir + "/none.idx")
        assertThrowsDataError(.io, containing: "none.rec: no such file (the .rec file is missing)", try RecordSet(rec: dir + "/none.rec"))
        assertThrowsDataError(.io, containing: "nothing.rec: no such file", try RecordSet(rec: dir + "/nothing.rec"))
        // non-integer label
        try RecordIO.write(rec: dir + "/f.rec", idx: dir + "/f.idx", layout: .scalar, count: 1) { _ in (label: 0, image: [1]) }
        var f = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/f.rec")))
        withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian) { for k in 0..<4 { f[12 + k] = $0[k] } }
        try write(f, dir + "/f.rec")
        assertThrowsDataError(.format, containing: "label 1.5", try RecordSet(rec: dir + "/f.rec", validateImages: false))
    }
    /// The face2rec2 form of the legacy layout, written by hand: vector labels [class, 1.0] on the images,
    /// identity records, and the header record (id2 = 1) appended at the end of the file.
    func testLegacyVectorLabelsWrittenByHand() throws {
        let dir = try tempDir(self)
        let imgs = try (0..<5).map { try ImageCodec.encodeJPEG(face($0 / 3, $0)) }    // classes 0,0,0,1,1
        var rec = [UInt8](), idx = ""
        func emit(_ key: Int, _ h: RecordIO.Header, _ img: [UInt8]) {
            idx += "\(key)\t\(rec.count)\n"; rec += RecordIO.frame(RecordIO.pack(h, img))
        }
        for (i, im) in imgs.enumerated() { emit(i + 1, RecordIO.Header(id: UInt64(i + 1), labels: [Float(i / 3), 1]), im) }
        emit(6, RecordIO.Header(id: 6, labels: [1, 4]), []); emit(7, RecordIO.Header(id: 7, labels: [4, 6]), [])
        emit(0, RecordIO.Header(id: 0, id2: 1, labels: [6, 8]), [])
        try write(rec, dir + "/v.rec"); try write(Array(idx.utf8), dir + "/v.idx")
        let set = try RecordSet(rec: dir + "/v.rec")
        XCTAssertEqual(set.layout, .legacy); XCTAssertEqual(set.count, 5); XCTAssertEqual(set.classCount, 2)
        XCTAssertEqual(set.labels, [0, 0, 0, 1, 1])
        XCTAssertEqual(try set.encoded(4), imgs[4])
        // a header that promises more identities than its labels use is fine; one that promises fewer is not
        var bad = [UInt8](), bidx = ""
        for (i, im) in imgs.enumerated() { bidx += "\(i + 1)\t\(bad.count)\n"; bad += RecordIO.frame(RecordIO.pack(RecordIO.Header(labels: [Float(i / 3), 1]), im)) }
        bidx += "0\t\(bad.count)\n"; bad += RecordIO.frame(RecordIO.pack(RecordIO.Header(labels: [6, 7]), []))
        try write(bad, dir + "/w.rec"); try write(Array(bidx.utf8), dir + "/w.idx")
        assertThrowsDataError(.format, containing: "declares 1 identities but an image has label 1", try RecordSet(rec: dir + "/w.rec"))
    }

    /// A .rec without .idx (MXRecordIO's sequential form, what rec2shufrec.py writes) is read in file
    /// order; identity and header records of the legacy layout are recognized and dropped.
    func testRecWithoutIdxIsReadSequentially() throws {
        let dir = try tempDir(self)
        try makeFolder(dir + "/faces")
        let folder = try ImageFolder(root: dir + "/faces")
        for layout in [RecordSet.Layout.legacy, .scalar] {
            let rec = dir + "/\(layout.rawValue).rec"
            try Packer.rec(from: folder, to: rec, layout: layout)
            let indexed = try RecordSet(rec: rec)
            try FileManager.default.removeItem(atPath: dir + "/\(layout.rawValue).idx")
            let seq = try DataSource(parsing: "rec:\(rec)").trainingSet()
            guard let s = seq as? RecordSet else { return XCTFail() }
            XCTAssertFalse(s.indexed); XCTAssertTrue(indexed.indexed)
            XCTAssertEqual(s.count, 12, "\(layout)"); XCTAssertEqual(s.classCount, 3)
            XCTAssertEqual(s.labels, indexed.labels)
            for i in 0..<12 { XCTAssertEqual(try s.encoded(i), try indexed.encoded(i), "\(layout) sample \(i)") }
            XCTAssertTrue(s.summary.contains("no .idx: read sequentially"), s.summary)
        }
        // shuffled order, vector labels, no header: labels come from each record
        let imgs = try (0..<4).map { try ImageCodec.encodeJPEG(face($0 % 2, $0)) }
        var rec = [UInt8]()
        for i in [3, 0, 2, 1] { rec += RecordIO.frame(RecordIO.pack(RecordIO.Header(id: UInt64(i), labels: [Float(i % 2), 1]), imgs[i])) }
        try write(rec, dir + "/shuf.rec")
        let s = try RecordSet(rec: dir + "/shuf.rec")
        XCTAssertEqual(s.labels, [1, 0, 0, 1])
        XCTAssertEqual(try s.encoded(0), imgs[3])
        // trailing garbage and a cut record are errors naming the offset
        try write(rec + [1, 2, 3], dir + "/tail.rec")
        assertThrowsDataError(.format, containing: "3 trailing bytes at offset \(rec.count)", try RecordSet(rec: dir + "/tail.rec"))
        try write(Array(rec.prefix(rec.count - 10)), dir + "/cut.rec")
        assertThrowsDataError(.format, containing: "past the end of the file", try RecordSet(rec: dir + "/cut.rec"))
        assertThrowsDataError(.io, containing: "is a folder, expected a .rec file", try RecordSet(rec: dir + "/faces"))
        XCTAssertEqual(mkfifo(dir + "/fifo.rec", 0o644), 0)
        assertThrowsDataError(.io, containing: "fifo.rec: is not a regular file", try RecordSet(rec: dir + "/fifo.rec"))
        XCTAssertEqual(mkfifo(dir + "/fifo.bin", 0o644), 0)
        assertThrowsDataError(.io, containing: "fifo.bin: is not a regular file", try BinPairSet(path: dir + "/fifo.bin"))
    }

    /// A .rec whose framing is fine but whose images are corrupt: found when the set is opened (skipped
    /// and reported, or an error in strict mode), never at a training step.
    func testCorruptImageInRecIsFoundWhenOpened() throws {
        let dir = try tempDir(self)
        let imgs = try (0..<6).map { try ImageCodec.encodeJPEG(face($0 % 3, $0, size: 32)) }
        var bad = imgs
        bad[2][0] = 0; bad[2][1] = 0                                     // no JPEG signature any more
        let mid = bad[4].count / 2
        bad[4][mid] = 0xFF; bad[4][mid + 1] = 0xD9                      // end-of-image marker inside the scan
        try RecordIO.write(rec: dir + "/c.rec", idx: dir + "/c.idx", layout: .scalar, count: 6) { (label: $0 % 3, image: bad[$0]) }
        let t = try DataSource(parsing: "rec:\(dir)/c.rec").trainingSet()
        guard let s = t as? RecordSet else { return XCTFail() }
        XCTAssertEqual(s.count, 4)
        XCTAssertEqual(s.skipped.map(\.path), ["\(dir)/c.rec key 2", "\(dir)/c.rec key 4"])
        for i in 0..<4 { XCTAssertNoThrow(try s.sample(i)) }
        XCTAssertEqual(s.labels, [0, 1, 0, 2])
        XCTAssertTrue(s.summary.contains("2 records left out (2 unreadable image)"), s.summary)
        XCTAssertTrue(s.scanReport().contains("skipped \(dir)/c.rec key 2: not a JPEG, PNG or PGM/PPM image"), s.scanReport())
        try s.writeSkipped(to: dir + "/skipped.tsv")
        XCTAssertEqual(try String(contentsOfFile: dir + "/skipped.tsv", encoding: .utf8).split(separator: "\n").count, 3)
        assertThrowsDataError(.decode, containing: "c.rec key 2: not a JPEG", try RecordSet(rec: dir + "/c.rec", strict: true))
        // The same as a data source option: rec:PATH;strict (and its canonical spec round-trips).
        assertThrowsDataError(.decode, containing: "c.rec key 2: not a JPEG", try DataSource(parsing: "rec:\(dir)/c.rec;strict").trainingSet())
        XCTAssertEqual(try DataSource(parsing: "rec:\(dir)/c.rec;strict").description, "rec:\(dir)/c.rec;strict")
        XCTAssertThrowsError(try DataSource(parsing: "rec:\(dir)/c.rec;strikt")) { XCTAssert("\($0)".contains("unknown rec option 'strikt' (strict)"), "\($0)") }
        // every image corrupt: one line saying so
        try RecordIO.write(rec: dir + "/all.rec", idx: dir + "/all.idx", layout: .scalar, count: 2) { (label: $0, image: [1, 2, 3]) }
        assertThrowsDataError(.empty, containing: "all.rec: no usable image: all 2 image records left out (2 unreadable image)", try RecordSet(rec: dir + "/all.rec"))
    }
}
