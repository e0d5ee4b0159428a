// The stall watchdog at the kdtrain level: under `mpirun -n 2 kdtrain train-teacher` with
// `dist.stallTimeout=3`, SIGSTOP sent to rank 1 in the middle of training ends the job, non-zero,
// within a bounded time, with one line naming rank 1 and the collective rank 0 waits in.
import Foundation
import XCTest
import TestSupport

final class StallEndToEndTests: XCTestCase {
    /// The ranks (children of mpirun running `name`) by OMPI_COMM_WORLD_RANK, from /proc.
    func ranks(ofMPIRun mpirun: Int32, named name: String) -> [Int: Int32] {
        var out: [Int: Int32] = [:]
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return out }
        for e in entries {
            guard let pid = Int32(e),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == mpirun,
                  let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"),
                  exe.hasSuffix("/" + name),
                  let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            for entry in env.split(separator: 0) {
                let text = String(decoding: entry, as: UTF8.self)
                if text.hasPrefix("OMPI_COMM_WORLD_RANK="), let r = Int(text.dropFirst("OMPI_COMM_WORLD_RANK=".count)) {
                    out[r] = pid
                }
            }
        }
        return out
    }

    func testStoppedRankEndsTrainingJobNamingIt() throws {
        let kdtrain = try ProcessRunner.executable("kdtrain")
        let dir = try temporaryRunDirectory(self)
        let args = ["train-teacher", "--run-dir", dir] + tinyRun
            + ["--set", "teacher.epochs=1000", "--set", "logEvery=1", "--set", "dist.stallTimeout=3"]
        let p = try ProcessRunner.launch(kdtrain, ranks: 2, args)
        // Training runs: a few steps logged.
        let training = p.waitFor(timeout: 240) { p.currentOutput.contains("step 3/") }
        XCTAssert(training, "training did not start:\n\(p.currentOutput)")
        let pids = ranks(ofMPIRun: p.process.processIdentifier, named: "kdtrain")
        guard training, let rank1 = pids[1] else {
            p.process.terminate()
            _ = p.finish(timeout: 30)
            XCTFail("rank processes not found under mpirun: \(pids)")
            return
        }
        let stopped = Date()
        kill(rank1, SIGSTOP)
        let r = p.finish(timeout: 120)
        let seconds = Date().timeIntervalSince(stopped)
        XCTAssertFalse(r.timedOut, "the job hung after rank 1 was stopped:\n\(r.output)")
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssert(r.stderr.contains("rank 0: kdtrain: stalled: rank 1 did not reach the "), r.output)
        XCTAssert(r.stderr.contains(" of step ") && r.stderr.contains("within 3 s (rank 0 reached it)"), r.output)
        XCTAssertEqual(r.stderr.components(separatedBy: "stalled: ").count - 1, 1, "want exactly one stall report:\n\(r.output)")
        XCTAssertLessThan(seconds, 30, "ending the job took \(seconds) s after SIGSTOP")
        print("kdtrain train-teacher, rank 1 stopped: job ended \(String(format: "%.1f", seconds)) s after SIGSTOP; "
              + (r.stderr.split(separator: "\n").first { $0.contains("stalled: ") }.map(String.init) ?? ""))
    }
}
