// insightface / MXNet RecordIO training sets (.rec + .idx): reading both layouts and writing them.
// Layout facts: /work/shared/formats.md. Little-endian throughout. A .rec without its .idx (what
// MXRecordIO and insightface's rec2shufrec.py write) is read sequentially instead.
//
// Record: uint32 magic 0xced7230a, uint32 lrecord (cflag in bits 29-31, length in the low 29 bits),
// payload, zero padding to 4 bytes. A payload containing the magic at a 4-byte-aligned offset is split
// there into parts (cflag 1 first, 2 middle, 3 last); the reader re-inserts the magic between parts.
// Payload: IRHeader 'IfQQ' (flag, label, id, id2: 24 bytes), then `flag` float32 labels when flag > 0,
// then the encoded image.
import Dispatch
import Foundation
import KDCore

public enum RecordIO {
    public static let magic: UInt32 = 0xced7230a

    /// The 24-byte IRHeader plus the optional label vector.
    public struct Header: Equatable, Sendable {
        public var flag: UInt32
        public var label: Float
        public var id: UInt64
        public var id2: UInt64
        public var labels: [Float]
        public init(flag: UInt32 = 0, label: Float = 0, id: UInt64 = 0, id2: UInt64 = 0, labels: [Float] = []) {
            self.flag = flag; self.label = label; self.id = id; self.id2 = id2; self.labels = labels
        }
    }

    /// Packs a payload: header (flag = labels.count when labels is not empty), labels, image bytes.
    public static func pack(_ h: Header, _ image: [UInt8]) -> [UInt8] {
        var out = [UInt8](); out.reserveCapacity(24 + 4 * h.labels.count + image.count)
        func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func put64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put32(h.labels.isEmpty ? h.flag : UInt32(h.labels.count)); put32(h.label.bitPattern); put64(h.id); put64(h.id2)
        for l in h.labels { put32(l.bitPattern) }
        out.append(contentsOf: image)
        return out
    }

    /// Splits a payload into header and image bytes. `name` names the record in errors.
    public static func unpack(_ p: [UInt8], name: String) throws -> (Header, ArraySlice<UInt8>) {
        guard p.count >= 24 else { throw DataError(.format, name, "record payload of \(p.count) bytes is shorter than the 24-byte IRHeader") }
        let flag = le32(p, 0)
        var h = Header(flag: flag, label: Float(bitPattern: le32(p, 4)), id: le64(p, 8), id2: le64(p, 16))
        guard flag <= 1 << 20, 24 + 4 * Int(flag) <= p.count else {
            throw DataError(.format, name, "IRHeader flag \(flag) announces more labels than the \(p.count)-byte payload holds")
        }
        h.labels = (0..<Int(flag)).map { Float(bitPattern: le32(p, 24 + 4 * $0)) }
        return (h, p[(24 + 4 * Int(flag))...])
    }

    @inline(__always) static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
    @inline(__always) static func le64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(le32(b, o)) | UInt64(le32(b, o + 4)) << 32 }

    /// Frames a payload as one or more records, splitting at aligned magic words as MXNet's writer does.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out = [UInt8](); out.reserveCapacity(payload.count + 16)
        func part(_ cflag: UInt32, _ s: ArraySlice<UInt8>) {
            withUnsafeBytes(of: magic.littleEndian) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: (cflag << 29 | UInt32(s.count)).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: s)
            out.append(contentsOf: [UInt8](repeating: 0, count: (4 - s.count % 4) % 4))
        }
        var start = 0, i = 0
        let aligned = payload.count & ~3
        while i < aligned {
            if le32(payload, i) == magic {
                part(start == 0 ? 1 : 2, payload[start..<i]); start = i + 4
            }
            i += 4
        }
        part(start == 0 ? 0 : 3, payload[start...])
        return out
    }

    /// Parses an .idx file: key -> byte offset, in file order.
    public static func readIndex(_ path: String) throws -> [(key: Int, offset: Int)] {
        let bytes = try readFile(path)
        var out = [(key: Int, offset: Int)]()
        var line = 1
        for raw in bytes.split(separator: 10, omittingEmptySubsequences: false) {
            defer { line += 1 }
            let s = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespaces.union(.init(charactersIn: "\r")))
            if s.isEmpty { continue }
            let f = s.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard f.count == 2, let k = Int(f[0]), let o = Int(f[1]), k >= 0, o >= 0 else {
                throw DataError(.format, "\(path):\(line)", "expected 'key<TAB>offset', got '\(s.prefix(60))'")
            }
            out.append((k, o))
        }
        guard !out.isEmpty else { throw DataError(.empty, path, "index has no entries") }
        return out
    }
}

/// Random access to the records of a .rec file through positioned reads (thread-safe: pread).
public final class RecordFile: @unchecked Sendable {
    // @unchecked: the descriptor is only used with pread, which has no shared file position.
    public let path: String
    let fd: Int32
    public let size: Int
    public init(path: String) throws {
        var pre = stat()
        if stat(path, &pre) == 0, (pre.st_mode & S_IFMT) != S_IFREG, (pre.st_mode & S_IFMT) != S_IFDIR {
            throw DataError(.io, path, "is not a regular file (a pipe or device would block reading)")
        }
        fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw DataError(.io, path, errno == ENOENT ? "no such file (the .rec file is missing)" : "cannot open: \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw DataError(.io, path, "cannot stat") }
        guard (st.st_mode & S_IFMT) != S_IFDIR else { close(fd); throw DataError(.io, path, "is a folder, expected a .rec file") }
        self.path = path; size = Int(st.st_size)
    }
    deinit { close(fd) }

    func readExactly(_ n: Int, at off: Int, what: String) throws -> [UInt8] {
        guard off >= 0, n >= 0, off + n <= size else {
            throw DataError(.format, path, "\(what): \(n) bytes at offset \(off) run past the end of the file (\(size) bytes)")
        }
        var b = [UInt8](repeating: 0, count: n)
        var got = 0
        while got < n {
            let r = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, n - got, off_t(off + got)) }
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { throw DataError(.io, path, "\(what): read failed at offset \(off + got)") }
            got += r
        }
        return b
    }

    /// The payload of the record starting at `offset`, joining split parts. `key` names it in errors.
    public func payload(at offset: Int, key: Int) throws -> [UInt8] { try record(at: offset, key: key).payload }

    /// Offsets of every record, walking the file from the start (for a .rec without .idx).
    /// - Throws: `DataError(.format, path, ...)` naming the offset of a bad record or trailing bytes.
    public func sequentialOffsets() throws -> [Int] {
        var offs = [Int](), off = 0
        while off < size {
            if size - off < 8 {
                let tail = try readExactly(size - off, at: off, what: "end of file")
                if tail.allSatisfy({ $0 == 0 }) { break }
                throw DataError(.format, path, "\(size - off) trailing bytes at offset \(off) are not a record")
            }
            offs.append(off)
            off = try record(at: off, key: offs.count - 1, readPayload: false).end
        }
        return offs
    }

    /// The payload of the record at `offset` (joined parts; empty when `readPayload` is false) and the
    /// offset just past it.
    func record(at offset: Int, key: Int, readPayload: Bool = true) throws -> (payload: [UInt8], end: Int) {
        var out = [UInt8](), off = offset, first = true
        while true {
            let what = "record key \(key) at offset \(offset)"
            let h = try readExactly(8, at: off, what: what)
            guard RecordIO.le32(h, 0) == RecordIO.magic else {
                throw DataError(.format, path, "\(what): bad magic 0x\(String(RecordIO.le32(h, 0), radix: 16)) at offset \(off)")
            }
            let l = RecordIO.le32(h, 4), cflag = l >> 29, len = Int(l & ((1 << 29) - 1))
            if first { guard cflag == 0 || cflag == 1 else { throw DataError(.format, path, "\(what): starts with continuation flag \(cflag)") } }
            else {
                guard cflag == 2 || cflag == 3 else { throw DataError(.format, path, "\(what): split record interrupted by flag \(cflag) at offset \(off)") }
                if readPayload { withUnsafeBytes(of: RecordIO.magic.littleEndian) { out.append(contentsOf: $0) } }
            }
            guard off + 8 + len <= size else {
                throw DataError(.format, path, "\(what): \(first ? "" : "split ")record part of \(len) bytes at offset \(off) runs past the end of the file (\(size) bytes)")
            }
            if readPayload { out.append(contentsOf: try readExactly(len, at: off + 8, what: what)) }
            off += 8 + ((len + 3) & ~3)
            if cflag == 0 || cflag == 3 { return (out, min(off, size)) }
            first = false
        }
    }
}

/// A .rec/.idx training set in either insightface layout, or a .rec without .idx read sequentially.
///
/// Opening it reads every record once: labels are collected and (by default) every image is decoded,
/// in parallel, so a corrupt image is found here rather than at training step N. Records whose image
/// cannot be decoded are left out and reported (`skipped`, `scanReport`, `writeSkipped(to:)`), or, with
/// `strict`, the first one is an error naming its key. Framing and label errors are always errors.
public struct RecordSet: TrainingSet, SkipReporting {
    public enum Layout: String, Sendable { case legacy, scalar }
    public let recPath: String
    public let layout: Layout
    /// False when there was no .idx and the records were read in file order (keys are record positions).
    public let indexed: Bool
    let file: RecordFile
    /// Byte offset, key and label of each usable image, in key order.
    let offsets: [Int]
    /// The record key of each usable image (its .idx key, or its position when read sequentially).
    public let keys: [Int]
    public let labels: [Int32]
    public let classCount: Int
    /// Image records left out (path "REC key K").
    public let skipped: [SkippedFile]

    /// Opens `rec` with the index `idx` (default: the same path with .idx; when that does not exist the
    /// file is read sequentially). - Parameters: strict: an undecodable image is an error instead of a
    /// skip; validateImages: decode every image once (false: only the framing and labels are checked);
    /// threads: decoding threads. - Throws: `DataError` naming the file and the key.
    public init(rec: String, idx: String? = nil, strict: Bool = false, validateImages: Bool = true, threads: Int = 2) throws {
        let file = try RecordFile(path: rec)
        let idxPath = idx ?? ((rec as NSString).deletingPathExtension + ".idx")
        let indexed = idx != nil || FileManager.default.fileExists(atPath: idxPath)
        var imageKeys: [Int], byKey = [Int: Int]()
        var layout = Layout.scalar
        var declaredClasses: Int? = nil
        /// Keys whose record may be a metadata record (no image, label vector) to drop rather than read.
        var metadataAllowed = false
        if indexed {
            let index = try RecordIO.readIndex(idxPath)
            for e in index {
                guard byKey[e.key] == nil else { throw DataError(.format, idxPath, "key \(e.key) listed twice") }
                guard e.offset < file.size else { throw DataError(.format, idxPath, "key \(e.key): offset \(e.offset) is past the end of \(rec) (\(file.size) bytes)") }
                byKey[e.key] = e.offset
            }
            if let o0 = byKey[0], case let (h0, img0) = try RecordIO.unpack(try file.payload(at: o0, key: 0), name: "\(rec) key 0"), h0.flag > 0, img0.isEmpty {
                guard h0.labels.count >= 2, h0.labels[0] >= 1, h0.labels[1] >= h0.labels[0], h0.labels[1] <= 16_777_216, h0.labels[0] == h0.labels[0].rounded(), h0.labels[1] == h0.labels[1].rounded() else {
                    throw DataError(.format, "\(rec) key 0", "legacy header record has labels \(h0.labels), expected [N+1, N+1+K]")
                }
                let end = Int(h0.labels[0])
                layout = .legacy
                declaredClasses = Int(h0.labels[1]) - end
                // Checked before the key list is built: a tiny file may promise 2^24 keys.
                if let k = (1..<end).first(where: { byKey[$0] == nil }) {
                    throw DataError(.format, idxPath, "legacy header promises image keys 1..<\(end) but key \(k) is missing")
                }
                imageKeys = Array(1..<end)
            } else {
                imageKeys = byKey.keys.sorted()
            }
        } else {
            let offs = try file.sequentialOffsets()
            guard !offs.isEmpty else { throw DataError(.empty, rec, "no records (and no .idx next to it)") }
            for (k, o) in offs.enumerated() { byKey[k] = o }
            imageKeys = Array(offs.indices)
            metadataAllowed = true
        }
        // Read every image record (in parallel): label, and a decode check of the image.
        enum Item { case image(Int32, SkippedFile?), metadata, failed(DataError) }
        let n = imageKeys.count, parts = max(1, min(threads, n)), keysCopy = imageKeys, offsCopy = byKey, metaOK = metadataAllowed
        nonisolated(unsafe) var items = [Item](repeating: .metadata, count: n)
        items.withUnsafeMutableBufferPointer { ib in
            nonisolated(unsafe) let v = ib
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                for j in stride(from: part, to: n, by: parts) {
                    let k = keysCopy[j], name = "\(rec) key \(k)"
                    do {
                        let (h, img) = try RecordIO.unpack(try file.payload(at: offsCopy[k]!, key: k), name: name)
                        if metaOK, h.flag > 0, img.isEmpty { v[j] = .metadata; continue }
                        let l = h.flag > 0 ? (h.labels.first ?? -1) : h.label
                        guard l >= 0, l < 16_777_216, l == l.rounded() else { throw DataError(.format, name, "label \(l) is not a class id (non-negative integer below 2^24)") }
                        var bad: SkippedFile? = nil
                        if validateImages {
                            do { _ = try ImageCodec.decode(Array(img), name: name) } catch let e as DataError {
                                bad = SkippedFile(path: name, kind: e.kind == .unsupported ? .unsupported : .unreadable, reason: e.message)
                            }
                        }
                        v[j] = .image(Int32(l), bad)
                    } catch let e as DataError { v[j] = .failed(e) } catch { v[j] = .failed(DataError(.io, name, "\(error)")) }
                }
            }
        }
        var labels = [Int32](), offs = [Int](), keys = [Int](), skipped = [SkippedFile]()
        labels.reserveCapacity(n); offs.reserveCapacity(n); keys.reserveCapacity(n)
        var maxLabel = -1, records = 0
        for (j, item) in items.enumerated() {
            switch item {
            case .metadata: continue
            case .failed(let e): throw e
            case .image(let l, let bad):
                records += 1
                if let bad {
                    if strict { throw DataError(bad.kind == .unsupported ? .unsupported : .decode, bad.path, bad.reason + " (strict mode)") }
                    skipped.append(bad); continue
                }
                labels.append(l); offs.append(byKey[imageKeys[j]]!); keys.append(imageKeys[j]); maxLabel = max(maxLabel, Int(l))
            }
        }
        guard records > 0 else { throw DataError(.empty, rec, "no image records") }
        guard !labels.isEmpty else {
            throw DataError(.empty, rec, "no usable image: all \(records) image records left out (\(SkipKind.countsText(skipped.map(\.kind)))), e.g. \(skipped[0].path): \(skipped[0].reason)")
        }
        if let dc = declaredClasses, maxLabel >= dc {
            throw DataError(.format, "\(rec) key 0", "header declares \(dc) identities but an image has label \(maxLabel)")
        }
        recPath = rec; self.layout = layout; self.indexed = indexed; self.file = file; offsets = offs; self.keys = keys; self.labels = labels
        classCount = declaredClasses ?? (maxLabel + 1); self.skipped = skipped
    }

    public var count: Int { offsets.count }
    public func label(_ index: Int) throws -> Int {
        guard index >= 0, index < count else { throw DataError(.spec, recPath, "sample index \(index) outside 0..<\(count)") }
        return Int(labels[index])
    }
    /// The encoded image bytes of sample `index`.
    public func encoded(_ index: Int) throws -> [UInt8] {
        _ = try label(index)
        let p = try file.payload(at: offsets[index], key: keys[index])
        return Array(try RecordIO.unpack(p, name: "\(recPath) key \(keys[index])").1)
    }
    public func sample(_ index: Int) throws -> (image: FaceImage, label: Int) {
        let b = try encoded(index)
        return (try ImageCodec.decode(b, name: "\(recPath) key \(keys[index])"), Int(labels[index]))
    }
    public var summary: String {
        "rec \(recPath) (\(layout.rawValue) layout\(indexed ? "" : ", no .idx: read sequentially")): \(classCount) ids, \(count) images" +
            (skipped.isEmpty ? "" : ", \(skipped.count) records left out (\(skipCounts))")
    }

    /// A log paragraph: counts and the records left out with reasons (at most `limit` listed).
    public func scanReport(limit: Int = 50) -> String {
        var s = "\(summary)\n"
        for f in skipped.prefix(limit) { s += "  skipped \(f.path): \(f.reason)\n" }
        if skipped.count > limit { s += "  ... and \(skipped.count - limit) more\n" }
        return s
    }
}

extension RecordIO {
    /// Writes `rec` and `idx` atomically from `items` (label, encoded image), grouped by label ascending
    /// as insightface expects for the legacy layout.
    /// - legacy: images are keys 1...N (scalar labels), identity records N+1...N+K with labels [start, end),
    ///   and the header record key 0 (flag 2, labels [N+1, N+1+K]) written last, as MXNet's tools do.
    /// - scalar: keys 0..<N, scalar labels, no header.
    public static func write(rec: String, idx: String, layout: RecordSet.Layout,
                             count: Int, item: (Int) throws -> (label: Int, image: [UInt8])) throws {
        var lines = [String]()
        var offset = 0
        try AtomicFile.write(to: rec) { fd in
            func emit(_ key: Int, _ payload: [UInt8]) throws {
                let f = frame(payload)
                try f.withUnsafeBytes { try AtomicFile.writeAll(fd, $0, path: rec) }
                lines.append("\(key)\t\(offset)"); offset += f.count
            }
            var ranges = [(Int, Int)](), prevLabel = -1
            for i in 0..<count {
                let (l, img) = try item(i)
                guard l >= 0, l < 16_777_216 else { throw DataError(.spec, rec, "label \(l) of item \(i) cannot be stored exactly as float32") }
                let key = layout == .legacy ? i + 1 : i
                if layout == .legacy {
                    guard l >= prevLabel else { throw DataError(.spec, rec, "legacy layout needs items sorted by label (item \(i) has \(l) after \(prevLabel))") }
                    if l != prevLabel {
                        guard l == ranges.count else { throw DataError(.spec, rec, "legacy layout needs contiguous labels 0..<K (item \(i) has \(l))") }
                        ranges.append((key, key + 1)); prevLabel = l
                    } else { ranges[ranges.count - 1].1 = key + 1 }
                }
                try emit(key, pack(Header(flag: 0, label: Float(l), id: UInt64(key), id2: 0), img))
            }
            if layout == .legacy {
                let n = count, k = ranges.count
                for (j, r) in ranges.enumerated() {
                    try emit(n + 1 + j, pack(Header(label: 0, id: UInt64(n + 1 + j), labels: [Float(r.0), Float(r.1)]), []))
                }
                try emit(0, pack(Header(label: 0, id: 0, labels: [Float(n + 1), Float(n + 1 + k)]), []))
            }
        }
        try AtomicFile.write(Array(lines.map { $0 + "\n" }.joined().utf8), to: idx)
    }
}
