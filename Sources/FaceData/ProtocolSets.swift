// The inputs of the two low-resolution protocols beside verification (see README "Identification and
// open-set verification"):
//
// - `IdentificationSet`: TinyFace's closed-set identification layout, three flat folders of images: probes,
//   the identity-matched gallery and the distractor gallery. An image's identity is its file name's prefix
//   before the first '_' (TinyFace: `1_3.jpg` is identity "1"); distractors carry no identity (they match no
//   probe, whatever their names). Spec: `tinyface:ROOT` (ROOT/Probe, ROOT/Gallery_Match, ROOT/Gallery_Distractor,
//   as TinyFace's Testing_Set has them) or `folders:PROBE,MATCH[,DISTRACTOR]`.
// - `ListPairSet`: QMUL-SurvFace's open-set verification, a positive and a negative pair list of lines
//   `PATH1 PATH2` (paths relative to ROOT, or absolute; `#` starts a comment). Spec: `POSITIVE,NEGATIVE@ROOT`.
//   Pair order: the positives, then the negatives.
//
// Opening either lists and checks everything that can be checked without decoding (folders exist, names
// give identities, every probe identity is in the gallery, every list line is well formed and names an
// existing file); images are decoded when they are embedded, and an unreadable one is an error naming it.
import Foundation

/// Files of a flat image folder: images by extension (ImageFolder's), in byte order of their names.
func flatImageFiles(_ dir: String, role: String) throws -> (files: [String], ignored: Int) {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: dir, isDirectory: &isDir) else { throw DataError(.io, dir, "no such folder (the \(role) folder)") }
    guard isDir.boolValue else { throw DataError(.io, dir, "is a file, not a folder (the \(role) folder)") }
    let names: [String]
    do { names = try fm.contentsOfDirectory(atPath: dir) } catch { throw DataError(.io, dir, "cannot list folder") }
    var files = [String](), ignored = 0
    for name in sortedNames(names) where !name.hasPrefix(".") {
        let p = dir + "/" + name
        var st = stat()
        guard stat(p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { ignored += 1; continue }
        let ext = (name as NSString).pathExtension.lowercased()
        if ImageFolder.unsupportedExtensions.contains(ext) {
            throw DataError(.unsupported, p, "unsupported image format .\(ext) (kdtrain reads JPEG, PNG and PNM)")
        }
        guard ImageFolder.imageExtensions.contains(ext) else { ignored += 1; continue }
        files.append(p)
    }
    return (files, ignored)
}

/// A TinyFace-shaped closed-set identification set.
public struct IdentificationSet: Sendable {
    public let probeDir: String, matchDir: String, distractorDir: String?
    /// Probe image paths and their labels (indices into `identities`).
    public let probes: [String]
    public let probeLabels: [Int]
    /// Gallery image paths: the matched images first, then the distractors.
    public let gallery: [String]
    /// Labels of `gallery`: indices into `identities` for matched images, -1 for distractors.
    public let galleryLabels: [Int]
    /// Identity names (file-name prefixes) of the matched gallery, in order of first appearance.
    public let identities: [String]
    public let matchCount: Int
    /// Files of the three folders that are not images (by extension) or not regular files.
    public let ignored: Int

    /// The three folders of a spec: `tinyface:ROOT` or `folders:PROBE,MATCH[,DISTRACTOR]`.
    public static func folders(spec: String) throws -> (probe: String, match: String, distractor: String?) {
        let bad = { (why: String) in DataError(.spec, "eval.identification '\(spec)'", why) }
        if spec.hasPrefix("tinyface:") {
            var root = String(spec.dropFirst("tinyface:".count))
            guard !root.isEmpty else { throw bad("tinyface: needs the Testing_Set folder, tinyface:ROOT") }
            while root.count > 1, root.hasSuffix("/") { root.removeLast() }
            return (root + "/Probe", root + "/Gallery_Match", root + "/Gallery_Distractor")
        }
        if spec.hasPrefix("folders:") {
            let parts = spec.dropFirst("folders:".count).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 || parts.count == 3, !parts.contains(where: \.isEmpty) else {
                throw bad("folders: needs PROBE,MATCH or PROBE,MATCH,DISTRACTOR (comma-separated folders)")
            }
            return (parts[0], parts[1], parts.count == 3 ? parts[2] : nil)
        }
        throw bad("expected tinyface:ROOT or folders:PROBE,MATCH[,DISTRACTOR]")
    }

    /// The identity of an image file name: its prefix before the first '_' (nil without one, or when empty).
    public static func identity(ofFile path: String) -> String? {
        let name = URL(fileURLWithPath: path).lastPathComponent
        guard let u = name.firstIndex(of: "_"), u != name.startIndex else { return nil }
        return String(name[..<u])
    }

    public init(spec: String) throws {
        let f = try Self.folders(spec: spec)
        try self.init(probe: f.probe, match: f.match, distractor: f.distractor)
    }

    /// Lists and checks the folders.
    /// - Throws: `DataError` naming the folder or file: a missing folder, an empty probe or match folder, a
    ///   probe or matched image whose name has no identity prefix, a probe identity absent from the match folder.
    public init(probe: String, match: String, distractor: String?) throws {
        let (p, pi) = try flatImageFiles(probe, role: "probe")
        let (m, mi) = try flatImageFiles(match, role: "gallery match")
        let (d, di) = try distractor.map { try flatImageFiles($0, role: "gallery distractor") } ?? ([], 0)
        guard !p.isEmpty else { throw DataError(.empty, probe, "no probe images (.jpg .jpeg .png .pgm .ppm .pnm)") }
        guard !m.isEmpty else { throw DataError(.empty, match, "no gallery match images (.jpg .jpeg .png .pgm .ppm .pnm)") }
        func identity(_ path: String) throws -> String {
            guard let id = Self.identity(ofFile: path) else {
                throw DataError(.format, path, "file name has no identity prefix: identities are the name before the first '_' (TinyFace: 1_3.jpg is identity 1)")
            }
            return id
        }
        var index = [String: Int](), names = [String](), galleryLabels = [Int]()
        for path in m {
            let id = try identity(path)
            if index[id] == nil { index[id] = names.count; names.append(id) }
            galleryLabels.append(index[id]!)
        }
        var probeLabels = [Int]()
        for path in p {
            let id = try identity(path)
            guard let l = index[id] else {
                throw DataError(.spec, path, "probe identity '\(id)' has no image in the gallery match folder \(match) (closed-set identification needs one)")
            }
            probeLabels.append(l)
        }
        probeDir = probe; matchDir = match; distractorDir = distractor
        probes = p; self.probeLabels = probeLabels
        gallery = m + d; self.galleryLabels = galleryLabels + [Int](repeating: -1, count: d.count)
        identities = names; matchCount = m.count; ignored = pi + mi + di
    }

    public var distractorCount: Int { gallery.count - matchCount }

    public var summary: String {
        "identification: \(probes.count) probes (\(probeDir)), \(matchCount) matched gallery images of \(identities.count) identities (\(matchDir)), "
            + "\(distractorCount) distractors" + (distractorDir.map { " (\($0))" } ?? "") + (ignored > 0 ? ", \(ignored) other files ignored" : "")
    }
}

/// Verification pairs from a positive and a negative list of `PATH1 PATH2` lines (QMUL-SurvFace's pairs,
/// converted from its .mat files). Images 2i and 2i+1 form pair i; the positives come first.
public struct ListPairSet: PairSet {
    public let positiveList: String, negativeList: String, root: String
    public let paths: [String]
    public let issame: [Bool]
    public let positives: Int

    /// The two lists and the root of a spec `POSITIVE,NEGATIVE@ROOT`.
    public static func lists(spec: String) throws -> (positive: String, negative: String, root: String) {
        let bad = DataError(.spec, "eval.survface '\(spec)'", "expected POSITIVE_LIST,NEGATIVE_LIST@IMAGE_ROOT")
        guard let at = spec.lastIndex(of: "@") else { throw bad }
        let lists = spec[..<at].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let root = String(spec[spec.index(after: at)...])
        guard lists.count == 2, !lists[0].isEmpty, !lists[1].isEmpty, !root.isEmpty else { throw bad }
        return (lists[0], lists[1], root)
    }

    public init(spec: String) throws {
        let l = try Self.lists(spec: spec)
        try self.init(positive: l.positive, negative: l.negative, root: l.root)
    }

    /// Reads both lists.
    /// - Throws: `DataError` naming `LIST:LINE` for a line that is not two paths or names a missing file, and
    ///   the list for an unreadable or empty one.
    public init(positive: String, negative: String, root: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw DataError(.io, root, "no such folder (the image root of eval.survface)")
        }
        let pos = try Self.read(positive, root: root), neg = try Self.read(negative, root: root)
        positiveList = positive; negativeList = negative; self.root = root
        paths = pos + neg
        positives = pos.count / 2
        issame = [Bool](repeating: true, count: pos.count / 2) + [Bool](repeating: false, count: neg.count / 2)
    }

    /// The 2P paths of one list.
    static func read(_ list: String, root: String) throws -> [String] {
        let bytes = try readFile(list)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw DataError(.format, list, "not UTF-8 text") }
        var paths = [String]()
        let fm = FileManager.default
        // "\r\n" is one Character in Swift: split on it too (Windows line ends), keeping line numbers.
        for (ln, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if f.isEmpty { continue }
            let at = "\(list):\(ln + 1)"
            guard f.count == 2 else { throw DataError(.format, at, "expected two image paths 'PATH1 PATH2', got \(f.count) field(s)") }
            for p in f {
                let full = p.hasPrefix("/") ? String(p) : root + "/" + p
                var d: ObjCBool = false
                guard fm.fileExists(atPath: full, isDirectory: &d), !d.boolValue else { throw DataError(.io, at, "no image \(full)") }
                paths.append(full)
            }
        }
        guard !paths.isEmpty else { throw DataError(.empty, list, "no pairs") }
        return paths
    }

    public var pairCount: Int { issame.count }
    public func image(_ j: Int) throws -> FaceImage {
        guard j >= 0, j < paths.count else { throw DataError(.spec, positiveList, "image index \(j) outside 0..<\(paths.count)") }
        return try ImageCodec.load(paths[j])
    }
    public var summary: String {
        "pair lists \(positiveList) (\(positives) positive), \(negativeList) (\(pairCount - positives) negative) @ \(root)"
    }
}
