// safetensors: read and write the format that the Python `safetensors` package and PyTorch use.
//
// File = u64 little-endian header length H, H bytes of JSON
//   { "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//     "__metadata__": {"key": "value", ...} }
// then the data section; offsets are relative to it, in order, non-overlapping, and cover it
// exactly. Only F32 (and I64/I32/U8 read as raw bytes) are produced by kdtrain.
import Foundation
import KDCore

/// A failure reading or writing a safetensors file; `description` is one line naming the file.
public struct SafeTensorsError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(_ path: String, _ reason: String) { self.path = oneLine(path); self.reason = oneLine(reason) }
    public var description: String { "\(path): \(reason)" }
}

/// One tensor of a safetensors file, as float32 values.
public struct NamedTensor: Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name; self.shape = shape; self.values = values
    }
}

public enum SafeTensors {
    /// The reference implementation refuses headers above 100 MB; so do we.
    public static let maxHeaderBytes = 100_000_000
    /// Most dimensions a tensor may have (PyTorch supports 64).
    public static let maxRank = 64

    /// A JSON number that is exactly an Int (not a boolean, not a fraction, not out of range).
    static func exactInt(_ v: Any) -> Int? {
        guard let n = v as? NSNumber else { return nil }
        if String(cString: n.objCType) == "c" { return nil }   // true / false
        return v as? Int
    }

    /// Serializes tensors (F32) and string metadata.
    public static func encode(_ tensors: [NamedTensor], metadata: [String: String] = [:]) -> Foundation.Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            precondition(t.shape.reduce(1, *) == t.values.count, "tensor \(t.name): shape \(t.shape) vs \(t.values.count) values")
            let bytes = t.values.count * 4
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }   // pad with spaces (allowed by the spec)
        var out = Foundation.Data(capacity: 8 + json.count + offset)
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors where !t.values.isEmpty {
            t.values.withUnsafeBufferPointer { buf in
                // Little-endian hosts only (x86_64, arm64); asserted at the top of `decode` too.
                out.append(UnsafeBufferPointer(start: UnsafeRawPointer(buf.baseAddress!)
                    .assumingMemoryBound(to: UInt8.self), count: buf.count * 4))
            }
        }
        return out
    }

    /// Parses a safetensors file. Every tensor is returned as float32 (F32 only; other dtypes
    /// are an error naming the tensor). Validates the header against the file size.
    public static func decode(_ data: Foundation.Data, path: String) throws -> (tensors: [NamedTensor], metadata: [String: String]) {
        precondition(1.littleEndian == 1, "big-endian hosts are not supported")
        guard data.count >= 8 else { throw SafeTensorsError(path, "truncated: \(data.count) bytes, no header length") }
        let hlen = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
        guard hlen <= UInt64(maxHeaderBytes) else { throw SafeTensorsError(path, "header length \(hlen) exceeds \(maxHeaderBytes)") }
        guard 8 + Int(hlen) <= data.count else {
            throw SafeTensorsError(path, "truncated: header says \(hlen) bytes but file has \(data.count - 8) after the length")
        }
        let headerData = data.subdata(in: 8..<(8 + Int(hlen)))
        guard let obj = try? JSONSerialization.jsonObject(with: headerData), let header = obj as? [String: Any] else {
            throw SafeTensorsError(path, "header is not a JSON object")
        }
        let dataStart = 8 + Int(hlen), dataLen = data.count - dataStart
        var metadata: [String: String] = [:]
        var specs: [(name: String, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw SafeTensorsError(path, "__metadata__ is not a map") }
                for (k, v) in m {
                    guard let s = v as? String else { throw SafeTensorsError(path, "metadata \(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let t = value as? [String: Any], let dtype = t["dtype"] as? String,
                  let shapeAny = t["shape"] as? [Any], let offs = t["data_offsets"] as? [Any], offs.count == 2 else {
                throw SafeTensorsError(path, "tensor \(name): malformed entry (needs dtype, shape, data_offsets)")
            }
            guard dtype == "F32" else { throw SafeTensorsError(path, "tensor \(name): dtype \(dtype), expected F32") }
            guard shapeAny.count <= maxRank else {
                throw SafeTensorsError(path, "tensor \(name): shape has \(shapeAny.count) dimensions, at most \(maxRank) are supported")
            }
            var shape: [Int] = []
            var count = 1
            for v in shapeAny {
                guard let i = exactInt(v) else { throw SafeTensorsError(path, "tensor \(name): shape entry \(v) is not an integer") }
                guard i >= 0 else { throw SafeTensorsError(path, "tensor \(name): shape \(shapeAny.map { "\($0)" }) has a negative dimension") }
                let (c, overflow) = count.multipliedReportingOverflow(by: i)
                guard !overflow, c <= Int.max / 4 else {
                    throw SafeTensorsError(path, "tensor \(name): shape \(shapeAny.map { "\($0)" }) has too many elements (more than \(Int.max / 4))")
                }
                shape.append(i); count = c
            }
            guard let b = exactInt(offs[0]), let e = exactInt(offs[1]), 0 <= b, b <= e else {
                throw SafeTensorsError(path, "tensor \(name): bad data_offsets \(offs.map { "\($0)" }) (need integers 0 <= begin <= end)")
            }
            guard e <= dataLen else {
                throw SafeTensorsError(path, "truncated or corrupt: tensor \(name): data_offsets [\(b), \(e)) end beyond the \(dataLen) data bytes of the file")
            }
            guard e - b == count * 4 else {
                throw SafeTensorsError(path, "tensor \(name): shape \(shape) needs \(count * 4) bytes, offsets give \(e - b)")
            }
            specs.append((name, shape, b, e))
        }
        specs.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for s in specs {
            guard s.begin == cursor else {
                throw SafeTensorsError(path, "tensor \(s.name): data_offsets [\(s.begin), \(s.end)) leave a gap or overlap at \(cursor)")
            }
            cursor = s.end
        }
        guard cursor == dataLen else {
            throw SafeTensorsError(path, cursor > dataLen ? "truncated: tensors need \(cursor) data bytes, file has \(dataLen)"
                                                          : "data section has \(dataLen - cursor) trailing bytes")
        }
        let tensors = data.withUnsafeBytes { raw -> [NamedTensor] in
            specs.map { s in
                let count = (s.end - s.begin) / 4
                if count == 0 { return NamedTensor(name: s.name, shape: s.shape, values: []) }
                let values = [Float](unsafeUninitializedCapacity: count) { buf, n in
                    memcpy(buf.baseAddress!, raw.baseAddress! + dataStart + s.begin, count * 4); n = count
                }
                return NamedTensor(name: s.name, shape: s.shape, values: values)
            }
        }
        return (tensors, metadata)
    }

    public static func read(path: String) throws -> (tensors: [NamedTensor], metadata: [String: String]) {
        let data: Foundation.Data
        do { data = try Foundation.Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) }
        catch { throw SafeTensorsError(path, "cannot read: \(error.localizedDescription)") }
        return try decode(data, path: path)
    }

    /// Writes atomically: a temporary file in the same folder, fsync, rename over `path`, fsync of
    /// the folder. A crash leaves either the old file or the new one, never a torn one.
    public static func write(_ tensors: [NamedTensor], metadata: [String: String] = [:], to path: String) throws {
        try AtomicFile.write(encode(tensors, metadata: metadata), to: path)
    }
}
