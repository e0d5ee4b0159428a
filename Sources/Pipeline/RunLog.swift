// The run's metrics log (JSON lines, RUN/metrics.jsonl) and rank-0 printing.
import Foundation
import KDCore


/// Appends one JSON object per line to `metrics.jsonl` and prints human lines, on rank 0 only.
public final class RunLog {
    public let isRoot: Bool
    private let handle: FileHandle?
    public let quiet: Bool

    public init(path: String?, isRoot: Bool, quiet: Bool = false) throws {
        self.isRoot = isRoot; self.quiet = quiet
        if isRoot, let path {
            if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
            guard let h = FileHandle(forWritingAtPath: path) else { throw ConfigError("\(path): cannot open the metrics log") }
            h.seekToEndOfFile()
            handle = h
        } else { handle = nil }
    }

    deinit { try? handle?.close() }

    /// Prints a line (rank 0).
    public func say(_ line: String) {
        guard isRoot, !quiet else { return }
        print(line)
        fflush(nil)
    }

    /// Writes one metrics record (rank 0); values are JSON-serializable.
    public func record(_ fields: [String: Any]) {
        guard isRoot, let handle else { return }
        var f = fields
        f["time"] = Date().timeIntervalSince1970
        guard let d = try? JSONSerialization.data(withJSONObject: f, options: [.sortedKeys]) else { return }
        handle.write(d + Data("\n".utf8))
    }
}
