// KDCore: the atomic file writer, SplitMix64 and FNV-1a against values computed in Python.
import Foundation
import KDCore
import XCTest

/// The one atomic writer every module uses: replaces whole files, leaves the old file and no
/// temporary behind on failure, and names the file in its error.
final class AtomicFileTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "kdcore-atomic-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func listing() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).sorted() }

    func testReplacesWholeFileAndLeavesNoTemporary() throws {
        let path = dir + "/a.bin"
        try AtomicFile.write([UInt8](repeating: 7, count: 100_000), to: path)
        try AtomicFile.write(Data("short".utf8), to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "short")
        XCTAssertEqual(try listing(), ["a.bin"])
        // A relative path in the current directory works too (the directory is ".").
        let cwd = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(dir))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
        try AtomicFile.write([1, 2, 3], to: "rel.bin")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/rel.bin")), Data([1, 2, 3]))
    }

    func testStreamedBodyFailureKeepsOldFile() throws {
        struct Boom: Error {}
        let path = dir + "/c.bin"
        try AtomicFile.write([1, 2, 3], to: path)
        XCTAssertThrowsError(try AtomicFile.write(to: path) { fd in
            try [UInt8](repeating: 9, count: 4096).withUnsafeBytes { try AtomicFile.writeAll(fd, $0, path: path) }
            throw Boom()
        }) { XCTAssertTrue($0 is Boom, "\($0)") }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data([1, 2, 3]))
        XCTAssertEqual(try listing(), ["c.bin"], "the temporary is removed")
    }

    func testMissingDirectoryNamesTheFile() {
        let path = dir + "/no/such/dir/results.json"
        XCTAssertThrowsError(try AtomicFile.write([1], to: path)) { error in
            guard let e = error as? AtomicWriteError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.path, path)
            XCTAssertTrue(e.what.contains("No such file or directory"), e.what)
            XCTAssertTrue("\(e)".hasPrefix(path + ": "), "\(e)")
        }
    }

    func testTargetIsADirectoryFailsAndLeavesItAlone() throws {
        let path = dir + "/sub"
        try FileManager.default.createDirectory(atPath: path + "/inner", withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write([1], to: path)) { error in
            XCTAssertTrue((error as? AtomicWriteError)?.what.hasPrefix("rename failed") ?? false, "\(error)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: path + "/inner"))
        XCTAssertEqual(try listing(), ["sub"])
    }

    func testTemporaryNamesAreRecognised() throws {
        // What the writer itself creates: capture the name from inside a streamed body.
        var seen: [String] = []
        try AtomicFile.write(to: dir + "/r.json") { _ in seen = try self.listing() }
        XCTAssertEqual(seen.count, 1)
        XCTAssertTrue(AtomicFile.isTemporary(seen[0]), seen[0])
        XCTAssertTrue(AtomicFile.isTemporary(".step-10.safetensors.tmp-123"))   // older writers
        for name in ["r.json", ".tmp-12", ".a.tmp-", ".a.tmp-12-x", ".a.tmp-1-2-3", "a.tmp-12"] {
            XCTAssertFalse(AtomicFile.isTemporary(name), name)
        }
    }
}

/// SplitMix64 and FNV-1a against values computed independently (Python, in the comment).
final class RandomTests: XCTestCase {
    func testSplitMix64MatchesReference() {
        // M=(1<<64)-1; s=(s+0x9E3779B97F4A7C15)&M; z=((z^(z>>30))*0xBF58476D1CE4E5B9)&M;
        // z=((z^(z>>27))*0x94D049BB133111EB)&M; z^(z>>31), from s = 0.
        var r = SplitMix64(seed: 0)
        XCTAssertEqual((0..<4).map { _ in r.next() },
                       [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F, 0xF88B_B8A8_724C_81EC])
        XCTAssertEqual(fnv1a64("kdtrain"), 0x8453_61CF_0946_FB88)
    }

    func testUniformBelowIsInRangeAndCoversIt() {
        var r = SplitMix64(seed: 42)
        var seen = Set<UInt64>()
        for _ in 0..<2000 { let x = r.uniform(below: 7); XCTAssertLessThan(x, 7); seen.insert(x) }
        XCTAssertEqual(seen.count, 7)
        for _ in 0..<2000 { let u = r.nextUnit(); XCTAssertTrue(u >= 0 && u < 1) }
    }
}
