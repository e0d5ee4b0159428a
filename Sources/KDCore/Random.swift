// The PRNG and the string hash every module shares, so that seeds mean the same thing everywhere
// (parameter initialization, the distributed sampler, the test harness) and their output is
// stable across Swift versions and platforms.
import Foundation

/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast, portable PRNG whose whole state is one
/// UInt64 (easy to checkpoint). Every method below is defined here, not by the standard library,
/// so a seed gives the same numbers on every platform and Swift version.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    /// SplitMix64's output finalizer (also a good 64-bit mixing function on its own).
    @inline(__always) public static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always) public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal (Box-Muller).
    public mutating func nextGaussian() -> Double {
        let u1 = max(nextUnit(), 1e-300), u2 = nextUnit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// Uniform integer in 0..<bound without modulo bias (rejection), independent of the
    /// standard library's algorithm so shuffles are stable across Swift versions.
    public mutating func uniform(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "SplitMix64.uniform(below:) needs a positive bound")
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let x = next()
            if x < limit { return x % bound }
        }
    }
}

/// Stable 64-bit FNV-1a of a string (Swift's `hashValue` is randomized per process).
public func fnv1a64(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}
