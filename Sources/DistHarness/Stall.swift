// `stall` mode: training-like steps (bucketed gradient all-reduce overlapped with a simulated
// backward, a metric all-reduce, a barrier every few steps) in which one rank stops making
// progress at a chosen step, to check the watchdog (Sources/Dist/Watchdog.swift):
//
//   mpirun -n 2 kdtrain-dist-harness stall --rank 1 --step 5 --how stop --timeout 3
//
// --how stop: the rank sends itself SIGSTOP before the step's backward (the others wait in the
//   step's gradient all-reduce);
// --how sleep: it sleeps instead (a hung read), and meanwhile samples the CPU time of the waiting
//   ranks from /proc and prints "CPU waiting rank R: P%" (only where /proc is readable, one node);
// --how none: nobody stalls; the steps complete and rank 0 prints "OK stall".
// --late R --late-ms T: rank R reaches that step T ms after the others (deadlines at different times).
//
// The watchdog must end the job non-zero with the stall report; "OK stall" is printed only when
// no rank stalls.

import Dist
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// utime + stime of process `pid` in clock ticks, from /proc/PID/stat (nil when unreadable).
func cpuTicks(pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    // Fields after "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
    let rest = text[text.index(after: close)...].split(separator: " ")
    guard rest.count > 13, let u = Int(rest[11]), let s = Int(rest[12]) else { return nil }
    return u + s
}

func runStall(_ comm: Communicator, _ options: DistHarness.Stall) throws {
    let bad = options.rank ?? comm.size - 1
    let at = options.step
    let steps = options.steps
    let how = options.how
    comm.stallTimeout = options.timeout
    let sample = options.sample
    let count = options.params
    // --late R --late-ms T: rank R reaches the stall step T ms after the others.
    let late = options.late
    let lateMs = options.lateMs
    guard bad >= 0 && bad < comm.size else { throw HarnessError("--rank \(bad) outside 0..<\(comm.size)") }

    let pids = try comm.allGather(Int64(getpid()))
    let grads = UnsafeMutablePointer<Float>.allocate(capacity: count)
    defer { grads.deallocate() }
    let reducer = GradientReducer(communicator: comm, gradients: grads, count: count,
                                  options: ReducerOptions(bucketFloats: 65_536, firstBucketFloats: 8_192))
    let layers = 20
    var metrics = [Double](repeating: 0, count: 4)
    for step in 1...Swift.max(1, steps) {
        comm.progressStep = step
        let stalling = how != .none && comm.rank == bad && step == at
        if comm.rank == late && step == at && lateMs > 0 { usleep(useconds_t(lateMs) * 1000) }
        if stalling && how == .stop {
            print("rank \(comm.rank) stops itself (SIGSTOP) at step \(step)")
            fflush(nil)
            kill(getpid(), SIGSTOP)
        }
        if stalling && how == .sleep {
            print("rank \(comm.rank) sleeps at step \(step)")
            fflush(nil)
            // Sample the waiting ranks' CPU time while they wait, then sleep for good.
            usleep(500_000)
            let others = (0..<comm.size).filter { $0 != comm.rank }
            let before = others.map { cpuTicks(pid: Int32(pids[$0])) }
            let t0 = Date()
            usleep(useconds_t(sample * 1e6))
            let seconds = Date().timeIntervalSince(t0)
            let after = others.map { cpuTicks(pid: Int32(pids[$0])) }
            let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
            for (i, r) in others.enumerated() {
                if let b = before[i], let a = after[i] {
                    print(String(format: "CPU waiting rank %d: %.1f%% over %.1f s", r, Double(a - b) / hz / seconds * 100, seconds))
                }
            }
            fflush(nil)
            while true { sleep(3600) }
        }
        // Simulated backward: layer by layer from the end, reporting ready gradients.
        for l in stride(from: layers - 1, through: 0, by: -1) {
            let lo = count * l / layers, hi = count * (l + 1) / layers
            for i in lo..<hi { grads[i] = Float(comm.rank + 1) * Float(i % 13) }
            try reducer.gradientsReady(from: lo)
        }
        try reducer.finish()
        metrics[0] = Double(step); metrics[1] = Double(comm.rank)
        try comm.allReduce(&metrics, op: .sum)
        if step % 4 == 0 { try comm.barrier() }
    }
    let w = Float(comm.size)
    let want = Float((count - 1) % 13) * (w + 1) / 2
    try expect(abs(grads[count - 1] - want) <= 1e-5 * want, comm, "reduced gradient \(grads[count - 1]), want \(want)")
    say(comm, "OK stall steps=\(steps) collectives=\(comm.collectiveCount)")
}
