// The harness command line: the root command `kdtrain-dist-harness` and one subcommand per mode,
// with every mode's options (names, types, defaults, help) and the closed choice sets as enums.
// Numeric options take the next argument unconditionally, as the hand-rolled `--key value` parser
// did before, so negative values (`--late -1`) still parse.
// Each subcommand's run() initializes MPI only after parsing, through `runJob` (Support.swift);
// the checks themselves are in the mode files (Collectives, Equivalence, SamplerCheck, Stall,
// Bench, Support for info).

import ArgumentParser
import Dist
import Foundation

struct DistHarness: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kdtrain-dist-harness",
        abstract: "mpirun-driven checks of Dist (run by DistTests) and the distributed benchmark.",
        discussion: """
            Run a mode under mpirun (or alone, as a world of one). Each check prints "OK <mode> ..." \
            on rank 0 and exits 0; any error ends the whole job (MPI_Abort) with "rank R: message".
            """,
        subcommands: [Info.self, Collectives.self, Equivalence.self, Sampler.self, Fail.self, Diverge.self,
                      Stall.self, Bench.self])

    func run() throws {
        throw ValidationError("choose a mode: info, collectives, equivalence, sampler, fail, diverge, stall or bench")
    }

    /// Parses the command line and runs the chosen mode. Under mpirun every rank parses the same
    /// command line: a usage error (or --help) is printed by the first rank only; the others exit
    /// with the same status, silently. Errors inside a mode never get here: `runJob` aborts the job.
    static func runMain() -> Never {
        do {
            var command = try parseAsRoot()
            try command.run()
            exit()
        } catch {
            if launcherRank() == 0 { exit(withError: error) }
            // mpirun ends the job as soon as one rank exits non-zero: give the first rank time to print.
            usleep(1_000_000)
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }
}

/// `--bn`: how the equivalence model's batch norm computes its statistics.
enum BatchNormMode: String, CaseIterable, ExpressibleByArgument {
    /// Statistics all-reduced over the ranks (one global batch).
    case sync
    /// Per-rank statistics; the running buffers are averaged before the final check.
    case local
    /// No batch norm (required for --micro > 1).
    case none
}

/// `fail --kind`: how the failing rank fails.
enum FailKind: String, CaseIterable, ExpressibleByArgument {
    /// A thrown Swift error (a missing file).
    case swift
    /// A real MPI error: a broadcast receive too small for the root's message (MPI_ERR_TRUNCATE).
    case truncate
}

/// `stall --how`: how the stalling rank stops making progress.
enum StallHow: String, CaseIterable, ExpressibleByArgument {
    /// SIGSTOP to itself before the step's backward.
    case stop
    /// Sleep for good (a hung read), sampling the waiting ranks' CPU time first.
    case sleep
    /// Nobody stalls: the steps complete and rank 0 prints "OK stall".
    case none
}

extension DistHarness {
    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "World size, local ranks, cores and threads per rank (a singleton works).")

        func run() throws { runJob { try runInfo($0) } }
    }

    struct Collectives: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Collectives on odd sizes and empty buffers, and the bucketed reducer against a blocking all-reduce.")

        func run() throws { runJob { try runCollectives($0) } }
    }

    struct Equivalence: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "W ranks reproduce the 1-rank training of a small batch-norm model; replicas agree bitwise after every step.")

        @Option(parsing: .unconditional, help: "Training steps.")
        var steps: Int = 40

        @Option(parsing: .unconditional, help: "Global batch (samples per step over all ranks).")
        var globalBatch: Int = 24

        @Option(parsing: .unconditional, help: "Micro-batches per step (gradient accumulation); > 1 needs --bn none.")
        var micro: Int = 1

        @Option(parsing: .unconditional, help: "1: overlap the gradient all-reduce with the backward; 0: reduce after it.")
        var overlap: Int = 1

        @Option(help: "Batch-norm statistics.")
        var bn: BatchNormMode = .sync

        func run() throws { runJob { try runEquivalence($0, self) } }
    }

    struct Sampler: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The distributed sampler under real ranks: every sample once per epoch, new order per epoch, exact resume.")

        @Option(parsing: .unconditional, help: "Epochs per case.")
        var epochs: Int = 3

        func run() throws { runJob { try runSampler($0, self) } }
    }

    struct Fail: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One rank fails while the others wait in a collective: the job must end non-zero with its message.")

        @Option(parsing: .unconditional, help: "The failing rank.")
        var rank: Int = 1

        @Option(help: "How it fails (truncate needs --rank > 0).")
        var kind: FailKind = .swift

        func run() throws { runJob { try runFail($0, self) } }
    }

    struct Diverge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One rank's parameters differ by one ulp: every rank must see the divergence, naming that rank.")

        @Option(parsing: .unconditional, help: "The diverging rank (default: the last rank).")
        var rank: Int?

        func run() throws { runJob { try runDiverge($0, self) } }
    }

    struct Stall: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Training-like steps in which one rank stalls at a chosen step: the watchdog must end the job.")

        @Option(parsing: .unconditional, help: "The stalling rank (default: the last rank).")
        var rank: Int?

        @Option(parsing: .unconditional, help: "The step at which it stalls.")
        var step: Int = 5

        @Option(parsing: .unconditional, help: "Steps to run (with --how none, the steps that must complete).")
        var steps: Int = 1_000_000

        @Option(help: "How the rank stalls.")
        var how: StallHow = .stop

        @Option(parsing: .unconditional, help: "Watchdog stall timeout, seconds.")
        var timeout: Double = 3

        @Option(parsing: .unconditional, help: "With --how sleep: seconds over which the waiting ranks' CPU time is sampled.")
        var sample: Double = 1.5

        @Option(parsing: .unconditional, help: "Floats in the simulated gradient buffer.")
        var params: Int = 300_000

        @Option(parsing: .unconditional, help: "A rank that reaches the stall step --late-ms after the others (-1: none).")
        var late: Int = -1

        @Option(parsing: .unconditional, help: "How late --late reaches the stall step, milliseconds.")
        var lateMs: Int = 0

        func run() throws { runJob { try runStall($0, self) } }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "All-reduce sweep, overlap of the bucketed reducer with a simulated backward, and weak-scaling steps.")

        @Option(parsing: .unconditional, help: "Floats in the simulated gradient buffer.")
        var params: Int = 4_000_000

        @Option(parsing: .unconditional, help: "Layers of the simulated backward.")
        var layers: Int = 50

        @Option(parsing: .unconditional, help: "Simulated backward time per step, milliseconds (calibrated on rank 0).")
        var backwardMs: Double = 200

        @Option(parsing: .unconditional, help: "Simulated forward time per step, milliseconds (calibrated on rank 0).")
        var forwardMs: Double = 100

        @Option(parsing: .unconditional, help: "Timed iterations per measurement.")
        var iterations: Int = 10

        @Option(parsing: .unconditional, help: "Largest all-reduce of the sweep, floats (the sweep goes 1024, 4096, ... up to it).")
        var maxFloats: Int = 16 << 20

        @Option(parsing: .unconditional, help: "Reducer bucket size, floats.")
        var bucket: Int = 1 << 20

        @Option(parsing: .unconditional, help: "Reducer first (smallest) bucket size, floats.")
        var firstBucket: Int = 1 << 16

        @Option(parsing: .unconditional, help: "Work units per simulated layer, fixed instead of calibrated (0: calibrate against --backward-ms).")
        var layerUnits: Int = 0

        @Option(parsing: .unconditional, help: "Work units per simulated forward, fixed instead of calibrated (0: calibrate against --forward-ms).")
        var forwardUnits: Int = 0

        func run() throws { runJob { try runBench($0, self) } }
    }
}
