// Image folders: one sub-folder per identity, images inside (JPEG, PNG, PGM/PPM, any extension: the
// format is recognized from the file's first bytes).
//
// Labels are the positions of the identity folders sorted by name (byte order of their UTF-8 names), so
// the same folder always gives the same labels; `writeLabels(to:)` records them next to a run.
// Every file is decoded once when the folder is opened (in parallel): files that are not images, cannot
// be decoded, are truncated or have an unexpected size are skipped, counted and listed (`skipped`,
// `scanReport`); in strict mode the first such file is an error naming it. Hidden files (".name") are
// ignored. An identity folder with no usable image is an error, never a silent empty class.
import Dispatch
import Foundation

func sortedNames(_ names: [String]) -> [String] { names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }

/// A labelled image folder.
public struct ImageFolder: TrainingSet {
    public let root: String
    /// Identity folder names; label i is classNames[i].
    public let classNames: [String]
    /// Usable image paths and their labels, in label order then name order.
    public let files: [String]
    public let labels: [Int32]
    /// Files left out, with the reason.
    public let skipped: [(path: String, reason: String)]

    /// Opens and validates `root`.
    /// - Parameters: strict: a bad file is an error instead of a skip; expectedSize: when set, images of
    ///   another size are skipped (or an error when strict); threads: decoding threads for validation.
    /// - Throws: `DataError` naming the folder or file.
    public init(root: String, strict: Bool = false, expectedSize: (width: Int, height: Int)? = nil, threads: Int = 2) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else { throw DataError(.io, root, "no such folder") }
        let top: [String]
        do { top = try fm.contentsOfDirectory(atPath: root) } catch { throw DataError(.io, root, "cannot list folder") }
        var classes = [String](), candidates = [(String, Int)](), skipped = [(path: String, reason: String)]()
        for name in sortedNames(top) where !name.hasPrefix(".") {
            let p = root + "/" + name
            var d: ObjCBool = false
            _ = fm.fileExists(atPath: p, isDirectory: &d)
            guard d.boolValue else { skipped.append((p, "not inside an identity folder")); continue }
            guard let inner = try? fm.contentsOfDirectory(atPath: p) else { throw DataError(.io, p, "cannot list folder") }
            let label = classes.count
            classes.append(name)
            for f in sortedNames(inner) where !f.hasPrefix(".") { candidates.append((p + "/" + f, label)) }
        }
        guard !classes.isEmpty else { throw DataError(.empty, root, "no identity folders") }
        // Validate every candidate by decoding it (in parallel).
        let n = candidates.count, parts = max(1, min(threads, n))
        nonisolated(unsafe) var verdict = [String?](repeating: nil, count: n)
        verdict.withUnsafeMutableBufferPointer { vb in
            nonisolated(unsafe) let v = vb
            let cands = candidates
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                for k in stride(from: part, to: n, by: parts) {
                    let path = cands[k].0
                    var d: ObjCBool = false
                    if FileManager.default.fileExists(atPath: path, isDirectory: &d), d.boolValue { v[k] = "is a folder"; continue }
                    do {
                        let bytes = try readFile(path)
                        guard ImageCodec.sniff(bytes) != nil else { v[k] = "not an image"; continue }
                        let img = try ImageCodec.decode(bytes, name: path)
                        if let e = expectedSize, img.width != e.width || img.height != e.height {
                            v[k] = "size \(img.width)x\(img.height), expected \(e.width)x\(e.height)"
                        }
                    } catch let e as DataError { v[k] = e.message } catch { v[k] = "\(error)" }
                }
            }
        }
        var files = [String](), labels = [Int32](), perClass = [Int](repeating: 0, count: classes.count)
        for k in 0..<n {
            if let why = verdict[k] {
                if strict { throw DataError(.decode, candidates[k].0, why) }
                skipped.append((candidates[k].0, why))
            } else {
                files.append(candidates[k].0); labels.append(Int32(candidates[k].1)); perClass[candidates[k].1] += 1
            }
        }
        if let empty = perClass.firstIndex(of: 0) {
            throw DataError(.empty, root + "/" + classes[empty], "identity folder has no usable image")
        }
        self.root = root; classNames = classes; self.files = files; self.labels = labels; self.skipped = skipped
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
    public var summary: String { "folder \(root): \(classCount) ids, \(count) images, \(skipped.count) skipped" }

    /// A log paragraph: counts and the skipped files with reasons (at most `limit` listed).
    public func scanReport(limit: Int = 50) -> String {
        var s = "\(summary)\n"
        for (p, why) in skipped.prefix(limit) { s += "  skipped \(p): \(why)\n" }
        if skipped.count > limit { s += "  ... and \(skipped.count - limit) more\n" }
        return s
    }

    /// Writes "label<TAB>folder name" lines, atomically, so a run's labels can be reproduced.
    public func writeLabels(to path: String) throws {
        let text = classNames.enumerated().map { "\($0.offset)\t\($0.element)\n" }.joined()
        try writeFileAtomically(path, Array(text.utf8))
    }
}
