// The replica checksum sees any one-ulp change anywhere, including the tail after the 8-float blocks.
import XCTest
import KDCore

final class ReplicaChecksumTests: XCTestCase {
    func testChecksumDetectsEverySingleUlpChange() {
        let n = 37
        var values = (0..<n).map { Float($0) * 0.37 - 2 }
        let base = values.withUnsafeBufferPointer { ReplicaChecksum.of($0.baseAddress!, count: n) }
        XCTAssertEqual(base, values.withUnsafeBufferPointer { ReplicaChecksum.of($0.baseAddress!, count: n) })
        var seen = Set([base])
        for i in 0..<n {
            let saved = values[i]
            values[i] = saved.nextUp
            let c = values.withUnsafeBufferPointer { ReplicaChecksum.of($0.baseAddress!, count: n) }
            XCTAssertNotEqual(c, base, "a one-ulp change at \(i) went unnoticed")
            seen.insert(c)
            values[i] = saved
        }
        XCTAssertEqual(seen.count, n + 1)
    }

    func testChecksumSeesSwapsSignOfZeroAndLength() {
        var a: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        let c0 = a.withUnsafeBufferPointer { ReplicaChecksum.of($0.baseAddress!, count: a.count) }
        a.swapAt(0, 9)
        XCTAssertNotEqual(c0, a.withUnsafeBufferPointer { ReplicaChecksum.of($0.baseAddress!, count: a.count) })
        let z: [Float] = [0], nz: [Float] = [-0.0]
        XCTAssertNotEqual(z.withUnsafeBufferPointer { ReplicaChecksum.of($0.baseAddress!, count: 1) },
                          nz.withUnsafeBufferPointer { ReplicaChecksum.of($0.baseAddress!, count: 1) })
        let zeros = [Float](repeating: 0, count: 16)
        XCTAssertNotEqual(zeros.withUnsafeBufferPointer { ReplicaChecksum.of($0.baseAddress!, count: 8) },
                          zeros.withUnsafeBufferPointer { ReplicaChecksum.of($0.baseAddress!, count: 16) })
    }
}
