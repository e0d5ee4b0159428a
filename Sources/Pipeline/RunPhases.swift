// The training phases of a run: the models they build, where each resumes from (`--resume auto` or
// PATH), and one `trainPhase` that trains, resumes or loads a finished teacher or student phase.
import CStop
import Dist
import Evaluation
import FaceData
import Foundation
import Model
import KDCore

extension Run {
    // MARK: models

    func identity(_ preset: String, classes: Int, config: RunConfig? = nil) -> ModelIdentity {
        ModelIdentity(network: NetworkConfig.presets[preset]!, classes: classes, head: (config ?? cfg).marginKind.description)
    }

    func makeModel(_ preset: String, classes: Int, seed: UInt64, trainable: Bool, config: RunConfig? = nil) -> FaceModel {
        FaceModel(config: NetworkConfig.presets[preset]!, classes: classes, margin: (config ?? cfg).marginKind, seed: seed, trainable: trainable)
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
        return try trainPhase(.teacher, model: model, identity: id, config: cfg, data: data, phaseDir: layout.phase(.teacher))
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
        return try trainPhase(.student, model: model, identity: id, config: c, data: data, phaseDir: phaseDir,
                              teacher: teacher, variant: variant)
    }

    /// One phase of either role into `phaseDir`: a phase finished earlier (its resume point is at
    /// or past the last step) is loaded, otherwise it trains from its resume point or from the
    /// model's current weights. Returns the model, or nil when a stop signal interrupted it.
    func trainPhase(_ role: Trainer.Role, model: FaceModel, identity id: ModelIdentity, config c: RunConfig,
                    data: any TrainingSet, phaseDir: String, teacher: FaceModel? = nil, variant: String? = nil) throws -> FaceModel? {
        let epochs = role == .teacher ? c.teacher.epochs : c.student.epochs
        let total = Trainer.totalSteps(epochs: epochs, stepsPerEpoch: data.count / c.optim.batch)
        let start = try resumePoint(phaseDir: phaseDir, role: role)
        if let s = start, s.position.step >= total {
            try Checkpoint.load(s, into: model.store, identity: id, momentum: true)
            log.say("\(role.rawValue): finished earlier (\(s.path))")
            return model
        }
        let trainer = Trainer(role: role, comm: comm, config: c, model: model, identity: id, teacher: teacher,
                              trainSet: data, checkpointDir: phaseDir, log: log, runID: runID)
        trainer.variant = variant
        let outcome = try trainer.run(resume: start)
        if role == .student { lastBalance = trainer.balance }
        switch outcome {
        case .completed: return model
        case .interrupted: return nil
        }
    }
}
