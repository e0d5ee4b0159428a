import Dist
import Foundation

/// A failed check, naming the rank.
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// `--key value` options; every option must be consumed by the mode (typos fail).
final class HarnessOptions {
    private var values: [String: String] = [:]
    private var used: Set<String> = []

    init(_ args: [String]) throws {
        var i = 0
        while i < args.count {
            let key = args[i]
            guard key.hasPrefix("--"), i + 1 < args.count else {
                throw HarnessError("bad option \(key): options are --key value pairs")
            }
            values[String(key.dropFirst(2))] = args[i + 1]
            i += 2
        }
    }

    func int(_ key: String, _ fallback: Int) throws -> Int {
        used.insert(key)
        guard let text = values[key] else { return fallback }
        guard let v = Int(text) else { throw HarnessError("--\(key) needs an integer, got \(text)") }
        return v
    }

    func double(_ key: String, _ fallback: Double) throws -> Double {
        used.insert(key)
        guard let text = values[key] else { return fallback }
        guard let v = Double(text) else { throw HarnessError("--\(key) needs a number, got \(text)") }
        return v
    }

    func string(_ key: String, _ fallback: String) -> String {
        used.insert(key)
        return values[key] ?? fallback
    }

    func checkAllUsed() throws {
        let unknown = Set(values.keys).subtracting(used)
        if !unknown.isEmpty { throw HarnessError("unknown options: \(unknown.sorted().map { "--" + $0 }.joined(separator: " "))") }
    }
}

func expect(_ condition: Bool, _ comm: Communicator, _ message: @autoclosure () -> String) throws {
    if !condition { throw HarnessError("rank \(comm.rank): check failed: \(message())") }
}

/// Prints on rank 0 only (and flushes, so mpirun relays it before exit).
func say(_ comm: Communicator, _ line: String) {
    if comm.isRoot {
        print(line)
        fflush(nil)
    }
}

func hex(_ xs: UnsafeBufferPointer<Float>) -> String {
    xs.map { String($0.bitPattern, radix: 16) }.joined(separator: " ")
}

func runInfo(_ comm: Communicator) throws {
    let ranks = try comm.allGather(Int64(comm.rank))
    try expect(ranks == (0..<comm.size).map(Int64.init), comm, "ranks \(ranks)")
    try expect(comm.localRank >= 0 && comm.localRank < comm.localSize && comm.localSize <= comm.size, comm,
               "local rank \(comm.localRank) of \(comm.localSize)")
    let threads = comm.recommendedThreads()
    try expect(threads >= 1, comm, "threads \(threads)")
    let allThreads = try comm.allGather(Int64(threads))
    say(comm, "OK info size=\(comm.size) localSize=\(comm.localSize) cores=\(Communicator.coresOnNode()) threads=\(allThreads.map(String.init).joined(separator: ",")) threadLevel=\(comm.providedThreadLevel)")
}
