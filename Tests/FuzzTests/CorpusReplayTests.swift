// Replays the committed fuzz corpus (fuzz/corpus/<target>/) through the same entry points the libFuzzer
// harness uses, without fuzzer instrumentation. Every input must come back (a trap here kills the test
// process, a failure in itself), within a time bound, either accepted or rejected with one line naming
// the file or option; files named valid-* must be accepted.
import Foundation
import FuzzEntries
import XCTest

final class CorpusReplayTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz/corpus")

    /// Longest one corpus input may take (the fuzz runs use -timeout=10 with instrumentation).
    static let perInputSeconds = 5.0

    func files(_ target: String) throws -> [URL] {
        let dir = Self.corpus.appendingPathComponent(target)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }.sorted()
        return names.map { dir.appendingPathComponent($0) }
    }

    func replay(_ target: String, minimumFiles: Int = 5, minimumValid: Int = 2) throws {
        guard let entry = FuzzEntry.targets.first(where: { $0.name == target }) else { return XCTFail("no fuzz target \(target)") }
        let inputs = try files(target)
        XCTAssertGreaterThanOrEqual(inputs.count, minimumFiles, "fuzz/corpus/\(target) has too few seeds")
        var valid = 0, rejected = 0
        for url in inputs {
            let bytes = [UInt8](try Data(contentsOf: url))
            let start = Date()
            let outcome = entry.run(bytes)
            let took = Date().timeIntervalSince(start)
            XCTAssertLessThan(took, Self.perInputSeconds, "\(target)/\(url.lastPathComponent) took \(took) s")
            let name = url.lastPathComponent
            switch outcome {
            case .accepted:
                if name.hasPrefix("valid-") { valid += 1 }
            case .rejected(let m):
                rejected += 1
                XCTAssertFalse(name.hasPrefix("valid-"), "\(target)/\(name) must be accepted, got: \(m)")
                if let p = FuzzEntry.messageProblem(m, names: FuzzEntry.subjects(target)) { XCTFail("\(target)/\(name): \(p)") }
            }
        }
        XCTAssertGreaterThanOrEqual(valid, minimumValid, "fuzz/corpus/\(target): too few valid-* seeds accepted")
        XCTAssertGreaterThan(rejected, 0, "fuzz/corpus/\(target): no seed exercises a rejection")
    }

    func testPickleCorpus() throws { try replay("pickle") }
    func testRecordIOCorpus() throws { try replay("recordio") }
    func testSafeTensorsCorpus() throws { try replay("safetensors") }
    func testImageCorpus() throws { try replay("image") }
    func testConfigCorpus() throws { try replay("config") }

    /// Every target has a corpus folder and every corpus folder a target.
    func testCorpusFoldersMatchTargets() throws {
        let dirs = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).filter { !$0.hasPrefix(".") }.sorted()
        XCTAssertEqual(dirs, FuzzEntry.targets.map(\.name).sorted())
    }

    /// The message check the harness and the replay rely on rejects what it should.
    func testMessageProblem() {
        XCTAssertNil(FuzzEntry.messageProblem("fuzz.bin: truncated", names: ["fuzz.bin"]))
        XCTAssertNotNil(FuzzEntry.messageProblem("", names: ["fuzz.bin"]))
        XCTAssertNotNil(FuzzEntry.messageProblem("fuzz.bin: two\nlines", names: ["fuzz.bin"]))
        XCTAssertNotNil(FuzzEntry.messageProblem("no file named", names: ["fuzz.bin"]))
        // Scalars, not Characters: a combining mark (U+0731) joins the space or the line break before it.
        XCTAssertNil(FuzzEntry.messageProblem("--set \u{0731}x=3: unknown option", names: ["--set "]))
        XCTAssertNotNil(FuzzEntry.messageProblem("fuzz.bin: a\n\u{0731}b", names: ["fuzz.bin"]))
        XCTAssertNotNil(FuzzEntry.messageProblem("fuzz.bin: a\u{2028}b", names: ["fuzz.bin"]))
    }

    /// The entries feed the parsers: a valid seed altered in its first bytes is rejected.
    func testEntriesReachTheParsers() throws {
        for (target, seed) in [("pickle", "valid-p4.bin"), ("safetensors", "valid-two.safetensors"), ("image", "valid-rgb.png"),
                               ("recordio", "valid-sequential.in")] {
            guard let entry = FuzzEntry.targets.first(where: { $0.name == target }) else { return XCTFail("no fuzz target \(target)") }
            var bytes = [UInt8](try Data(contentsOf: Self.corpus.appendingPathComponent("\(target)/\(seed)")))
            XCTAssertEqual(entry.run(bytes), .accepted, "\(target)/\(seed)")
            for i in 1..<min(8, bytes.count) { bytes[i] ^= 0x5A }
            guard case .rejected = entry.run(bytes) else { return XCTFail("\(target)/\(seed) with its first bytes flipped was accepted") }
        }
        let config = FuzzEntry.targets.first(where: { $0.name == "config" })!
        guard case .rejected(let m) = config.run(Array("\u{0}optim.batch=\"x\"".utf8)) else { return XCTFail("config: a string batch was accepted") }
        XCTAssertTrue(m.contains("optim.batch"), m)
    }
}
