// The pipeline subcommands. Each starts MPI (a singleton world of one without mpirun), applies
// the per-rank thread policy, validates the whole configuration before any work, and maps every
// error to one line and a non-zero exit: with several ranks, the failing rank aborts the job
// with its message instead of leaving the others waiting in a collective.
import ArgumentParser
import CStop
import Dist
import Foundation
import Model
import Pipeline

/// Options shared by the pipeline subcommands.
struct RunOptions: ParsableArguments {
    @Option(help: "JSON configuration file (every option, see README); command-line --set wins.")
    var config: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("Override one option: section.key=value (repeatable), e.g. --set optim.batch=128.", valueName: "key=value"))
    var overrides: [String] = []
    @Option(help: "Run directory (configuration, metrics, checkpoints, evaluation, report).")
    var runDir = "runs/kdtrain"
    @Option(help: ArgumentHelp("Continue from checkpoints: 'auto' (each phase from its latest checkpoint), or PATH: the phase that wrote that checkpoint resumes from it, the other continues as with auto (not for ablation, compare).", valueName: "auto|PATH"))
    var resume: String?
    @Flag(help: "Print only errors.")
    var quiet = false

    var resumeMode: ResumeMode {
        switch resume { case nil: return .none; case "auto"?: return .auto; case let p?: return .path(p) }
    }
}

/// This process's rank as the launcher (mpirun, srun) announces it, before MPI starts; 0 alone.
func launcherRank() -> Int {
    let env = ProcessInfo.processInfo.environment
    for key in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"] {
        if let v = env[key], let r = Int(v) { return r }
    }
    return 0
}

/// Runs `body` inside an MPI job with the thread policy applied; maps errors to one line.
func withJob(_ opts: RunOptions, presets: [String] = [], _ body: (Communicator, RunConfig) throws -> Bool) throws {
    try withJob(config: opts.config, overrides: presets + opts.overrides,
                stopNote: "continue with --resume auto --run-dir \(opts.runDir)", body)
}

/// The same for commands without a run directory. `validateForRanks`: the world size the
/// configuration is checked for (default: the job's); commands that do not train pass 1, so that
/// training-only constraints (optim.batch divisible by the ranks) do not refuse them.
func withJob(config: String?, overrides: [String], stopNote: String, validateForRanks: Int? = nil,
             _ body: (Communicator, RunConfig) throws -> Bool) throws {
    let comm: Communicator
    do { comm = try Communicator() } catch {
        Communicator.abortJob(message: "MPI initialization failed: \(error)")
    }
    Compute.setThreads(comm.recommendedThreads())
    // A stop signal that arrives before training starts is kept and honoured at the first step.
    kd_install_stop_handlers()
    do {
        // Every rank reads and checks the same configuration: one agreed failure, printed once.
        let cfg = try comm.agree {
            let cfg = try RunConfig.load(file: config, overrides: overrides)
            let problems = cfg.problems(worldSize: validateForRanks ?? comm.size)
            if !problems.isEmpty { throw ConfigError(problems.map { "invalid option: \($0)" }.joined(separator: "\n")) }
            return cfg
        }
        comm.stallTimeout = cfg.dist.stallTimeout
        let finished = try body(comm, cfg)
        if !finished && comm.isRoot {
            print("kdtrain: stopped by a signal after writing a checkpoint; \(stopNote)")
        }
        try comm.finalize()
        throw ExitCode.success
    } catch let e as ExitCode {
        throw e
    } catch let e as AgreedFailure {
        // Every rank failed this check together: the lowest failing rank prints it, none aborts.
        if let m = e.message {
            let prefix = comm.size > 1 && e.rank != 0 ? "rank \(e.rank): " : ""
            let note = comm.size > 1 ? "\nkdtrain: every rank stops with exit status 1 (mpirun's notice below reports that)" : ""
            FileHandle.standardError.write(Data("kdtrain: \(prefix)\(m)\(note)\n".utf8))
        }
        try? comm.finalize()
        throw ExitCode.failure
    } catch {
        if comm.size > 1 {
            // An error that every rank meets at once would otherwise be printed by each: the other
            // ranks give rank 0 half a second to print it and end the job first.
            if !comm.isRoot { usleep(500_000) }
            comm.abortJob(message: "kdtrain: \(error)\nkdtrain: rank \(comm.rank) ends the whole job with MPI_Abort (OpenMPI's MPI_ABORT notice below is expected)")
        }
        FileHandle.standardError.write(Data("kdtrain: \(error)\n".utf8))
        try? comm.finalize()
        throw ExitCode.failure
    }
}

struct RunPipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "The whole job (default): train the teacher, distill the student, average, evaluate, report.")
    @OptionGroup var options: RunOptions
    func run() throws {
        try withJob(options) { comm, cfg in
            let run = try Run(comm: comm, config: cfg, dir: options.runDir, resume: options.resumeMode, quiet: options.quiet)
            return try run.pipeline()
        }
    }
}

struct TrainTeacher: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-teacher",
                                                    abstract: "Train the teacher on high-quality faces (recognition loss only).")
    @OptionGroup var options: RunOptions
    func run() throws {
        try withJob(options) { comm, cfg in
            let run = try Run(comm: comm, config: cfg, dir: options.runDir, resume: options.resumeMode, quiet: options.quiet)
            try run.requireResumePhase(.teacher, for: "train-teacher")
            return try run.teacher() != nil
        }
    }
}

struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Distill the student from a frozen teacher (--teacher, teacher.checkpoint, or the run's finished teacher).")
    @OptionGroup var options: RunOptions
    @Option(help: "Teacher checkpoint (default: teacher.checkpoint, else the latest in RUN/teacher).")
    var teacher: String?
    func run() throws {
        try withJob(options) { comm, cfg0 in
            var cfg = cfg0
            try comm.agree {
                cfg.teacher.checkpoint = RunDirectory(options.runDir).teacherForDistillation(explicit: teacher, configured: cfg.teacher.checkpoint)
                guard cfg.teacher.checkpoint != nil else {
                    throw ConfigError("distill: no teacher: pass --teacher PATH, set teacher.checkpoint, or run train-teacher first")
                }
            }
            let run = try Run(comm: comm, config: cfg, dir: options.runDir, resume: options.resumeMode, quiet: options.quiet)
            try run.requireResumePhase(.student, for: "distill")
            guard let t = try run.teacher() else { return false }
            return try run.student(teacher: t, phaseDir: run.layout.phase(.student)) != nil
        }
    }
}

struct Average: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Average the student's last K (or the listed) checkpoints and re-estimate batch-norm statistics.")
    @OptionGroup var options: RunOptions
    @Option(parsing: .upToNextOption, help: "Checkpoints to average (default: the last checkpoints.average of RUN/student).")
    var checkpoints: [String] = []
    @Option(help: "Output checkpoint (default RUN/student/averaged.safetensors).")
    var output: String?
    @Flag(help: "Average checkpoints of different models or runs anyway.")
    var force = false
    func run() throws {
        try withJob(options) { comm, cfg in
            let run = try Run(comm: comm, config: cfg, dir: options.runDir, resume: .auto, quiet: options.quiet)
            _ = try run.average(phaseDir: run.layout.phase(.student), paths: checkpoints.isEmpty ? nil : checkpoints,
                                force: force, output: output)
            return true
        }
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verification accuracy (10-fold), TAR@FAR=1e-3 and AUC of checkpoints at each degradation factor.",
        discussion: """
        With eval.identification (tinyface:ROOT or folders:PROBE,MATCH[,DISTRACTOR]) also closed-set \
        identification, CMC rank-1/5/20; with eval.survface (POSITIVE_LIST,NEGATIVE_LIST@ROOT) also open-set \
        verification, TAR at FAR 0.3/0.1/0.01/0.001. Results in RUN/eval/evaluate.{json,md}.
        """)
    @OptionGroup var options: RunOptions
    @Option(parsing: .upToNextOption, help: "Checkpoints to evaluate (default: the run's teacher, last student and averaged student).")
    var checkpoints: [String] = []
    func run() throws {
        try withJob(options) { comm, cfg in
            let run = try Run(comm: comm, config: cfg, dir: options.runDir, resume: .auto, quiet: options.quiet)
            // Bad evaluation data stops the command before any checkpoint is read.
            try run.checkEvaluationSources()
            let paths = checkpoints.isEmpty ? run.layout.defaultEvaluationCheckpoints() : checkpoints
            let models = try run.opening { () throws -> [(String, FaceModel)] in
                guard !paths.isEmpty else { throw ConfigError("evaluate: no checkpoints given and none in \(options.runDir)") }
                var models: [(String, FaceModel)] = []
                for p in paths {
                    let c = try Checkpoint.read(p)
                    let m = FaceModel(config: c.identity.network, classes: c.identity.classes, margin: cfg.marginKind, seed: 0, trainable: false)
                    try Checkpoint.load(c, into: m.store, identity: c.identity, momentum: false)
                    models.append((URL(fileURLWithPath: p).lastPathComponent, m))
                }
                return models
            }
            try run.evaluate(models, title: "kdtrain evaluate", prefix: "evaluate")
            return true
        }
    }
}

/// Options of the multi-seed studies (ablation, compare).
struct StudyOptions: ParsableArguments {
    @Option(help: "Train every student with this many seeds (seed, seed+1, ...); the report gives mean and std over seeds and paired tests.")
    var seeds = 1
    @Flag(help: "The longer schedule: teacher.epochs=\(StudyOptions.longEpochs) and student.epochs=\(StudyOptions.longEpochs) unless --set gives them (short schedules may hide the attention effect).")
    var long = false
    static let longEpochs = 6
    var presets: [String] { long ? ["teacher.epochs=\(StudyOptions.longEpochs)", "student.epochs=\(StudyOptions.longEpochs)"] : [] }

    /// Runs one study (`Run.ablation` or `Run.compare`) inside an MPI job.
    func run(_ options: RunOptions, _ study: @escaping (Run, Int) throws -> Bool) throws {
        try withJob(options, presets: presets) { comm, cfg in
            let run = try Run(comm: comm, config: cfg, dir: options.runDir, resume: options.resumeMode, quiet: options.quiet)
            return try study(run, seeds)
        }
    }
}

struct Ablation: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The paper's Table 1 from one teacher: student without KD, + logit KD, + attention KD, + both.",
        discussion: """
        The teacher is trained once into RUN/teacher/, or, with --set teacher.checkpoint=PATH, loaded from \
        that checkpoint and not trained. With seed S and --seeds N, the students of all four rows are \
        trained with seeds S, S+1, ..., S+N-1 (the same seeds for every row), and the report gives the mean \
        and std over seeds; only the distillation terms differ between rows. The loss starts from \
        loss.recipe (default paper). Students go to RUN/ablation/seed-S/{basic,kd,att,kd-att}/, the tables \
        to RUN/eval/ablation.{json,md,svg} and RUN/report.md. Options worth knowing: seed, \
        teacher.checkpoint, loss.recipe, loss.balanceEvery, eval.degrade.
        """)
    @OptionGroup var options: RunOptions
    @OptionGroup var study: StudyOptions
    func run() throws { try study.run(options) { try $0.ablation(seeds: $1) } }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The paper's Tables 3-4 from one teacher: CosFace, ArcFace, attention transfer, A-SKD and the paper's method.",
        discussion: """
        Each row uses its recipe's cited values (kdtrain config --recipes); same teacher, data, schedule \
        and seeds. Students go to RUN/compare/seed-S/<row>/, the tables to RUN/eval/compare.{json,md,svg}.
        """)
    @OptionGroup var options: RunOptions
    @OptionGroup var study: StudyOptions
    func run() throws { try study.run(options) { try $0.compare(seeds: $1) } }
}

struct ShowConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the effective configuration (defaults, then --config, then --set) as JSON and check it.",
        discussion: """
        Every option is printed, optional ones that are not set as null; the output reads back with \
        --config. --explain lists each option with its default, what it takes and one line on what it does.
        """)
    @OptionGroup var options: RunOptions
    @Option(help: "Ranks to validate the configuration for.")
    var ranks = 1
    @Flag(help: "List the loss recipes with their values and sources instead.")
    var recipes = false
    @Flag(help: "List every option with its default, what it takes and a one-line description (and the value set, where it differs).")
    var explain = false
    func run() throws {
        if recipes {
            for r in LossRecipe.all {
                print("\(r.name): \(r.summary)\n  source: \(r.source)")
            }
            return
        }
        let cfg = try RunConfig.load(file: options.config, overrides: options.overrides)
        print(explain ? cfg.explanation() : cfg.fullJSON)
        if let r = LossRecipe.named[cfg.loss.recipe] {
            let o = LossRecipe.overriddenKeys(cfg.loss)
            FileHandle.standardError.write(Data("loss.recipe \(r.name): \(r.summary)\n  source: \(r.source)\n".utf8))
            if !o.isEmpty { FileHandle.standardError.write(Data("  set explicitly, over the recipe: \(o.joined(separator: ", "))\n".utf8)) }
        }
        let problems = cfg.problems(worldSize: ranks)
        for p in problems { FileHandle.standardError.write(Data("invalid option: \(p)\n".utf8)) }
        if !problems.isEmpty { throw ExitCode.failure }
    }
}
