// The small part of the protocol-buffers wire format that an ONNX file needs
// (https://protobuf.dev/programming-guides/encoding/): varints, 32-bit floats and
// length-delimited fields (strings, bytes, nested messages). Fields are written in the order the
// caller appends them; a nested message is built in its own writer and appended whole.

/// Protobuf wire types used here.
enum WireType: UInt64 {
    case varint = 0, fixed32 = 5, lengthDelimited = 2
}

/// Appends protobuf fields to a byte buffer.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    init() {}

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ field: Int, _ wire: WireType) {
        precondition(field >= 1 && field < 1 << 29, "protobuf field number \(field) out of range")
        varint(UInt64(field) << 3 | wire.rawValue)
    }

    /// An int32/int64/enum field (negative values take ten bytes, as protobuf specifies).
    mutating func int(_ field: Int, _ v: Int64) {
        tag(field, .varint); varint(UInt64(bitPattern: v))
    }

    mutating func float(_ field: Int, _ v: Float) {
        tag(field, .fixed32)
        let b = v.bitPattern.littleEndian
        for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * k))) }
    }

    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        tag(field, .lengthDelimited); varint(UInt64(b.count)); bytes.append(contentsOf: b)
    }

    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }

    mutating func message(_ field: Int, _ m: ProtobufWriter) { bytes(field, m.bytes) }

    /// A message built by `body` in a fresh writer.
    mutating func message(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var m = ProtobufWriter(); body(&m); message(field, m)
    }

    /// Float32 values as little-endian bytes (a TensorProto's raw_data).
    static func littleEndianBytes(_ values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 4)
        out.withUnsafeMutableBytes { dst in
            for (i, v) in values.enumerated() { dst.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        return out
    }

    static func littleEndianBytes(_ values: [Int64]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 8)
        out.withUnsafeMutableBytes { dst in
            for (i, v) in values.enumerated() { dst.storeBytes(of: v.littleEndian, toByteOffset: 8 * i, as: Int64.self) }
        }
        return out
    }
}
