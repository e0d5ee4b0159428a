// safetensors read as untrusted input: overflowing shapes, bad dimensions and offsets, empty tensors.
import Foundation
import XCTest
import Model

/// Hand-made safetensors headers that lie about shapes and offsets: each is one error naming
/// the file and the tensor, never a trap or an allocation sized by the header.
final class SafeTensorsHardeningTests: XCTestCase {
    /// A file: u64 header length, the header text, `dataBytes` zero bytes.
    func file(header: String, dataBytes: Int) -> Data {
        var d = Data()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
        d.append(Data(header.utf8))
        d.append(Data(count: dataBytes))
        return d
    }

    func assertRejected(_ header: String, dataBytes: Int = 16, mentions: [String],
                        file f: StaticString = #filePath, line: UInt = #line) {
        let path = "/tmp/crafted-\(UUID().uuidString).safetensors"
        XCTAssertThrowsError(try SafeTensors.decode(file(header: header, dataBytes: dataBytes), path: path), file: f, line: line) { e in
            let s = "\(e)"
            XCTAssert(s.hasPrefix(path + ": "), "error does not name the file: \(s)", file: f, line: line)
            XCTAssertFalse(s.contains("\n"), "more than one line: \(s)", file: f, line: line)
            for m in mentions { XCTAssert(s.contains(m), "'\(m)' missing from: \(s)", file: f, line: line) }
        }
    }

    func testShapeWhoseElementCountOverflowsIsAnError() {
        // 2^62 * 4 elements overflows Int; before the fix the product trapped.
        assertRejected(#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#,
                       mentions: ["tensor w", "too many elements"])
        // Fits Int, but its byte count (x4) does not.
        assertRejected(#"{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]}}"#,
                       mentions: ["tensor w", "too many elements"])
        // Many moderate dimensions whose product overflows.
        let dims = Array(repeating: "1000000", count: 5).joined(separator: ",")
        assertRejected(#"{"w":{"dtype":"F32","shape":[\#(dims)],"data_offsets":[0,16]}}"#, mentions: ["tensor w", "too many elements"])
    }

    func testNegativeFractionalBooleanAndHugeDimensionsAreErrors() {
        assertRejected(#"{"w":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}}"#, mentions: ["tensor w", "negative dimension"])
        assertRejected(#"{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,16]}}"#, mentions: ["tensor w", "not an integer"])
        assertRejected(#"{"w":{"dtype":"F32","shape":[true,4],"data_offsets":[0,16]}}"#, mentions: ["tensor w", "not an integer"])
        assertRejected(#"{"w":{"dtype":"F32","shape":[1e30],"data_offsets":[0,16]}}"#, mentions: ["tensor w", "not an integer"])
        assertRejected(#"{"w":{"dtype":"F32","shape":[99999999999999999999999],"data_offsets":[0,16]}}"#, mentions: ["tensor w", "not an integer"])
        let rank = Array(repeating: "1", count: SafeTensors.maxRank + 1).joined(separator: ",")
        assertRejected(#"{"w":{"dtype":"F32","shape":[\#(rank)],"data_offsets":[0,4]}}"#, mentions: ["tensor w", "dimensions"])
    }

    func testDataOffsetsOutsideTheFileAreErrors() {
        // Consistent with the shape, but far beyond the 16 data bytes the file has.
        assertRejected(#"{"w":{"dtype":"F32","shape":[274877906944],"data_offsets":[0,1099511627776]}}"#,
                       mentions: ["tensor w", "beyond the 16 data bytes"])
        assertRejected(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[9223372036854775807,9223372036854775807]}}"#,
                       mentions: ["tensor w", "beyond"])
        assertRejected(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[-16,0]}}"#, mentions: ["tensor w", "data_offsets"])
        assertRejected(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}"#, mentions: ["tensor w", "data_offsets"])
        assertRejected(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,1e30]}}"#, mentions: ["tensor w", "data_offsets"])
        assertRejected(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,"16"]}}"#, mentions: ["tensor w", "data_offsets"])
    }

    func testEmptyTensorsDecodeAndRoundTrip() throws {
        let t = [NamedTensor(name: "empty", shape: [0, 3], values: []), NamedTensor(name: "x", shape: [2], values: [1, 2])]
        let back = try SafeTensors.decode(SafeTensors.encode(t), path: "mem")
        XCTAssertEqual(back.tensors.map(\.name).sorted(), ["empty", "x"])
        XCTAssertEqual(back.tensors.first { $0.name == "x" }?.values, [1, 2])
        XCTAssertEqual(back.tensors.first { $0.name == "empty" }?.shape, [0, 3])
    }
}
