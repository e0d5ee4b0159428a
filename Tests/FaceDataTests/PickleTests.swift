import FaceData
import Foundation
import XCTest

final class PickleTests: XCTestCase {
    struct Meta: Decodable { var issame: [Bool]; var sizes: [Int]; var first_pixels: [[Int]] }

    /// Files written by Python's pickle module (protocols 2-5) and a Python 2 style file.
    func testReadsPythonWrittenBins() throws {
        let meta = try JSONDecoder().decode(Meta.self, from: Data(contentsOf: try fixture("bin_images.json")))
        for name in ["bin_p2.bin", "bin_p3.bin", "bin_p4.bin", "bin_p5.bin", "bin_py2.bin"] {
            let set = try BinPairSet(path: try fixture(name).path)
            XCTAssertEqual(set.issame, meta.issame, name)
            XCTAssertEqual(set.encoded.map(\.count), meta.sizes, name)
            for j in 0..<6 {
                let img = try set.image(j)
                XCTAssertEqual(img.pixels[0..<3].map(Int.init), meta.first_pixels[j], "\(name) image \(j)")
            }
            XCTAssertEqual(set.foldRange(0), 0..<1)
        }
    }

    func testRejectsCodeExecutingPickles() throws {
        assertThrowsDataError(.format, containing: "refuses GLOBAL posix.system", try BinPairSet(path: try fixture("bin_evil.bin").path))
        // protocol-4 STACK_GLOBAL form and an INST opcode
        let sg: [UInt8] = [0x80, 4, 0x8C, 2] + Array("os".utf8) + [0x8C, 6] + Array("system".utf8) + [0x93, 0x2E]
        assertThrowsDataError(.format, containing: "refuses STACK_GLOBAL os.system", try PickleBin.read(sg, name: "sg.bin"))
        assertThrowsDataError(.format, containing: "unsupported pickle opcode 0x69", try PickleBin.read([0x80, 2, 0x69, 0x2E], name: "i.bin"))
    }

    func testWriterRoundTripAndMalformedFiles() throws {
        let imgs: [[UInt8]] = (0..<4).map { try! ImageCodec.encodeJPEG(face($0, 0)) }
        let bytes = PickleBin.write(images: imgs, issame: [true, false])
        let back = try PickleBin.read(bytes, name: "w.bin")
        XCTAssertEqual(back.images, imgs); XCTAssertEqual(back.issame, [true, false])
        // truncated anywhere: a clear error, never a crash
        for cut in [1, 2, 3, 10, bytes.count / 2, bytes.count - 1] {
            XCTAssertThrowsError(try PickleBin.read(Array(bytes.prefix(cut)), name: "t.bin"), "cut \(cut)")
        }
        assertThrowsDataError(.format, containing: "file ends", try PickleBin.read(Array(bytes.prefix(40)), name: "t.bin"))
        // image count not 2 x pairs
        let three: [UInt8] = [0x80, 4, 0x5D, 0x28, 0x43, 1, 9, 0x43, 1, 9, 0x43, 1, 9, 0x65, 0x5D, 0x28, 0x88, 0x89, 0x65, 0x86, 0x2E]
        assertThrowsDataError(.format, containing: "3 images for 2 pairs", try PickleBin.read(three, name: "c.bin"))
        // a length pointing past the end
        let huge: [UInt8] = [0x80, 3, 0x42, 0xFF, 0xFF, 0xFF, 0x7F, 0x2E]
        assertThrowsDataError(.format, containing: "BINBYTES needs 2147483647 bytes", try PickleBin.read(huge, name: "h.bin"))
    }

    /// When python3 is available (developer machines), check that Python's pickle loads our .bin.
    func testPythonLoadsWrittenBinWhenAvailable() throws {
        let py = ["/work/venv/bin/python", "/usr/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let py else { throw XCTSkip("no python3") }
        let dir = try tempDir(self)
        let imgs: [[UInt8]] = [[1, 2], [3], Array(repeating: 7, count: 300), []]
        try writeFileAtomically(dir + "/w.bin", PickleBin.write(images: imgs, issame: [false, true]))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: py)
        p.arguments = ["-c", "import pickle,sys; b,s=pickle.load(open(sys.argv[1],'rb')); assert b==[b'\\x01\\x02',b'\\x03',b'\\x07'*300,b''] and s==[False,True], (b,s); print('ok')", dir + "/w.bin"]
        try p.run(); p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
    }
}

