// Image folders: one sub-folder per identity, images inside.
//
// Which files are images: by default, as torchvision's ImageFolder does, by extension (case-insensitive
// .jpg .jpeg .png .pgm .ppm .pnm, plus the extensions of formats kdtrain recognizes but does not read,
// such as .gif or .bmp, so that those are reported as unsupported instead of silently ignored). Other
// files (README.txt, faces.pgm.bad, ...) are ignored and counted. With `byContent` every file is read
// and its first bytes decide; files that are not recognizable images are ignored and counted. Either way
// the image format itself always comes from the file's content, never from its extension.
//
// Labels are the positions of the identity folders sorted by name (byte order of their UTF-8 names), so
// the same folder always gives the same labels; `writeLabels(to:)` records them next to a run.
// Every image is decoded once when the folder is opened (in parallel): images that cannot be decoded,
// are truncated, in an unsupported format or of an unexpected size (`size=WxH`) are skipped, counted and
// listed (`skipped`, `scanReport`, `writeSkipped(to:)`); in strict mode the first such image is an error
// naming it. Strict means "no unreadable image", not "no other file": ignored files never fail a scan.
// Hidden files (".name") are ignored silently. An identity folder with no usable image is an error (with
// the counts of what was left out), never a silent empty class. Images whose size differs from the
// folder's most common size are listed in the scan report: the loader stretches them to the input size.
import Dispatch
import Foundation
import KDCore

func sortedNames(_ names: [String]) -> [String] { names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }

/// Why a file of an image folder was left out.
public enum SkipKind: String, Sendable, CaseIterable {
    /// Not an image by extension (or, with `bycontent`, by content): ignored, never a strict-mode error.
    case otherFile = "not an image file"
    /// A file at the top level or a folder inside an identity folder: ignored, never a strict-mode error.
    case misplaced = "outside the identity folders"
    /// A recognized image format kdtrain does not read (GIF, BMP, WebP, TIFF, ...).
    case unsupported = "unsupported format"
    /// Corrupt, truncated, oversized or otherwise undecodable.
    case unreadable = "unreadable image"
    /// Not the size the source's `size=WxH` asks for.
    case wrongSize = "wrong size"

    /// Whether this is a problem with an image (an error in strict mode) rather than a file that is not one.
    public var isImageProblem: Bool { self == .unsupported || self == .unreadable || self == .wrongSize }
}

/// A file left out of a data set, with the reason.
public struct SkippedFile: Sendable, Equatable {
    public var path: String
    public var kind: SkipKind
    public var reason: String
    public init(path: String, kind: SkipKind, reason: String) { self.path = path; self.kind = kind; self.reason = reason }
}

/// A data set that leaves unusable items out when it is opened and can say which and why.
public protocol SkipReporting {
    /// Items left out, in scan order.
    var skipped: [SkippedFile] { get }
    /// A log paragraph: counts per reason and the first `limit` items left out.
    func scanReport(limit: Int) -> String
}

extension SkipReporting {
    /// `scanReport(limit: 50)`.
    public func scanReport() -> String { scanReport(limit: 50) }

    /// "3 not an image file, 1 unreadable image" (kinds in a fixed order; "" when nothing was left out).
    public var skipCounts: String { SkipKind.countsText(skipped.map(\.kind)) }

    /// Writes every item left out as "path<TAB>kind<TAB>reason" lines (tabs and newlines in the fields are
    /// replaced by spaces), atomically; with nothing left out the file holds only the header line.
    public func writeSkipped(to path: String) throws {
        func clean(_ s: String) -> String { String(s.map { $0 == "\t" || $0 == "\n" || $0 == "\r" ? " " : $0 }) }
        var text = "path\tkind\treason\n"
        for s in skipped { text += "\(clean(s.path))\t\(s.kind.rawValue)\t\(clean(s.reason))\n" }
        try AtomicFile.write(Array(text.utf8), to: path)
    }
}

extension SkipKind {
    static func countsText(_ kinds: [SkipKind]) -> String {
        var n = [SkipKind: Int]()
        for k in kinds { n[k, default: 0] += 1 }
        return SkipKind.allCases.compactMap { k in n[k].map { "\($0) \(k.rawValue)" } }.joined(separator: ", ")
    }
}

/// A labelled image folder.
public struct ImageFolder: TrainingSet, SkipReporting {
    /// Extensions read as images by default (lower case, without the dot).
    public static let imageExtensions: [String] = ["jpg", "jpeg", "png", "pgm", "ppm", "pnm"]
    /// Extensions of image formats kdtrain does not read: such files are reported as unsupported.
    public static let unsupportedExtensions: Set<String> = ["gif", "bmp", "webp", "tif", "tiff", "pbm", "pam", "jp2", "j2k",
                                                            "heic", "heif", "avif", "jxl"]

    public let root: String
    /// Identity folder names; label i is classNames[i].
    public let classNames: [String]
    /// Usable image paths and their labels, in label order then name order.
    public let files: [String]
    public let labels: [Int32]
    /// Width and height of each usable image, as decoded when the folder was opened.
    public let sizes: [DataSource.Size]
    /// Files left out, with the reason.
    public let skipped: [SkippedFile]
    /// Whether files were chosen by content (`bycontent`) instead of by extension.
    public let byContent: Bool

    /// Opens and validates `root`.
    /// - Parameters: strict: an unreadable, unsupported or wrong-size image is an error instead of a skip
    ///   (other files are still only ignored); expectedSize: when set, images of another size are left out
    ///   (an error when strict); byContent: consider every file, not only image extensions; threads:
    ///   decoding threads for validation.
    /// - Throws: `DataError` naming the folder or file.
    public init(root: String, strict: Bool = false, expectedSize: (width: Int, height: Int)? = nil,
                byContent: Bool = false, threads: Int = 2) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDir) else { throw DataError(.io, root, "no such folder") }
        guard isDir.boolValue else {
            throw DataError(.io, root, "is a file, not a folder (an image folder holds one sub-folder of images per identity)")
        }
        let top: [String]
        do { top = try fm.contentsOfDirectory(atPath: root) } catch { throw DataError(.io, root, "cannot list folder") }
        var classes = [String](), candidates = [(path: String, label: Int)](), skipped = [SkippedFile]()
        var earlySkips = [[SkippedFile]]()   // per class: files ignored without decoding
        for name in sortedNames(top) where !name.hasPrefix(".") {
            let p = root + "/" + name
            var d: ObjCBool = false
            _ = fm.fileExists(atPath: p, isDirectory: &d)
            guard d.boolValue else { skipped.append(SkippedFile(path: p, kind: .misplaced, reason: "file at the top level, not inside an identity folder")); continue }
            guard let inner = try? fm.contentsOfDirectory(atPath: p) else { throw DataError(.io, p, "cannot list folder") }
            let label = classes.count
            classes.append(name)
            var early = [SkippedFile]()
            for f in sortedNames(inner) where !f.hasPrefix(".") {
                let fp = p + "/" + f
                var fd: ObjCBool = false
                if fm.fileExists(atPath: fp, isDirectory: &fd), fd.boolValue {
                    early.append(SkippedFile(path: fp, kind: .misplaced, reason: "folder inside an identity folder (not searched)")); continue
                }
                var st = stat()
                guard stat(fp, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                    // a FIFO or device would block the scan; a dangling link cannot be read
                    early.append(SkippedFile(path: fp, kind: .misplaced, reason: "not a regular file")); continue
                }
                let ext = (f as NSString).pathExtension.lowercased()
                if !byContent, !Self.imageExtensions.contains(ext), !Self.unsupportedExtensions.contains(ext) {
                    early.append(SkippedFile(path: fp, kind: .otherFile, reason: "not an image file (\(ext.isEmpty ? "no extension" : "extension ." + ext))"))
                    continue
                }
                candidates.append((fp, label))
            }
            earlySkips.append(early)
        }
        guard !classes.isEmpty else {
            throw DataError(.empty, root, "no identity folders" + (skipped.isEmpty ? "" : " (\(skipped.count) files at the top level)") + "; expected one sub-folder of images per identity")
        }
        // Validate every candidate by decoding it (in parallel).
        enum Verdict { case ok(Int, Int), skip(SkipKind, String) }
        let n = candidates.count, parts = max(1, min(threads, n))
        nonisolated(unsafe) var verdict = [Verdict](repeating: .skip(.unreadable, "not checked"), count: n)
        verdict.withUnsafeMutableBufferPointer { vb in
            nonisolated(unsafe) let v = vb
            let cands = candidates
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                for k in stride(from: part, to: n, by: parts) {
                    let path = cands[k].path
                    do {
                        if byContent {
                            let head = try readPrefix(path, 32)
                            if ImageCodec.sniff(head) == nil, ImageCodec.unsupportedFormat(head) == nil {
                                v[k] = .skip(.otherFile, head.isEmpty ? "empty file" : "not an image file (content)"); continue
                            }
                        }
                        let img = try ImageCodec.decode(try readFile(path, maxBytes: ImageCodec.maxFileBytes), name: path)
                        if let e = expectedSize, img.width != e.width || img.height != e.height {
                            v[k] = .skip(.wrongSize, "size \(img.width)x\(img.height), expected \(e.width)x\(e.height)")
                        } else {
                            v[k] = .ok(img.width, img.height)
                        }
                    } catch let e as DataError {
                        v[k] = .skip(e.kind == .unsupported ? .unsupported : .unreadable, e.message)
                    } catch { v[k] = .skip(.unreadable, "\(error)") }
                }
            }
        }
        var files = [String](), labels = [Int32](), sizes = [DataSource.Size]()
        var perClass = [Int](repeating: 0, count: classes.count), lateSkips = [[SkippedFile]](repeating: [], count: classes.count)
        for k in 0..<n {
            let (path, label) = candidates[k]
            switch verdict[k] {
            case .ok(let w, let h):
                files.append(path); labels.append(Int32(label)); sizes.append(DataSource.Size(width: w, height: h)); perClass[label] += 1
            case .skip(let kind, let why):
                if strict, kind.isImageProblem { throw DataError(kind == .unsupported ? .unsupported : .decode, path, why + " (strict mode)") }
                lateSkips[label].append(SkippedFile(path: path, kind: kind, reason: why))
            }
        }
        for c in classes.indices {
            skipped += (earlySkips[c] + lateSkips[c]).sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        }
        func hint(_ s: [SkippedFile]) -> String {
            guard s.contains(where: { $0.kind == .otherFile }), !byContent else { return "" }
            return "; images are recognized by extension (\(Self.imageExtensions.map { "." + $0 }.joined(separator: " "))), add ;bycontent to read every file by content"
        }
        if files.isEmpty {
            let all = earlySkips.flatMap { $0 } + lateSkips.flatMap { $0 }
            throw DataError(.empty, root, "no usable image in any of the \(classes.count) identity folders: " +
                            (all.isEmpty ? "they are empty" : "\(all.count) files left out (\(SkipKind.countsText(all.map(\.kind))))") + hint(all))
        }
        if let empty = perClass.firstIndex(of: 0) {
            let s = earlySkips[empty] + lateSkips[empty]
            throw DataError(.empty, root + "/" + classes[empty], "identity folder has no usable image" +
                            (s.isEmpty ? " (it is empty)" : ": \(s.count) files left out (\(SkipKind.countsText(s.map(\.kind))))") + hint(s))
        }
        self.root = root; classNames = classes; self.files = files; self.labels = labels; self.sizes = sizes
        self.skipped = skipped; self.byContent = byContent
    }

    public var count: Int { files.count }
    public var classCount: Int { classNames.count }
    public func label(_ index: Int) throws -> Int {
        guard index >= 0, index < files.count else { throw DataError(.spec, root, "sample index \(index) outside 0..<\(files.count)") }
        return Int(labels[index])
    }
    public func sample(_ index: Int) throws -> (image: FaceImage, label: Int) {
        let l = try label(index)
        return (try ImageCodec.load(files[index]), l)
    }
    public var summary: String {
        "folder \(root): \(classCount) ids, \(count) images" + (skipped.isEmpty ? "" : ", \(skipped.count) files left out (\(skipCounts))")
    }

    /// The most common image size (ties: the larger area, then the wider), or nil for an empty folder.
    public var majoritySize: DataSource.Size? {
        var n = [Int: Int]()
        for s in sizes { n[s.width << 32 | s.height, default: 0] += 1 }
        guard let best = n.max(by: { a, b in
            let (wa, ha, wb, hb) = (a.key >> 32, a.key & 0xFFFF_FFFF, b.key >> 32, b.key & 0xFFFF_FFFF)
            return (a.value, wa * ha, wa) < (b.value, wb * hb, wb)
        }) else { return nil }
        return DataSource.Size(width: best.key >> 32, height: best.key & 0xFFFF_FFFF)
    }

    /// Usable images whose size differs from `majoritySize` (the loader stretches every image to the
    /// network input, so these are distorted differently from the rest).
    public var offSizeImages: [(path: String, size: DataSource.Size)] {
        guard let m = majoritySize else { return [] }
        return zip(files, sizes).filter { $0.1 != m }.map { (path: $0.0, size: $0.1) }
    }

    /// A log paragraph: counts, the files left out with reasons (image problems first; at most `limit`
    /// listed) and the images whose size differs from the majority. `writeSkipped(to:)` writes them all.
    public func scanReport(limit: Int = 50) -> String {
        var s = "\(summary)\n"
        let ordered = skipped.filter { $0.kind.isImageProblem } + skipped.filter { !$0.kind.isImageProblem }
        for f in ordered.prefix(limit) { s += "  skipped \(f.path): \(f.reason)\n" }
        if ordered.count > limit { s += "  ... and \(ordered.count - limit) more\n" }
        let off = offSizeImages
        if let m = majoritySize, !off.isEmpty {
            s += "  \(off.count) images are not \(m.width)x\(m.height) like most of this folder; they are stretched to the input size:\n"
            for o in off.prefix(limit) { s += "  size \(o.size.width)x\(o.size.height): \(o.path)\n" }
            if off.count > limit { s += "  ... and \(off.count - limit) more\n" }
        }
        return s
    }

    /// Writes "label<TAB>folder name" lines, atomically, so a run's labels can be reproduced.
    public func writeLabels(to path: String) throws {
        let text = classNames.enumerated().map { "\($0.offset)\t\($0.element)\n" }.joined()
        try AtomicFile.write(Array(text.utf8), to: path)
    }
}
