// The `kdtrain` root command: its subcommands, and the OpenBLAS kernel re-exec done before any of
// them runs. The command definitions live in this library (not in the executable) so that tests
// can parse command lines (`KDTrain.parseAsRoot`) without spawning the binary; Sources/Launcher
// only calls `KDTrain.main()`.
import ArgumentParser
import Foundation
import Model
import Dist
import FaceData

public struct KDTrain: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "kdtrain",
        abstract: "Knowledge-distillation training of low-quality face recognition, data-parallel over MPI.",
        version: kdtrainVersion,
        subcommands: [RunPipeline.self, TrainTeacher.self, Distill.self, Average.self, Evaluate.self, Embed.self, Export.self, Ablation.self, Compare.self,
                      ShowConfig.self, Pack.self, Bench.self],
        defaultSubcommand: RunPipeline.self)

    public init() {}

    public static func main() {
        selectBLASKernels()
        // Under mpirun every rank parses the same command line: a usage error (or --help) is printed
        // by the first rank only; the others exit with the same status, silently.
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if launcherRank() == 0 { exit(withError: error) }
            // mpirun ends the job as soon as one rank exits non-zero: give the first rank time to print.
            usleep(1_000_000)
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }

    /// Re-executes this program once with OPENBLAS_CORETYPE set when OpenBLAS fell back to generic
    /// kernels on a CPU that has AVX2+FMA (see `Compute.blasCoreOverride`). A user's own
    /// OPENBLAS_CORETYPE always wins. Runs before MPI is initialized.
    static func selectBLASKernels() {
        let env = ProcessInfo.processInfo.environment
        guard env["KDTRAIN_BLAS_REEXEC"] == nil, let core = Compute.blasCoreOverride(environment: env) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("KDTRAIN_BLAS_REEXEC", "1", 1)
        var args = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &args)
        // exec failed: continue with the generic kernels (the bench report names the core).
    }
}
