// Network configuration bounds: presets within them, every out-of-range field named without a trap.
import XCTest
import Model

/// `NetworkConfig.problems` is the gate in front of every network built from untrusted numbers
/// (a checkpoint's metadata): it must name each bad field and never trap, whatever the values.
final class NetworkConfigLimitsTests: XCTestCase {
    func testPresetsAreWithinTheLimits() {
        for (name, c) in NetworkConfig.presets {
            XCTAssertEqual(c.problems(), [], name)
            XCTAssertLessThan(c.activationsPerImage, Double(NetworkConfig.maxActivationsPerImage) / 3, name)
        }
    }

    func testEveryFieldOutOfRangeIsNamedWithoutATrap() {
        let base = NetworkConfig.tiny
        let extremes = [Int.min, -1, 0, Int.max, 1 << 40]
        let cases: [(String, WritableKeyPath<NetworkConfig, Int>)] = [
            ("inputSize", \.inputSize), ("inputChannels", \.inputChannels), ("stemChannels", \.stemChannels),
            ("stemKernel", \.stemKernel), ("stemStride", \.stemStride), ("cardinality", \.cardinality),
            ("groupWidth", \.groupWidth), ("cbamReduction", \.cbamReduction), ("cbamKernel", \.cbamKernel),
            ("embeddingSize", \.embeddingSize),
        ]
        for (field, kp) in cases {
            for v in extremes {
                var c = base; c[keyPath: kp] = v
                let p = c.problems(prefix: "meta")
                XCTAssertFalse(p.isEmpty, "\(field) = \(v) accepted")
                XCTAssert(p.allSatisfy { $0.hasPrefix("meta: ") }, "\(p)")
                XCTAssert(p.contains { $0.contains(field) }, "\(field) = \(v): \(p)")
            }
        }
        let arrays: [(String, WritableKeyPath<NetworkConfig, [Int]>)] = [("depth", \.depths), ("width", \.widths), ("strides", \.strides)]
        for (field, kp) in arrays {
            for v in extremes {
                var c = base; c[keyPath: kp] = Array(repeating: v, count: c[keyPath: kp].count)
                let p = c.problems()
                XCTAssert(p.contains { $0.contains(field) }, "\(field) = \(v): \(p)")
            }
        }
        var c = base; c.dropout = .nan
        XCTAssert(c.problems().contains { $0.contains("dropout") })
        c = base; c.depths = Array(repeating: 1, count: 1000); c.widths = Array(repeating: 16, count: 1000); c.strides = Array(repeating: 1, count: 1000)
        XCTAssert(c.problems().contains { $0.contains("stages") }, "\(c.problems())")
    }

    func testUpperBoundsAreTheNamedConstants() {
        var c = NetworkConfig.tiny
        c.inputSize = NetworkConfig.maxInputSize + 1
        XCTAssert(c.problems().contains { $0.contains("inputSize \(NetworkConfig.maxInputSize + 1)") })
        c = .tiny; c.widths = [16, NetworkConfig.maxChannels * 2]
        XCTAssert(c.problems().contains { $0.contains("width") })
        c = .tiny; c.depths = [NetworkConfig.maxDepth + 1, 1]
        XCTAssert(c.problems().contains { $0.contains("depth") })
        // Each field within its bound, but the bottleneck width C x d x 2^i is not.
        c = .tiny; c.cardinality = 64; c.groupWidth = 128
        XCTAssert(c.problems().contains { $0.contains("bottleneck width") }, "\(c.problems())")
        // Every field within bounds, but the activations of one image are not: wide stages at full resolution.
        c = NetworkConfig(inputSize: 1024, stemChannels: 128, depths: [8, 8], widths: [1024, 1024], strides: [1, 1],
                          cardinality: 32, groupWidth: 8, cbamReduction: 16, cbamKernel: 7, embeddingSize: 512)
        XCTAssert(c.problems().contains { $0.contains("activation values") }, "\(c.problems())")
    }
}
