// The entry points of the parser fuzz targets (fuzz/, scripts/fuzz.sh) and of the corpus replay test
// (Tests/FuzzTests). Each takes arbitrary bytes, feeds them to the same public API the product uses on
// a file of that kind, and reports whether the input was accepted or rejected with which message.
// A thrown error is a correct answer to bad input; a trap, a hang or an allocation beyond the bounds
// in README.md ("Fuzzing the parsers") is a bug. Nothing here is linked into the `kdtrain` executable.
//
// Inputs that need more than one file (RecordIO .rec + .idx, a config file + --set overrides) are
// split by the small layouts documented on each entry; parsers that only read paths get the bytes
// through a scratch file under $TMPDIR (or /tmp), named per process and removed after each input.
import FaceData
import Foundation
import Model
import Pipeline

public enum FuzzEntry {
    /// What a parser made of one input.
    public enum Outcome: Equatable, Sendable {
        case accepted
        /// The input was rejected with this error description.
        case rejected(String)
    }

    /// The fuzz targets by name (the folder names under fuzz/corpus).
    public static let targets: [(name: String, run: @Sendable ([UInt8]) -> Outcome)] = [
        ("pickle", pickle), ("recordio", recordIO), ("safetensors", safetensors), ("image", image), ("config", config),
    ]

    /// A rejection message is one non-empty line that names the file (or option) it is about;
    /// nil when it is, else what is wrong with it. `names` are the accepted subjects. Both checks
    /// look at Unicode scalars and bytes, not Characters: a combining mark after a line break or
    /// after the space of "--set " joins them into one Character.
    public static func messageProblem(_ message: String, names: [String]) -> String? {
        if message.isEmpty { return "empty error message" }
        let breaks: Set<Unicode.Scalar> = ["\n", "\r", "\u{0B}", "\u{0C}", "\u{85}", "\u{2028}", "\u{2029}"]
        if message.unicodeScalars.contains(where: breaks.contains) { return "error message spans several lines: \(message.debugDescription)" }
        let bytes = Array(message.utf8)
        func mentions(_ name: String) -> Bool {
            let n = Array(name.utf8)
            guard !n.isEmpty, n.count <= bytes.count else { return n.isEmpty }
            return (0...(bytes.count - n.count)).contains { bytes[$0..<($0 + n.count)].elementsEqual(n) }
        }
        if !names.contains(where: mentions) { return "error message names none of \(names): \(message.debugDescription)" }
        return nil
    }

    /// The subjects a rejection by target `name` must mention (see `messageProblem`).
    public static func subjects(_ name: String) -> [String] {
        switch name {
        case "pickle": return [pickleName]
        case "recordio": return [scratch("rec"), scratch("idx")]
        case "safetensors": return [safetensorsName]
        case "image": return [imageName]
        case "config": return [scratch("json"), "--set ", "configuration:"]
        default: return []
        }
    }

    static let pickleName = "fuzz.bin", safetensorsName = "fuzz.safetensors", imageName = "fuzz.image"

    /// insightface verification set (.bin): the whole input is the file (`PickleBin.read`, what
    /// `BinPairSet` and `--eval bin:` use).
    @Sendable public static func pickle(_ b: [UInt8]) -> Outcome {
        outcome { _ = try PickleBin.read(b, name: pickleName) }
    }

    /// safetensors checkpoint or teacher weights: the whole input is the file (`SafeTensors.decode`,
    /// what `SafeTensors.read` and checkpoint loading use).
    @Sendable public static func safetensors(_ b: [UInt8]) -> Outcome {
        outcome { _ = try SafeTensors.decode(Foundation.Data(b), path: safetensorsName) }
    }

    /// An encoded image (JPEG, PNG, PGM/PPM or anything else): `ImageCodec.decode`, what every image
    /// folder, .rec record and .bin pair goes through; `unsupportedFormat` runs on it too.
    @Sendable public static func image(_ b: [UInt8]) -> Outcome {
        _ = ImageCodec.unsupportedFormat(b)
        return outcome { _ = try ImageCodec.decode(b, name: imageName) }
    }

    /// A RecordIO training set, opened with `RecordSet` as `--train rec:` does (images validated,
    /// one thread), then every sample read back. Layout: byte 0 bit 0 set = an .idx file follows
    /// (bytes 1-2: its length L, little-endian; then L bytes of .idx text; the rest is the .rec),
    /// clear = the rest is a .rec read sequentially without .idx; bit 1 = strict mode.
    /// `RecordIO.unpack` also runs on the .rec bytes as a payload.
    @Sendable public static func recordIO(_ b: [UInt8]) -> Outcome {
        guard let mode = b.first else { return .rejected("\(scratch("rec")): empty input") }
        var rest = b.dropFirst()
        var idx: ArraySlice<UInt8>? = nil
        if mode & 1 != 0 {
            let l = rest.count >= 2 ? Int(rest[rest.startIndex]) | Int(rest[rest.startIndex + 1]) << 8 : 0
            rest = rest.dropFirst(2)
            idx = rest.prefix(l); rest = rest.dropFirst(l)
        }
        _ = try? RecordIO.unpack(Array(rest), name: scratch("rec"))
        let rec = scratch("rec"), idxPath = scratch("idx")
        defer { unlink(rec); unlink(idxPath) }
        unlink(idxPath)
        guard write(rest, to: rec), idx.map({ write($0, to: idxPath) }) ?? true else { return .rejected("\(rec): cannot write the scratch file") }
        return outcome {
            let set = try RecordSet(rec: rec, idx: idx == nil ? nil : idxPath, strict: mode & 2 != 0, threads: 1)
            _ = set.summary; _ = set.scanReport()
            for i in 0..<set.count { _ = try set.label(i); _ = try set.sample(i) }
        }
    }

    /// A run configuration, read with `RunConfig.load` as `kdtrain train/validate --config F --set K=V`
    /// does, then validated for 1 and 8 ranks and rendered. Layout: the bytes before the first NUL are
    /// the JSON file (no NUL: the whole input; empty: no file), the lines after it are `--set` overrides.
    @Sendable public static func config(_ b: [UInt8]) -> Outcome {
        let nul = b.firstIndex(of: 0)
        let json = b[..<(nul ?? b.endIndex)]
        let overrides = nul.map { b[($0 + 1)...].split(separator: 10).map { String(decoding: $0, as: UTF8.self) } } ?? []
        let path = scratch("json")
        defer { unlink(path) }
        if !json.isEmpty, !write(json, to: path) { return .rejected("\(path): cannot write the scratch file") }
        return outcome {
            let c = try RunConfig.load(file: json.isEmpty ? nil : path, overrides: overrides)
            for ranks in [1, 8] { _ = c.problems(worldSize: ranks) }
            _ = c.json; _ = c.blockSelection; _ = c.marginKind
            _ = c.lossConfig(stageCount: 4)
        }
    }

    // MARK: helpers

    static func outcome(_ body: () throws -> Void) -> Outcome {
        do { try body(); return .accepted } catch { return .rejected("\(error)") }
    }

    /// A per-process scratch path with this extension.
    static func scratch(_ ext: String) -> String {
        let dir = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return (dir as NSString).appendingPathComponent("kdtrain-fuzz-\(getpid()).\(ext)")
    }

    static func write(_ bytes: ArraySlice<UInt8>, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let r = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + done, $0.count - done) }
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { return false }
            done += r
        }
        return true
    }
}
