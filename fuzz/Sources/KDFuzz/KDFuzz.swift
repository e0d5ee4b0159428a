// The libFuzzer harness: one executable for all parser targets, built by scripts/fuzz.sh with
// `-sanitize=fuzzer,address` (KDTRAIN_FUZZ=1 adds this target to Package.swift). The target is
// chosen by the environment variable KDTRAIN_FUZZ_TARGET (pickle, recordio, safetensors, image,
// config). libFuzzer supplies main(). A rejected input is fine; a rejection whose message is not one
// line naming the file or option is reported as a crash, like a trap, a hang or an over-allocation.
import FaceData
import FuzzEntries

nonisolated(unsafe) var selected: (name: String, run: @Sendable ([UInt8]) -> FuzzEntry.Outcome)? = nil

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    let want = getenv("KDTRAIN_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let t = FuzzEntry.targets.first(where: { $0.name == want }) else {
        fputs("KDTRAIN_FUZZ_TARGET must be one of \(FuzzEntry.targets.map(\.name).joined(separator: ", ")) (got '\(want)')\n", stderr)
        exit(2)
    }
    selected = t
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let t = selected else { return 0 }
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    if case .rejected(let m) = t.run(bytes), let p = FuzzEntry.messageProblem(m, names: FuzzEntry.subjects(t.name)) {
        fputs("kdtrain fuzz \(t.name): \(p)\n", stderr)
        abort()
    }
    return 0
}
