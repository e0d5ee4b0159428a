// The libFuzzer harness: one executable for all parser targets, built by scripts/fuzz.sh with
// `-sanitize=fuzzer,address` (KDTRAIN_FUZZ=1 adds this target to Package.swift). The environment
// variable KDTRAIN_FUZZ_TARGET picks the target (pickle, recordio, safetensors, image, config); the
// arguments are libFuzzer's. A rejected input is fine; a rejection whose message is not one line
// naming the file or option is reported as a crash, like a trap, a hang or an over-allocation.
import CFuzzerDriver
import FuzzEntries
import Glibc

/// One line to stderr.
func say(_ s: String) { let line = Array((s + "\n").utf8); _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) } }

let want = getenv("KDTRAIN_FUZZ_TARGET").map { String(cString: $0) } ?? ""
guard let index = FuzzEntry.targets.firstIndex(where: { $0.name == want }) else {
    say("KDTRAIN_FUZZ_TARGET must be one of \(FuzzEntry.targets.map(\.name).joined(separator: ", ")) (got '\(want)')")
    exit(2)
}
let selected = FuzzEntry.targets[index]

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    if case .rejected(let m) = selected.run(bytes), let p = FuzzEntry.messageProblem(m, names: FuzzEntry.subjects(selected.name)) {
        say("kdtrain fuzz \(selected.name): \(p)")
        abort()
    }
    return 0
})
