// The whole pipeline and its phases over one run directory:
//
//   RUN/config.json           effective configuration, software version, world size
//   RUN/metrics.jsonl         one JSON object per progress line, checkpoint and event
//   RUN/teacher/step-*.safetensors, RUN/student/step-*.safetensors (last K kept)
//   RUN/student/averaged.safetensors   mean of the last K student checkpoints, BN re-estimated
//   RUN/eval/results.json, results.md, accuracy.svg
//   RUN/report.md
//
// Resume: with `resume: .auto` each phase continues from its latest checkpoint (a finished phase
// is loaded, not retrained); without it, a run directory that already holds checkpoints is
// refused, so earlier results are never overwritten.
import CStop
import Dist
import Evaluation
import FaceData
import Foundation
import Model
import KDCore

public enum ResumeMode: Equatable, Sendable {
    case none, auto
    case path(String)
}

public final class Run {
    public let comm: Communicator
    public let cfg: RunConfig
    public let dir: String
    public let resume: ResumeMode
    public let log: RunLog
    /// Identifies this run directory's run (kept across resumes); stored in every checkpoint so
    /// that averaging refuses checkpoints of different runs unless forced. Rank 0 only.
    public private(set) var runID = ""
    private var trainSetCache: (any TrainingSet)?
    private var pairSetCache: (any PairSet, String)?
    private var identificationCache: IdentificationSet?
    private var openSetCache: ListPairSet?
    /// The loss balance measured by the last student phase (empty when it was loaded, not trained).
    public internal(set) var lastBalance = LossBalance()
    /// Whether this job created the run directory (rank 0); a job whose data fail to open then
    /// removes it again instead of leaving an empty run behind.
    private var createdDirectory = false

    public init(comm: Communicator, config: RunConfig, dir: String, resume: ResumeMode, quiet: Bool = false) throws {
        self.comm = comm; cfg = config; self.dir = dir; self.resume = resume
        let problems = config.problems(worldSize: comm.size)
        guard problems.isEmpty else { throw ConfigError(problems.joined(separator: "\n")) }
        var orphans: [String] = []
        // Rank 0 alone prepares the directory; every rank learns whether that failed (one message).
        var created = false
        var id = ""
        try comm.agree {
            guard comm.isRoot else { return }
            created = !FileManager.default.fileExists(atPath: dir)
            // One job per run directory: the lock is held until this process ends. With it held, no
            // live job writes here, so temporaries of atomic writes are leftovers of a killed job.
            try RunDirectory.create(dir)
            try RunDirectory.lock(dir)
            orphans = RunDirectory.removeOrphanTemporaries(in: dir)
            try RunDirectory.create(dir, subdirectories: ["teacher", "student", "eval"])
            if resume == .none {
                let existing = Checkpoint.list(in: dir + "/teacher") + Checkpoint.list(in: dir + "/student")
                if let first = existing.first {
                    throw ConfigError("\(dir): already holds checkpoints (\(first)); use --resume auto to continue it, or another --run-dir")
                }
            }
            if let old = FileManager.default.contents(atPath: dir + "/config.json"),
               let o = try? JSONSerialization.jsonObject(with: old) as? [String: Any], let stored = o["run_id"] as? String {
                id = stored
            } else {
                id = UUID().uuidString.lowercased()
            }
            var meta: [String: Any] = (try JSONSerialization.jsonObject(with: Data(config.json.utf8))) as! [String: Any]
            meta = ["config": meta, "kdtrain_version": kdtrainVersion, "world_size": comm.size, "run_id": id,
                    "blas_core": Compute.blasCore, "threads_per_rank": Compute.threads]
            let data = try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys])
            try AtomicFile.write(data, to: dir + "/config.json")
        }
        createdDirectory = created
        runID = id
        if case .path(let p) = resume {
            resumePathRole = try comm.agree { try Run.phase(ofResumeCheckpoint: p) }
        }
        log = try RunLog(path: dir + "/metrics.jsonl", isRoot: comm.isRoot, quiet: quiet)
        if !orphans.isEmpty {
            log.say("run directory: removed \(orphans.count) temporary file(s) left by an interrupted job (\(orphans.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: ", ")))")
        }
    }

    // MARK: data

    public func trainingSet() throws -> any TrainingSet {
        if let t = trainSetCache { return t }
        let t = try opening { () throws -> any TrainingSet in
            let src = try DataSource(parsing: cfg.data.train)
            let t = try src.trainingSet(threads: cfg.data.threads)
            if comm.isRoot {
                if let f = t as? ImageFolder { try f.writeLabels(to: dir + "/labels.tsv") }
                if let s = t as? SkipReporting {
                    let report = s.scanReport()
                    if !report.isEmpty { log.say(report) }
                    // The log shows the first 50; the whole list stays in the run directory.
                    if !s.skipped.isEmpty { try s.writeSkipped(to: dir + "/skipped.tsv") }
                }
            }
            return t
        }
        trainSetCache = t
        return t
    }

    public func pairSet() throws -> (any PairSet, String) {
        if let p = pairSetCache { return p }
        let src = try opening { try DataSource(parsing: cfg.data.eval) }
        let p = try opening { try src.pairSet(threads: cfg.data.threads) }
        let name: String
        switch src {
        case .synthetic: name = "synthetic"
        case .bin(let path), .folder(let path, _, _, _, _): name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        case .pairs(let list, _): name = URL(fileURLWithPath: list).deletingPathExtension().lastPathComponent
        case .rec(let path): name = path
        }
        pairSetCache = (p, name)
        return (p, name)
    }

    /// Whether any rank received a stop signal (collective: every rank must call it). Between
    /// phases, averaging and evaluation, the job then stops and `--resume auto` redoes only what
    /// is not finished.
    public func stopRequested(before what: String) throws -> Bool {
        var flag = [Double(kd_stop_requested())]
        if comm.size > 1 { try comm.allReduce(&flag, op: .max) }
        guard flag[0] > 0 else { return false }
        log.say("stop signal \(Int(flag[0])) received; stopping before \(what); the finished phases are kept, continue with --resume auto")
        log.record(["event": "interrupted", "before": what, "signal": Int(flag[0])])
        return true
    }

    /// Opens a data source (or reads an input) on every rank as one agreed step: a bad one is reported
    /// once, by the lowest rank that saw it. When it fails and this job created the run directory,
    /// which then holds no checkpoint, the directory is removed: a job refused over its input leaves
    /// nothing behind. A collective, like `Communicator.agree`.
    public func opening<T>(_ body: () throws -> T) throws -> T {
        do { return try comm.agree(body) } catch let e as AgreedFailure {
            if comm.isRoot && createdDirectory { discardFreshDirectory() }
            throw e
        }
    }

    /// Removes the run directory this job created, unless something of value is in it by now.
    private func discardFreshDirectory() {
        let fm = FileManager.default
        let kept = (fm.enumerator(atPath: dir)?.allObjects as? [String] ?? []).contains {
            $0.hasSuffix(".safetensors") || $0.hasPrefix("eval/") || $0 == "report.md"
        }
        guard !kept else { return }
        try? fm.removeItem(atPath: dir)
        createdDirectory = false
    }

    /// Opens both data sources (existence, counts, fold feasibility) so that a bad one stops the
    /// job before any training, not after it. Every rank opens them, so every rank fails alike.
    public func checkDataSources() throws {
        _ = try trainingSet()
        try checkEvaluationSources()
    }

    /// Opens the evaluation sources: the verification pairs and, when configured, the identification
    /// set (eval.identification) and the open-set pair lists (eval.survface).
    public func checkEvaluationSources() throws {
        _ = try pairSet()
        _ = try identificationSet()
        _ = try openSetPairs()
    }

    /// The eval.identification set (nil when not configured), opened once.
    public func identificationSet() throws -> IdentificationSet? {
        guard let spec = cfg.eval.identification else { return nil }
        if let s = identificationCache { return s }
        let s = try opening { try IdentificationSet(spec: spec) }
        if comm.isRoot { log.say(s.summary) }
        identificationCache = s
        return s
    }

    /// The eval.survface pairs (nil when not configured), read once.
    public func openSetPairs() throws -> ListPairSet? {
        guard let spec = cfg.eval.survface else { return nil }
        if let s = openSetCache { return s }
        let s = try opening { try ListPairSet(spec: spec) }
        if comm.isRoot { log.say("open-set verification: \(s.summary)") }
        openSetCache = s
        return s
    }

    // MARK: models

    func identity(_ preset: String, classes: Int, config: RunConfig? = nil) -> ModelIdentity {
        ModelIdentity(network: NetworkConfig.presets[preset]!, classes: classes, head: (config ?? cfg).marginKind.description)
    }

    func makeModel(_ preset: String, classes: Int, seed: UInt64, trainable: Bool, config: RunConfig? = nil) -> FaceModel {
        FaceModel(config: NetworkConfig.presets[preset]!, classes: classes, margin: (config ?? cfg).marginKind, seed: seed, trainable: trainable)
    }

    /// Total optimizer steps of a phase (independent of the number of ranks: the global batch is fixed).
    func totalSteps(epochs: Float, datasetSize: Int) -> Int {
        max(1, Int((epochs * Float(datasetSize / cfg.optim.batch)).rounded()))
    }

    /// The checkpoint to resume a phase from: nil = start fresh.
    /// `--resume PATH` resumes the phase that wrote PATH (its `phase` metadata) from PATH; the
    /// other phase continues as with `--resume auto` (a finished teacher is loaded, an unfinished
    /// one continues from its latest checkpoint), so nothing earlier is retrained or overwritten.
    func resumePoint(phaseDir: String, role: Trainer.Role) throws -> Checkpoint.Contents? {
        switch resume {
        case .none: return nil
        case .path(let p) where resumePathRole == role: return try Checkpoint.read(p)
        case .path, .auto:
            guard let last = Checkpoint.list(in: phaseDir).last else { return nil }
            return try Checkpoint.read(last)
        }
    }

    /// The phase a `--resume PATH` checkpoint belongs to (nil without one): its `phase` metadata,
    /// else the name of the folder it lies in (`teacher/` or `student/`).
    public private(set) var resumePathRole: Trainer.Role?

    static func phase(ofResumeCheckpoint path: String) throws -> Trainer.Role {
        let c = try Checkpoint.read(path)
        if let p = c.metadata["phase"] {
            guard let role = Trainer.Role(rawValue: p) else {
                throw CheckpointError(path, "its phase metadata '\(p)' is neither teacher nor student")
            }
            return role
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent
        guard let role = Trainer.Role(rawValue: folder) else {
            throw CheckpointError(path, "--resume PATH: the checkpoint does not say which phase wrote it (no 'phase' metadata, not in a teacher/ or student/ folder); use --resume auto")
        }
        return role
    }

    /// Refuses a `--resume PATH` of the wrong phase for `command` (train-teacher: a teacher
    /// checkpoint; distill: a student checkpoint). Collective.
    public func requireResumePhase(_ role: Trainer.Role, for command: String) throws {
        try opening {
            if let r = resumePathRole, r != role, case .path(let p) = resume {
                throw ConfigError("\(command) --resume \(p): that is a \(r.rawValue) checkpoint; \(command) resumes a \(role.rawValue) checkpoint (or use --resume auto)")
            }
        }
    }

    /// Trains (or resumes, or loads) the teacher. Returns nil when interrupted by a stop signal.
    public func teacher() throws -> FaceModel? {
        let data = try trainingSet()
        let id = identity(cfg.teacher.preset, classes: data.classCount)
        let model = makeModel(cfg.teacher.preset, classes: data.classCount, seed: cfg.seed &+ 101, trainable: true)
        if let path = cfg.teacher.checkpoint {
            try Checkpoint.load(try Checkpoint.read(path), into: model.store, identity: id, momentum: false)
            log.say("teacher: loaded \(path)")
            return model
        }
        let phaseDir = dir + "/teacher"
        let total = totalSteps(epochs: cfg.teacher.epochs, datasetSize: data.count)
        let start = try resumePoint(phaseDir: phaseDir, role: .teacher)
        if let s = start, s.position.step >= total {
            try Checkpoint.load(s, into: model.store, identity: id, momentum: true)
            log.say("teacher: finished earlier (\(s.path))")
            return model
        }
        let trainer = Trainer(role: .teacher, comm: comm, config: cfg, model: model, identity: id, teacher: nil,
                              trainSet: data, checkpointDir: phaseDir, log: log, runID: runID)
        switch try trainer.run(resume: start) {
        case .completed: return model
        case .interrupted: return nil
        }
    }

    /// Distills a student from `teacher` into `phaseDir` with the configured (or given) loss.
    /// Returns nil when interrupted.
    public func student(teacher: FaceModel, phaseDir: String, config override: RunConfig? = nil, variant: String? = nil) throws -> FaceModel? {
        let c = override ?? cfg
        let data = try trainingSet()
        let id = identity(c.student.preset, classes: data.classCount, config: c)
        let model = makeModel(c.student.preset, classes: data.classCount, seed: c.seed &+ 202, trainable: true, config: c)
        lastBalance = LossBalance()
        try FileManager.default.createDirectory(atPath: phaseDir, withIntermediateDirectories: true)
        if let path = c.student.checkpoint {
            try Checkpoint.load(try Checkpoint.read(path), into: model.store, identity: id, momentum: false)
        }
        let total = totalSteps(epochs: c.student.epochs, datasetSize: data.count)
        let start = try resumePoint(phaseDir: phaseDir, role: .student)
        if let s = start, s.position.step >= total {
            try Checkpoint.load(s, into: model.store, identity: id, momentum: true)
            log.say("student: finished earlier (\(s.path))")
            return model
        }
        let trainer = Trainer(role: .student, comm: comm, config: c, model: model, identity: id, teacher: teacher,
                              trainSet: data, checkpointDir: phaseDir, log: log, runID: runID)
        trainer.variant = variant
        let outcome = try trainer.run(resume: start)
        lastBalance = trainer.balance
        switch outcome {
        case .completed: return model
        case .interrupted: return nil
        }
    }

    /// Averages the last `checkpoints.average` checkpoints of `phaseDir` (or `paths`), re-estimates
    /// batch-norm statistics on training batches (all ranks), writes `averaged.safetensors`.
    public func average(phaseDir: String, paths: [String]? = nil, force: Bool = false, output: String? = nil) throws -> FaceModel {
        let data = try trainingSet()
        let list = paths ?? Array(Checkpoint.list(in: phaseDir).suffix(cfg.checkpoints.average))
        guard !list.isEmpty else { throw ConfigError("\(phaseDir): no checkpoints to average") }
        let first = try Checkpoint.read(list.last!)
        let id = first.identity
        let model = FaceModel(config: id.network, classes: id.classes, margin: cfg.marginKind, seed: 0, trainable: true)
        try Checkpoint.average(list, into: model.store, identity: id, force: force)
        try reestimateBatchNorm(model, data: data, batches: cfg.checkpoints.bnBatches)
        let out = output ?? phaseDir + "/averaged.safetensors"
        if comm.isRoot {
            // No optimizer state: the averaged model is for evaluation and export, not for resuming.
            try Checkpoint.save(model.store, identity: id, position: first.position,
                                extra: ["averaged_from": list.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: ","),
                                        "world_size": String(comm.size), "run_id": first.metadata["run_id"] ?? runID,
                                        "phase": first.metadata["phase"] ?? "student", "seed": first.metadata["seed"] ?? String(cfg.seed),
                                        "preprocessing": first.metadata["preprocessing"] ?? Preprocessing(config: cfg, inputSize: id.network.inputSize).json],
                                momentum: false, to: out)
        }
        log.say("average: \(list.count) checkpoint(s) -> \(out) (batch-norm statistics re-estimated on \(cfg.checkpoints.bnBatches) batch(es) per rank)")
        log.record(["event": "average", "inputs": list, "output": out])
        try comm.barrier()
        return model
    }

    /// Running statistics = the mean of the batch statistics of `batches` training batches per
    /// rank (student view), averaged over ranks. Weights are untouched.
    public func reestimateBatchNorm(_ model: FaceModel, data: any TrainingSet, batches: Int) throws {
        guard batches > 0 else { return }
        let perRank = max(2, cfg.optim.batch / comm.size / cfg.optim.accumulate)
        var sampler = try DistributedSampler(datasetSize: data.count, globalBatch: perRank * comm.size, worldSize: comm.size,
                                             rank: comm.rank, seed: cfg.seed ^ 0xB17E)
        let trainer = Trainer(role: .student, comm: comm, config: cfg, model: model, identity: identity(cfg.student.preset, classes: data.classCount),
                              teacher: nil, trainSet: data, checkpointDir: dir, log: log)
        let producer = try BatchProducer(source: data, config: trainer.batchConfig(seed: cfg.seed ^ 0xB17E))
        let batch = Batch(capacity: perRank, height: model.net.config.inputSize, width: model.net.config.inputSize)
        let bns = model.net.batchNorms
        for bn in bns {
            let st = model.store
            (st.buffers + bn.runningMeanOffset).update(repeating: 0, count: bn.channels)
            (st.buffers + bn.runningVarOffset).update(repeating: 1, count: bn.channels)
        }
        let saved = bns.map(\.momentum)
        defer { for (bn, m) in zip(bns, saved) { bn.momentum = m } }
        model.plan(batch: perRank, needsGrad: false)
        var pos = SamplerPosition(epoch: 0, step: 0)
        for k in 0..<batches {
            for bn in bns { bn.momentum = 1 / Float(k + 1) }
            try producer.fill(batch, indices: sampler.indices(at: pos), epoch: pos.epoch)
            pos = sampler.advance(pos)
            model.net.input.loadNCHW(batch.lr.baseAddress!)
            model.net.forward(training: true)
        }
        if comm.size > 1 { try comm.allReduceMean(model.store.buffers, count: model.store.bufferCount) }
    }

    /// Evaluates models and writes eval/results.json, results.md, accuracy.svg (rank 0): verification,
    /// and identification (eval.identification) and open-set verification (eval.survface) when set.
    @discardableResult
    public func evaluate(_ models: [(String, FaceModel)], title: String, prefix: String = "results") throws -> EvaluationReport? {
        let (pairs, name) = try pairSet()
        let ev = try Evaluator(comm: comm, config: cfg, pairs: pairs, datasetName: name)
        ev.progress = { [log] in log.say($0) }
        var results: [EvaluationResult] = []
        for (label, m) in models {
            let r = try ev.evaluate(m, name: label)
            results += r
            for x in r { log.record(["event": "evaluation", "model": label, "factor": x.degradationFactor, "accuracy": x.accuracy,
                                     "std": x.accuracyStd, "tar_at_far": x.tarAtFar, "auc": x.auc, "threshold": x.threshold]) }
        }
        var identification: [IdentificationResult]? = nil, openSet: [OpenSetResult]? = nil
        if let set = try identificationSet() {
            let ev = try IdentificationEvaluator(comm: comm, config: cfg, set: set,
                                                 datasetName: RunConfig.Eval.identificationName(cfg.eval.identification!))
            var rows: [IdentificationResult] = []
            for (label, m) in models {
                let r = try ev.evaluate(m, name: label)
                rows += r
                for x in r { log.record(["event": "identification", "model": label, "factor": x.degradationFactor,
                                         "ranks": x.ranks, "cmc": x.cmc]) }
            }
            identification = rows
        }
        if let pairs = try openSetPairs() {
            let ev = try Evaluator(comm: comm, config: cfg, pairs: pairs, datasetName: "SurvFace")
            var rows: [OpenSetResult] = []
            for (label, m) in models {
                let r = try ev.openSet(m, name: label)
                rows += r
                for x in r { log.record(["event": "open-set verification", "model": label, "factor": x.degradationFactor,
                                         "far": x.points.map(\.farTarget), "tar": x.points.map(\.tar), "auc": x.auc]) }
            }
            openSet = rows
        }
        guard comm.isRoot else { return nil }
        let report = EvaluationReport(title: title, results: results, identification: identification, openSet: openSet)
        let base = URL(fileURLWithPath: dir + "/eval")
        try report.writeJSON(to: base.appendingPathComponent(prefix + ".json"))
        try report.writeMarkdown(to: base.appendingPathComponent(prefix + ".md"))
        try report.writeSVG(dataset: name, to: base.appendingPathComponent(prefix == "results" ? "accuracy.svg" : prefix + ".svg"))
        log.say(report.markdownTables())
        return report
    }

    /// Writes RUN/report.md: what ran, the results table, where the files are.
    public func writeReport(_ report: EvaluationReport?, heading: String, notes: [String]) throws {
        guard comm.isRoot, let report else { return }
        var md = "# \(heading)\n\n"
        md += "kdtrain \(kdtrainVersion), \(comm.size) rank(s), OpenBLAS core \(Compute.blasCore), \(Compute.threads) thread(s) per rank.\n\n"
        md += "Training data: `\(cfg.data.train)`; verification pairs: `\(cfg.data.eval)`; teacher `\(cfg.teacher.preset)`, student `\(cfg.student.preset)`, head \(cfg.marginKind).\n\n"
        md += Run.evaluationProtocol(cfg) + "\n"
        // The report's own title line is this file's heading already.
        md += report.verificationTables().split(separator: "\n", omittingEmptySubsequences: false).dropFirst()
            .joined(separator: "\n").replacingOccurrences(of: "\n## ", with: "\n## Verification set: ") + "\n"
        if let s = cfg.eval.identification {
            md += "\nIdentification: `\(s)`; probes degraded at each factor, the gallery "
                + (cfg.eval.degrade == .both ? "(matched and distractors) degraded by the same factor" : "kept at x1") + ".\n"
        }
        if let s = cfg.eval.survface {
            md += "\nOpen-set verification: `\(s)`; pairs degraded as in verification.\n"
        }
        md += report.protocolTables()
        for n in notes { md += "- \(n)\n" }
        md += "\nFiles: `config.json`, `metrics.jsonl`, `teacher/`, `student/`, `eval/results.json`, `eval/results.md`, `eval/accuracy.svg`.\n"
        try AtomicFile.write(Data(md.utf8), to: dir + "/report.md")
    }

    /// The default job: teacher, student, averaging, evaluation, report. Returns false when a
    /// stop signal interrupted it (a checkpoint was written; rerun with resume auto).
    public func pipeline() throws -> Bool {
        let t0 = Date()
        try checkDataSources()
        guard let teacher = try teacher() else { return false }
        guard let student = try student(teacher: teacher, phaseDir: dir + "/student") else { return false }
        if try stopRequested(before: "averaging") { return false }
        let averaged: FaceModel? = cfg.checkpoints.average > 1 ? try average(phaseDir: dir + "/student") : nil
        if try stopRequested(before: "evaluation") { return false }
        var models: [(String, FaceModel)] = [("teacher (\(cfg.teacher.preset))", teacher), ("student, last", student)]
        if let a = averaged { models.append(("student, averaged last \(cfg.checkpoints.average)", a)) }
        let report = try evaluate(models, title: "kdtrain run")
        try writeReport(report, heading: "kdtrain run", notes: [
            "Wall time of this invocation: \(Int(Date().timeIntervalSince(t0))) s.",
            "The teacher is evaluated on degraded probes too: it was trained on high-quality faces only.",
        ])
        log.say("report: \(dir)/report.md")
        return true
    }

    /// The paper's Table 1 from one teacher: the student without distillation, with logit KD,
    /// with attention KD, with both; each over `seeds` seeds and evaluated at every factor.
    public func ablation(seeds: Int = 1) throws -> Bool {
        func variant(_ label: String, _ slug: String, kd: Bool, att: Bool) -> StudyVariant {
            var c = cfg
            if !kd { c.loss.kd = 0 }
            if !att { c.loss.attention = .none }
            if kd && c.loss.kd == 0 { c.loss.kd = 1 }
            if att && c.loss.attention == .none { c.loss.attention = .askd }
            return StudyVariant(label: label, slug: slug, config: c)
        }
        let variants = [variant("BasicNet (no distillation)", "basic", kd: false, att: false),
                        variant("+ logit KD", "kd", kd: true, att: false),
                        variant("+ attention KD", "att", kd: false, att: true),
                        variant("+ logit KD + attention KD", "kd-att", kd: true, att: true)]
        let att = variants[2].config.loss
        return try study(name: "ablation", heading: "kdtrain ablation (paper Table 1 shape)", variants: variants, seeds: seeds,
                         notes: ["Logit KD: T = \(variants[1].config.loss.temperature), weight \(variants[1].config.loss.kd); attention KD: \(Run.describeAttention(att)).",
                                 "Loss recipe: \(cfg.loss.recipe)" + { let o = LossRecipe.overriddenKeys(cfg.loss); return o.isEmpty ? "." : ", with \(o.joined(separator: ", ")) set explicitly." }()],
                         combined: (both: 3, parts: [1, 2]))
    }

    /// The comparison rows of the paper's Tables 3-4 from one teacher: CosFace and ArcFace students
    /// without distillation, attention transfer, A-SKD, and the paper's method, each with its
    /// recipe's cited values; same data, schedule and seeds.
    public func compare(seeds: Int = 1) throws -> Bool {
        func variant(_ label: String, _ slug: String, recipe: RecipeName, head: HeadKind? = nil) -> StudyVariant {
            var c = cfg
            let keep = c.loss.balanceEvery
            c.loss = LossRecipe.named[recipe]!.loss(); c.loss.balanceEvery = keep
            if let head {
                c.head.kind = head
                if head == .cosface { c.head.m = 0.35 } else if head == .arcface { c.head.m = 0.5 }
            }
            return StudyVariant(label: label, slug: slug, config: c)
        }
        // The baseline is the undistilled ArcFace student (the distilled rows use head.kind, ArcFace by default).
        let variants = [variant("ArcFace (no distillation)", "arcface", recipe: .none, head: .arcface),
                        variant("CosFace (no distillation)", "cosface", recipe: .none, head: .cosface),
                        variant("AT (attention transfer)", "at", recipe: .at),
                        variant("A-SKD", "askd", recipe: .askd),
                        variant("paper (CE + logit KD + A-SKD)", "paper", recipe: .paper)]
        return try study(name: "compare", heading: "kdtrain compare (paper Tables 3-4 shape)", variants: variants, seeds: seeds,
                         notes: LossRecipe.all.filter { [.none, .at, .askd, .paper].contains($0.id) }.map { "Recipe \($0.name): \($0.summary) (\($0.source))." }
                            + ["CosFace uses m = 0.35 (Wang et al.), ArcFace m = 0.5 (Deng et al.), both s = \(cfg.head.s); the distilled students use head.kind = \(cfg.head.kind)."],
                         combined: nil, distilled: [2, 3, 4])
    }

    static func describeAttention(_ l: RunConfig.Loss) -> String {
        switch l.attention {
        case .none: return "none"
        case .at: return "attention transfer on stage outputs, weight \(l.atWeight) per stage"
        case .askd, .both:
            var s = "A-SKD on \(l.blocks) block(s) of stages \(l.stages.map { "\($0)" } ?? "all"), "
            s += [l.channelMaps ? "channel" : nil, l.spatialMaps ? "spatial" : nil].compactMap { $0 }.joined(separator: " + ")
            s += " maps \(l.beforeSigmoid ? "before" : "after") the sigmoid, \(l.meanOverMaps ? "mean" : "sum") over maps, weight \(l.attentionWeight)"
            if l.attention == .both { s += "; plus attention transfer, weight \(l.atWeight) per stage" }
            return s
        }
    }
}
