// A run over one run directory: preparing the directory (lock, config.json, orphan temporaries),
// opening the data sources once on every rank (agreed failures, a fresh directory removed again),
// stop requests between stages, and the default job (`pipeline`). The layout:
//
//   RUN/config.json           effective configuration, software version, world size
//   RUN/metrics.jsonl         one JSON object per progress line, checkpoint and event
//   RUN/teacher/step-*.safetensors, RUN/student/step-*.safetensors (last K kept)
//   RUN/student/averaged.safetensors   mean of the last K student checkpoints, BN re-estimated
//   RUN/eval/results.json, results.md, accuracy.svg
//   RUN/report.md
//
// The phases are in RunPhases.swift, averaging in RunAveraging.swift, evaluation and the report in
// RunReport.swift, the studies (ablation, compare) in Study.swift.
//
// Resume: with `resume: .auto` each phase continues from its latest checkpoint (a finished phase
// is loaded, not retrained); with `.path` the phase that wrote it resumes from it; without either,
// a run directory that already holds checkpoints is refused, so earlier results are never
// overwritten.
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
    /// The layout of `dir`.
    public let layout: RunDirectory
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
    /// The phase a `--resume PATH` checkpoint belongs to (nil without one): its `phase` metadata,
    /// else the name of the folder it lies in (`teacher/` or `student/`).
    public private(set) var resumePathRole: Trainer.Role?

    public init(comm: Communicator, config: RunConfig, dir: String, resume: ResumeMode, quiet: Bool = false) throws {
        self.comm = comm; cfg = config; self.dir = dir; self.resume = resume
        let layout = RunDirectory(dir); self.layout = layout
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
            try RunDirectory.create(dir, subdirectories: RunDirectory.subdirectories)
            if resume == .none {
                let existing = layout.checkpoints(.teacher) + layout.checkpoints(.student)
                if let first = existing.first {
                    throw ConfigError("\(dir): already holds checkpoints (\(first)); use --resume auto to continue it, or another --run-dir")
                }
            }
            if let old = FileManager.default.contents(atPath: layout.config),
               let o = try? JSONSerialization.jsonObject(with: old) as? [String: Any], let stored = o["run_id"] as? String {
                id = stored
            } else {
                id = UUID().uuidString.lowercased()
            }
            var meta: [String: Any] = (try JSONSerialization.jsonObject(with: Data(config.json.utf8))) as! [String: Any]
            meta = ["config": meta, "kdtrain_version": kdtrainVersion, "world_size": comm.size, "run_id": id,
                    "blas_core": Compute.blasCore, "threads_per_rank": Compute.threads]
            // A loaded teacher is not trained: its epochs, lr and schedule options are defaults, not facts.
            if let t = config.teacher.checkpoint {
                meta["teacher_loaded"] = ["checkpoint": t, "note": "the teacher was loaded, not trained: teacher.epochs and teacher.lr were not used"]
            }
            let data = try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys])
            try AtomicFile.write(data, to: layout.config)
        }
        createdDirectory = created
        runID = id
        if case .path(let p) = resume {
            resumePathRole = try comm.agree { try Run.phase(ofResumeCheckpoint: p) }
        }
        log = try RunLog(path: layout.metrics, isRoot: comm.isRoot, quiet: quiet)
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
                if let f = t as? ImageFolder { try f.writeLabels(to: layout.labels) }
                if let s = t as? SkipReporting {
                    let report = s.scanReport()
                    if !report.isEmpty { log.say(report) }
                    // The log shows the first 50; the whole list stays in the run directory.
                    if !s.skipped.isEmpty { try s.writeSkipped(to: layout.skipped) }
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
        case .rec(let path, _): name = path
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

    /// The default job: teacher, student, averaging, evaluation, report. Returns false when a
    /// stop signal interrupted it (a checkpoint was written; rerun with resume auto).
    public func pipeline() throws -> Bool {
        let t0 = Date()
        try checkDataSources()
        guard let teacher = try teacher() else { return false }
        guard let student = try student(teacher: teacher, phaseDir: layout.phase(.student)) else { return false }
        if try stopRequested(before: "averaging") { return false }
        let averaged: FaceModel? = cfg.checkpoints.average > 1 ? try average(phaseDir: layout.phase(.student)) : nil
        if try stopRequested(before: "evaluation") { return false }
        var models: [(String, FaceModel)] = [("teacher (\(cfg.teacher.preset))", teacher), ("student, last", student)]
        if let a = averaged { models.append(("student, averaged last \(cfg.checkpoints.average)", a)) }
        let report = try evaluate(models, title: "kdtrain run")
        try writeReport(report, heading: "kdtrain run", notes: [
            "Wall time of this invocation: \(Int(Date().timeIntervalSince(t0))) s.",
            "The teacher is evaluated on degraded probes too: it was trained on high-quality faces only.",
        ])
        log.say("report: \(layout.report)")
        return true
    }

}
