// A data source named by one string, on the command line and in config files.
//
//   synthetic[:key=value,...]       procedural faces; keys: ids, images, size (or width/height), seed,
//                                   pairs, verify-ids. Example: synthetic:ids=2000,images=40,size=112
//   folder:PATH[;strict][;bycontent][;size=WxH][;pairs=N][;seed=S]
//                                   one sub-folder per identity (training), or, as a verification
//                                   source, N pairs generated from it (default 6000 or what fits).
//                                   Images by extension (.jpg .jpeg .png .pgm .ppm .pnm), or every
//                                   file by content with bycontent; size=WxH skips images of another
//                                   size; strict makes an unreadable image an error instead of a skip
//   rec:PATH/train.rec[;strict]     insightface RecordIO, either layout, through the .idx next to it,
//                                   or read sequentially when there is no .idx; an undecodable image
//                                   is skipped and reported, with strict an error
//   bin:PATH/agedb_30.bin           insightface verification pairs
//   pairs:PATH/pairs.txt@IMAGE_ROOT LFW-style pairs list with its image root (split at the last '@')
//
// Training sources: synthetic, folder, rec. Verification sources: synthetic, folder, bin, pairs.
import Foundation
import KDCore

public enum DataSource: Equatable, Sendable, CustomStringConvertible {
    case synthetic(SyntheticConfig)
    case folder(path: String, strict: Bool, pairs: Int?, seed: UInt64, options: FolderOptions = FolderOptions())

    /// Width x height, for `folder:...;size=WxH`.
    public struct Size: Equatable, Hashable, Sendable { public var width: Int, height: Int
        public init(width: Int, height: Int) { self.width = width; self.height = height } }
    /// The less common folder options: `size=WxH` (expected image size) and `bycontent`.
    public struct FolderOptions: Equatable, Sendable {
        public var expectedSize: Size?
        public var byContent: Bool
        public init(expectedSize: Size? = nil, byContent: Bool = false) { self.expectedSize = expectedSize; self.byContent = byContent }
    }
    case rec(path: String, strict: Bool = false)
    case bin(path: String)
    case pairs(list: String, root: String)

    /// Parses the one-string syntax above. - Throws: `DataError(.spec, spec, ...)` naming the bad part.
    public init(parsing spec: String) throws {
        let s = spec.trimmingCharacters(in: .whitespaces)
        let (kind, rest): (String, String) = {
            guard let c = s.firstIndex(of: ":") else { return (s, "") }
            return (String(s[..<c]), String(s[s.index(after: c)...]))
        }()
        func bad(_ m: String) -> DataError { DataError(.spec, spec, m) }
        switch kind {
        case "synthetic":
            var c = SyntheticConfig()
            for kv in rest.split(separator: ",", omittingEmptySubsequences: true) {
                let p = kv.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard p.count == 2, let v = UInt64(p[1]), v <= 1 << 40 else { throw bad("expected key=number, got '\(kv)'") }
                let n = Int(v)
                switch p[0] {
                case "ids", "identities": c.identities = n
                case "images": c.imagesPerIdentity = n
                case "size": c.width = n; c.height = n
                case "width": c.width = n
                case "height": c.height = n
                case "seed": c.seed = v
                case "pairs": c.pairs = n
                case "verify-ids": c.verificationIdentities = n
                default: throw bad("unknown synthetic key '\(p[0])' (ids, images, size, width, height, seed, pairs, verify-ids)")
                }
            }
            do { try c.validate() } catch let e as DataError { throw bad("\(e.subject): \(e.message)") }
            self = .synthetic(c)
        case "folder":
            let parts = rest.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
            guard let path = parts.first, !path.isEmpty else { throw bad("folder: needs a path") }
            var strict = false, pairs: Int? = nil, seed: UInt64 = 1, size: Size? = nil, byContent = false
            for o in parts.dropFirst() {
                if o == "strict" { strict = true }
                else if o == "bycontent" { byContent = true }
                else if o.hasPrefix("pairs="), let n = Int(o.dropFirst(6)), n >= 20, n % 20 == 0 { pairs = n }
                else if o.hasPrefix("seed="), let n = UInt64(o.dropFirst(5)) { seed = n }
                else if o.hasPrefix("size="), case let wh = o.dropFirst(5).split(separator: "x"), wh.count == 2,
                        let w = Int(wh[0]), let h = Int(wh[1]), (1...65536).contains(w), (1...65536).contains(h) { size = Size(width: w, height: h) }
                else { throw bad("unknown folder option '\(o)' (strict, bycontent, size=WxH, pairs=N with N a multiple of 20, seed=S)") }
            }
            self = .folder(path: path, strict: strict, pairs: pairs, seed: seed, options: FolderOptions(expectedSize: size, byContent: byContent))
        case "rec":
            var parts = rest.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
            let path = parts.removeFirst()
            guard !path.isEmpty else { throw bad("rec: needs the path of a .rec file") }
            var strict = false
            for o in parts {
                guard o == "strict" else { throw bad("unknown rec option '\(o)' (strict)") }
                strict = true
            }
            self = .rec(path: path, strict: strict)
        case "bin":
            guard !rest.isEmpty else { throw bad("bin: needs the path of a .bin file") }
            self = .bin(path: rest)
        case "pairs":
            guard let at = rest.lastIndex(of: "@") else { throw bad("pairs: needs LIST@IMAGE_ROOT") }
            let list = String(rest[..<at]), root = String(rest[rest.index(after: at)...])
            guard !list.isEmpty, !root.isEmpty else { throw bad("pairs: needs LIST@IMAGE_ROOT") }
            self = .pairs(list: list, root: root)
        default:
            throw bad("unknown data source kind '\(kind)' (synthetic, folder:, rec:, bin:, pairs:)")
        }
    }

    /// The canonical spec string (parses back to the same value).
    public var description: String {
        switch self {
        case .synthetic(let c):
            return "synthetic:ids=\(c.identities),images=\(c.imagesPerIdentity),width=\(c.width),height=\(c.height),seed=\(c.seed),pairs=\(c.pairs),verify-ids=\(c.verificationIdentities)"
        case .folder(let p, let strict, let pairs, let seed, let o):
            return "folder:\(p)" + (strict ? ";strict" : "") + (o.byContent ? ";bycontent" : "") + (o.expectedSize.map { ";size=\($0.width)x\($0.height)" } ?? "") + (pairs.map { ";pairs=\($0)" } ?? "") + (seed != 1 ? ";seed=\(seed)" : "")
        case .rec(let p, let strict): return "rec:\(p)" + (strict ? ";strict" : "")
        case .bin(let p): return "bin:\(p)"
        case .pairs(let l, let r): return "pairs:\(l)@\(r)"
        }
    }

    /// Opens the source as a training set: every image is decoded once up front (folders and .rec files),
    /// so a corrupt image is skipped and reported here (or, for `folder:...;strict`, an error) instead of
    /// failing a training step later; a set with fewer than 2 identities is refused.
    /// - Throws: `.spec` for verification-only kinds, `.empty` for a single identity, else the reader's errors.
    public func trainingSet(threads: Int = 2) throws -> any TrainingSet {
        let t: any TrainingSet, subject: String
        switch self {
        case .synthetic(let c): t = try SyntheticTrainingSet(c); subject = "synthetic"
        case .folder(let p, let strict, _, _, let o):
            t = try ImageFolder(root: p, strict: strict, expectedSize: o.expectedSize.map { ($0.width, $0.height) },
                                byContent: o.byContent, threads: threads)
            subject = p
        case .rec(let p, let strict): t = try RecordSet(rec: p, strict: strict, threads: threads); subject = p
        case .bin, .pairs: throw DataError(.spec, description, "a verification-only source cannot be a training set")
        }
        try Self.requireTwoIdentities(t, subject)
        return t
    }

    /// A margin-softmax head needs at least two classes that have images.
    static func requireTwoIdentities(_ t: any TrainingSet, _ subject: String) throws {
        var first: Int? = nil
        for i in 0..<t.count {
            let l = try t.label(i)
            if let f = first { if l != f { return } } else { first = l }
        }
        let declared = t.classCount > 1 ? " (of \(t.classCount) declared)" : ""
        throw DataError(.empty, subject, first == nil ? "no images; training needs at least 2 identities"
                                                      : "only 1 identity\(declared); training needs at least 2")
    }

    /// Opens the source as verification pairs. Folders get generated pairs (`pairs=` or 6000, reduced to
    /// a multiple of 20 no larger than the image count when the folder is small).
    public func pairSet(threads: Int = 2) throws -> any PairSet {
        switch self {
        case .synthetic(let c): return try SyntheticPairSet(c)
        case .folder(let p, let strict, let pairs, let seed, let o):
            let f = try ImageFolder(root: p, strict: strict, expectedSize: o.expectedSize.map { ($0.width, $0.height) },
                                    byContent: o.byContent, threads: threads)
            let n = pairs ?? max(20, min(6000, f.count / 20 * 20))
            return try GeneratedPairSet(source: f, pairs: n, seed: seed)
        case .bin(let p): return try BinPairSet(path: p)
        case .pairs(let l, let r): return try PairsFile(list: l, root: r)
        case .rec: throw DataError(.spec, description, "a RecordIO training set has no pairs; use bin:, pairs: or folder:")
        }
    }
}

/// Library side of `kdtrain pack`: writers that need no MXNet or Python.
public enum Packer {
    /// Writes `rec` (+ `.idx` next to it) from an image folder, plus insightface's `property` file
    /// ("classes,height,width") and `labels.tsv` ("label<TAB>identity folder") in the same folder.
    /// With `size`, every image is resized (stretched) to `size` x `size` with `kernel` and stored as JPEG
    /// at `quality`; without it every image must already have one size (the property file states one),
    /// else the call is refused naming a differing image. JPEG files that need no resizing are stored as
    /// they are; other formats are re-encoded as JPEG at `quality`. Returns a one-line summary.
    @discardableResult
    public static func rec(from folder: ImageFolder, to rec: String, layout: RecordSet.Layout = .legacy, quality: Int = 95,
                           size: Int? = nil, kernel: ResizeKernel = .bilinear) throws -> String {
        if let s = size { guard (8...ImageCodec.maxSide).contains(s) else { throw DataError(.spec, "size", "\(s) must be within 8...\(ImageCodec.maxSide)") } }
        guard let major = folder.majoritySize else { throw DataError(.empty, folder.root, "no images") }
        if size == nil, let odd = folder.offSizeImages.first {
            throw DataError(.spec, odd.path, "is \(odd.size.width)x\(odd.size.height) but most images of \(folder.root) are \(major.width)x\(major.height) (\(folder.offSizeImages.count) differ); give --size S to resize them all to SxS")
        }
        let outSize = size.map { DataSource.Size(width: $0, height: $0) } ?? major
        let dir = (rec as NSString).deletingLastPathComponent.isEmpty ? "." : (rec as NSString).deletingLastPathComponent
        let idx = (rec as NSString).deletingPathExtension + ".idx"
        try RecordIO.write(rec: rec, idx: idx, layout: layout, count: folder.count) { i in
            let b = try readFile(folder.files[i], maxBytes: ImageCodec.maxFileBytes)
            if ImageCodec.sniff(b) == .jpeg, folder.sizes[i] == outSize { return (Int(folder.labels[i]), b) }
            var img = try ImageCodec.decode(b, name: folder.files[i])
            if img.width != outSize.width || img.height != outSize.height {
                img = Resize.image(img, width: outSize.width, height: outSize.height, kernel: kernel)
            }
            return (Int(folder.labels[i]), try ImageCodec.encodeJPEG(img, quality: quality))
        }
        try AtomicFile.write(Array("\(folder.classCount),\(outSize.height),\(outSize.width)\n".utf8), to: dir + "/property")
        try folder.writeLabels(to: dir + "/labels.tsv")
        let resized = folder.sizes.filter { $0 != outSize }.count
        return "wrote \(rec), \(idx), \(dir)/property and \(dir)/labels.tsv: \(folder.count) images of \(outSize.width)x\(outSize.height)" +
            (resized > 0 ? " (\(resized) resized)" : "") + ", \(folder.classCount) identities, \(layout.rawValue) layout"
    }

    /// Writes an insightface .bin from any pair source, re-encoding every image as JPEG at `quality`
    /// (or, with `lossless`, as 8-bit RGB PNG, which decodes to exactly the pixels kdtrain read, so the
    /// .bin evaluates exactly like its source), resized to `size` x `size` with `kernel` when `size` is
    /// given. Without `size` the images are kept as they are, and a non-square image is refused
    /// (insightface's loader expects square faces): the error names it and asks for `--size`. Nothing is
    /// written unless every image is fine. Returns a one-line summary.
    @discardableResult
    public static func bin(from pairs: any PairSet, to path: String, quality: Int = 95, size: Int? = nil,
                           kernel: ResizeKernel = .bilinear, lossless: Bool = false) throws -> String {
        var images = [[UInt8]]()
        images.reserveCapacity(2 * pairs.pairCount)
        for j in 0..<(2 * pairs.pairCount) {
            var img = try pairs.image(j)
            if let s = size, img.width != s || img.height != s { img = Resize.image(img, width: s, height: s, kernel: kernel) }
            guard img.width == img.height else {
                throw DataError(.spec, "\(pairs.summary) image \(j)", "is \(img.width)x\(img.height), not square; give --size S to resize every image to SxS")
            }
            images.append(lossless ? try ImageCodec.encodePNG(img) : try ImageCodec.encodeJPEG(img, quality: quality))
        }
        try AtomicFile.write(PickleBin.write(images: images, issame: pairs.issame), to: path)
        return "wrote \(path): \(pairs.pairCount) pairs (\(pairs.summary)), " + (lossless ? "PNG (lossless)" : "JPEG quality \(quality)")
    }
}
