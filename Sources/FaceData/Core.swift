// FaceData core types: errors, the per-sample random generator, and the 8-bit image.
//
// Legend: H height, W width, C channels (always 3, RGB). An 8-bit image is stored interleaved
// (H, W, C); float images handed to the trainer are planar (C, H, W), batches (N, C, H, W).
import Foundation
import KDCore

/// Every failure caused by bad input (a malformed spec, a missing or corrupt file). One line,
/// naming the file or field; library code throws these and never traps on bad input.
public struct DataError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// What kind of failure; tests and the launcher may switch on it.
    public enum Kind: String, Sendable { case spec, io, format, decode, empty, unsupported }
    public var kind: Kind
    /// The file, field or spec the message is about ("" when none).
    public var subject: String
    public var message: String
    public init(_ kind: Kind, _ subject: String, _ message: String) {
        // One line each, whatever the file held (see KDCore.oneLine).
        self.kind = kind; self.subject = oneLine(subject); self.message = oneLine(message)
    }
    public var description: String { subject.isEmpty ? message : "\(subject): \(message)" }
    public var errorDescription: String? { description }
}

/// KDCore's SplitMix64 with keyed seeding and float helpers: tiny, fast, and good enough for
/// augmentation and procedural faces. Every sample derives its own generator from (seed, stream,
/// epoch, index) with `Rng(seed:_:)`, never from a shared stream, so results do not depend on
/// thread count, rank or load order.
public struct Rng: Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    /// A generator keyed by several integers (mixed with SplitMix's finalizer between keys).
    public init(seed: UInt64, _ keys: UInt64...) {
        var s = Rng.mix(seed &+ 0x9E37_79B9_7F4A_7C15)
        for k in keys { s = Rng.mix(s ^ Rng.mix(k &+ 0xD1B5_4A32_D192_ED03)) }
        state = s
    }
    @inline(__always) static func mix(_ z: UInt64) -> UInt64 { SplitMix64.mix(z) }
    @inline(__always) public mutating func next() -> UInt64 {
        var g = SplitMix64(seed: state)
        defer { state = g.state }
        return g.next()
    }
    /// Uniform in [0, 1).
    @inline(__always) public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
    /// Uniform in [lo, hi).
    @inline(__always) public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * uniform() }
    /// Uniform integer in 0..<n (n > 0).
    @inline(__always) public mutating func int(_ n: Int) -> Int { Int((next() >> 1) % UInt64(max(n, 1))) }
    /// Standard normal (Box-Muller).
    public mutating func gaussian() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }
    public mutating func bernoulli(_ p: Float) -> Bool { uniform() < p }
}

/// An 8-bit RGB image, interleaved (H, W, 3). Grayscale sources are expanded to three channels.
public struct FaceImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// (H, W, 3) bytes, row-major.
    public var pixels: [UInt8]
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "FaceImage: pixel count does not match size")
        self.width = width; self.height = height; self.pixels = pixels
    }
    public init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height * 3))
    }
    /// Planar floats (3, H, W) in 0...255.
    public func planarFloats() -> [Float] {
        let n = width * height
        var out = [Float](repeating: 0, count: 3 * n)
        pixels.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<n {
                    o[i] = Float(p[3 * i]); o[n + i] = Float(p[3 * i + 1]); o[2 * n + i] = Float(p[3 * i + 2])
                }
            }
        }
        return out
    }
    /// Builds an image from planar floats (3, H, W), rounding and clamping to 0...255.
    public init(planar: UnsafeBufferPointer<Float>, width: Int, height: Int) {
        let n = width * height
        precondition(planar.count >= 3 * n)
        var px = [UInt8](repeating: 0, count: 3 * n)
        px.withUnsafeMutableBufferPointer { o in
            for i in 0..<n {
                for c in 0..<3 { o[3 * i + c] = UInt8(max(0, min(255, (planar[c * n + i]).rounded()))) }
            }
        }
        self.init(width: width, height: height, pixels: px)
    }
}

/// Reads a whole file, turning failures into a `DataError` naming the path.
func readFile(_ path: String) throws -> [UInt8] {
    var st = stat()
    if stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG, (st.st_mode & S_IFMT) != S_IFDIR {
        throw DataError(.io, path, "is not a regular file (a pipe or device would block reading)")
    }
    guard let d = readAll(path) else {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            throw DataError(.io, path, isDir.boolValue ? "is a folder, expected a file" : "cannot be read")
        }
        throw DataError(.io, path, "no such file")
    }
    return d
}

/// The bytes of a file through open/read, nil when it cannot be opened or read (a folder included).
/// Not FileManager.contents(atPath:): on Linux that leaks a 4 KiB buffer for every empty file it reads
/// (found by the recordio fuzz target: an empty .idx).
private func readAll(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var st = stat()
    var out = [UInt8]()
    if fstat(fd, &st) == 0, st.st_size > 0 { out.reserveCapacity(Int(st.st_size)) }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let r = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if r < 0 && errno == EINTR { continue }
        guard r >= 0 else { return nil }
        if r == 0 { return out }
        out.append(contentsOf: chunk[0..<r])
    }
}

/// Reads a whole file of at most `maxBytes` bytes; a larger file is an error naming it, before anything
/// is read (so a stray multi-gigabyte file among images costs nothing).
func readFile(_ path: String, maxBytes: Int) throws -> [UInt8] {
    var st = stat()
    if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size) > maxBytes {
        throw DataError(.decode, path, "file of \(Int(st.st_size)) bytes is larger than the \(maxBytes >> 20) MiB kdtrain reads as one image")
    }
    let b = try readFile(path)
    guard b.count <= maxBytes else { throw DataError(.decode, path, "file of \(b.count) bytes is larger than the \(maxBytes >> 20) MiB kdtrain reads as one image") }
    return b
}

/// The first (up to) `n` bytes of a file.
func readPrefix(_ path: String, _ n: Int) throws -> [UInt8] {
    guard let h = FileHandle(forReadingAtPath: path) else { return try readFile(path) }  // readFile names the failure
    defer { try? h.close() }
    do { return [UInt8](try h.read(upToCount: n) ?? Data()) } catch { throw DataError(.io, path, "cannot be read") }
}

