// A 64-bit checksum of float buffers for replica consistency checks: exact over bit patterns
// (any single-bit difference in any element changes it with overwhelming probability), fast
// (four independent multiply-xorshift lanes), order-sensitive.

/// Checksum accumulator. Combine `params` and `buffers` (and momentum if wanted) then pass
/// `value` to `Communicator.verifyReplicas(checksum:what:)`.
public struct ReplicaChecksum: Sendable {
    private var lanes: (UInt64, UInt64, UInt64, UInt64) =
        (0x9E37_79B9_7F4A_7C15, 0xC2B2_AE3D_27D4_EB4F, 0x1656_67B1_9E37_79F9, 0x85EB_CA77_C2B2_AE63)
    private var length: UInt64 = 0

    public init() {}

    @inline(__always)
    private static func mix(_ h: UInt64, _ x: UInt64) -> UInt64 {
        var z = (h ^ x) &* 0xBF58_476D_1CE4_E5B9
        z ^= z >> 29
        return z
    }

    /// Adds `count` floats (their bit patterns, so -0 ≠ +0 and NaN payloads count).
    public mutating func combine(_ p: UnsafePointer<Float>, count: Int) {
        var i = 0
        var (a, b, c, d) = lanes
        while i + 8 <= count {
            let w = UnsafeRawPointer(p + i)
            a = Self.mix(a, w.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            b = Self.mix(b, w.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            c = Self.mix(c, w.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            d = Self.mix(d, w.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            i += 8
        }
        while i < count {
            a = Self.mix(a, UInt64(p[i].bitPattern) | (UInt64(i & 7) << 32))
            i += 1
        }
        lanes = (a, b, c, d)
        length &+= UInt64(count)
    }

    /// The checksum of everything combined so far.
    public var value: UInt64 {
        var h = length &* 0x9E37_79B9_7F4A_7C15
        h = Self.mix(h, lanes.0)
        h = Self.mix(h, lanes.1 &+ 0x1)
        h = Self.mix(h, lanes.2 &+ 0x2)
        h = Self.mix(h, lanes.3 &+ 0x3)
        return h ^ (h >> 32)
    }

    /// Checksum of one buffer.
    public static func of(_ p: UnsafePointer<Float>, count: Int) -> UInt64 {
        var c = ReplicaChecksum()
        c.combine(p, count: count)
        return c.value
    }
}
