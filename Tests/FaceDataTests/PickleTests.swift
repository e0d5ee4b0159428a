// insightface .bin pickles: files written by Python (protocols 2-5, numpy arrays), hostile pickles
// refused without executing anything, the writer's round trip and malformed files.
import FaceData
import Foundation
import XCTest
import KDCore

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
        try AtomicFile.write(PickleBin.write(images: imgs, issame: [false, true]), to: dir + "/w.bin")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: py)
        p.arguments = ["-c", "import pickle,sys; b,s=pickle.load(open(sys.argv[1],'rb')); assert b==[b'\\x01\\x02',b'\\x03',b'\\x07'*300,b''] and s==[False,True], (b,s); print('ok')", dir + "/w.bin"]
        try p.run(); p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
    }

    /// Files whose images are numpy uint8 arrays, as insightface's build_eval_pack.py writes them
    /// (scripts/make_numpy_bin_fixture.py: protocols 2, 4 and 5 under numpy 2, and protocol 2 with
    /// numpy 1's module names). The arrays' bytes are the JPEGs of bin_p4.bin.
    func testReadsNumpyArrayBins() throws {
        let plain = try BinPairSet(path: try fixture("bin_p4.bin").path)
        for name in ["bin_numpy_p2.bin", "bin_numpy_p4.bin", "bin_numpy_p5.bin", "bin_numpy1_p2.bin"] {
            let set = try BinPairSet(path: try fixture(name).path)
            XCTAssertEqual(set.issame, plain.issame, name)
            XCTAssertEqual(set.encoded, plain.encoded, name)
            XCTAssertEqual(try set.image(5), try plain.image(5), name)
        }
    }

    /// Hand-built numpy pickles: numpy 1's _frombuffer name is accepted; every other dtype, a shape that
    /// does not match the bytes, another order, another module or a direct ndarray call is rejected.
    func testNumpyArraysAcceptedOnlyAsUint8() throws {
        func su(_ s: String) -> [UInt8] { [0x8C, UInt8(s.utf8.count)] + Array(s.utf8) }
        let m1: [UInt8] = [0x4A, 0xFF, 0xFF, 0xFF, 0xFF]
        func image(_ data: [UInt8], module: String = "numpy.core.numeric", dtype: String = "u1", shape: [Int]? = nil,
                   order: String = "C", dtypeState: [UInt8]? = nil) -> [UInt8] {
            var o = su(module) + su("_frombuffer") + [0x93, 0x28, 0x43, UInt8(data.count)] + data
            o += su("numpy") + su("dtype") + [0x93] + su(dtype) + [0x89, 0x88, 0x87, 0x52]
            o += dtypeState ?? ([0x28, 0x4B, 3] + su("|") + [0x4E, 0x4E, 0x4E] + m1 + m1 + [0x4B, 0, 0x74, 0x62])
            o += [0x28] + (shape ?? [data.count, 1]).flatMap { [0x4B, UInt8($0)] } + [0x74]
            return o + su(order) + [0x74, 0x52]
        }
        func bin(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { [0x80, 5, 0x5D, 0x28] + a + b + [0x65, 0x5D, 0x88, 0x61, 0x86, 0x2E] }
        let pgm = Array("P5 2 1 255\n".utf8) + [7, 9]
        let ok = try PickleBin.read(bin(image(pgm), image(pgm, order: "F")), name: "np1.bin")
        XCTAssertEqual(ok.images, [pgm, pgm]); XCTAssertEqual(ok.issame, [true])
        XCTAssertEqual(try ImageCodec.decode(ok.images[0]).pixels, [7, 7, 7, 9, 9, 9])
        assertThrowsDataError(.format, containing: "only dtype('u1')", try PickleBin.read(bin(image(pgm, dtype: "f4"), image(pgm)), name: "f.bin"))
        assertThrowsDataError(.format, containing: "shape has 14 elements but 13 bytes", try PickleBin.read(bin(image(pgm, shape: [14]), image(pgm)), name: "s.bin"))
        assertThrowsDataError(.format, containing: "'C' or 'F'", try PickleBin.read(bin(image(pgm, order: "K"), image(pgm)), name: "o.bin"))
        assertThrowsDataError(.format, containing: "refuses STACK_GLOBAL numpy.lib.numeric._frombuffer", try PickleBin.read(bin(image(pgm, module: "numpy.lib.numeric"), image(pgm)), name: "m.bin"))
        assertThrowsDataError(.format, containing: "dtype state", try PickleBin.read(bin(image(pgm, dtypeState: [0x28, 0x4B, 3] + su("<") + [0x74, 0x62]), image(pgm)), name: "d.bin"))
        // numpy.ndarray called directly, and BUILD on something that is not a numpy object
        let direct: [UInt8] = [0x80, 4] + su("numpy") + su("ndarray") + [0x93, 0x4B, 3, 0x85, 0x52, 0x2E]
        assertThrowsDataError(.format, containing: "REDUCE numpy.ndarray", try PickleBin.read(direct, name: "n.bin"))
        let build: [UInt8] = [0x80, 4, 0x5D, 0x29, 0x62, 0x2E]
        assertThrowsDataError(.format, containing: "BUILD at offset 4 on something other than a numpy", try PickleBin.read(build, name: "b.bin"))
        // a _reconstruct'ed array that is never built
        let unbuilt: [UInt8] = [0x80, 4, 0x5D, 0x28] + su("numpy.core.multiarray") + su("_reconstruct") + [0x93] + su("numpy") + su("ndarray") + [0x93, 0x4B, 0, 0x85, 0x43, 1, 0x62, 0x87, 0x52]
            + [0x43, 1, 0x31, 0x65, 0x5D, 0x88, 0x61, 0x86, 0x2E]
        assertThrowsDataError(.format, containing: "bins[0] is a numpy array whose data was never set", try PickleBin.read(unbuilt, name: "u.bin"))
    }
}
