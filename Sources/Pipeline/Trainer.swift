// The data-parallel training loop, shared by the teacher phase (recognition loss on high-quality
// faces) and the student phase (distillation on degraded faces with the teacher frozen).
//
// Every rank: draws its shard of the step's global batch from the distributed sampler, runs
// forward/backward on it (in `accumulate` micro-batches), and the gradient reducer averages the
// gradients across ranks while backward runs; then every rank applies the same SGD update, so
// replicas stay bitwise identical (checked by checksum every `dist.checkEvery` steps and before
// each checkpoint). Rank 0 logs and writes checkpoints.
import CStop
import Dist
import FaceData
import Foundation
import Model

/// Adapts the Dist communicator to Model's synchronized batch norm.
final class BatchNormReducer: CrossReplicaReducer {
    let comm: Communicator
    init(_ comm: Communicator) { self.comm = comm }
    var replicas: Int { comm.size }
    func allReduceSum(_ p: UnsafeMutablePointer<Double>, count: Int) {
        do { try comm.allReduceSum(p, count: count, what: .syncBatchNorm) }
        catch { comm.abortJob(message: "synchronized batch norm: \(error)") }
    }
}

/// How a training phase ended.
public enum PhaseOutcome: Equatable {
    case completed(lastCheckpoint: String)
    /// Stopped by SIGTERM/SIGUSR1 after writing this checkpoint.
    case interrupted(checkpoint: String, signal: Int32)
}

public final class Trainer {
    public enum Role: String { case teacher, student }

    public let role: Role
    let comm: Communicator
    let cfg: RunConfig
    public let model: FaceModel
    let teacher: FaceModel?
    let identity: ModelIdentity
    let trainSet: any TrainingSet
    let checkpointDir: String
    let log: RunLog
    let epochs: Float
    let baseLR: Float
    let runID: String
    /// Loss balance measured in this phase (student only; see `loss.balanceEvery`).
    public private(set) var balance = LossBalance()
    /// Names this phase among several of one role (a study's variant and seed, e.g. "kd-att seed 1"):
    /// in the progress line and as `variant` in every metrics.jsonl record of the phase.
    public var variant: String?

    public init(role: Role, comm: Communicator, config: RunConfig, model: FaceModel, identity: ModelIdentity,
                teacher: FaceModel?, trainSet: any TrainingSet, checkpointDir: String, log: RunLog, runID: String = "") {
        self.role = role; self.comm = comm; cfg = config; self.model = model; self.identity = identity; self.runID = runID
        self.teacher = teacher; self.trainSet = trainSet; self.checkpointDir = checkpointDir; self.log = log
        let net = role == .teacher ? config.teacher : config.student
        epochs = net.epochs; baseLR = net.lr
    }

    /// Total optimizer steps of a phase of `epochs` epochs (independent of the number of ranks: the
    /// global batch is fixed, so an epoch is data set size / optim.batch steps). The one formula.
    public static func totalSteps(epochs: Float, stepsPerEpoch: Int) -> Int {
        max(1, Int((epochs * Float(stepsPerEpoch)).rounded()))
    }

    func batchConfig(seed: UInt64) -> BatchConfig {
        cfg.batchConfig(teacherPhase: role == .teacher, inputSize: model.net.config.inputSize, seed: seed)
    }

    /// Trains from `resume` (a checkpoint of this phase) or from the model's current weights.
    /// Returns when the last step is done or a stop signal arrived (then after a checkpoint).
    public func run(resume: Checkpoint.Contents?) throws -> PhaseOutcome {
        let c = cfg, world = comm.size, rank = comm.rank
        let store = model.store
        let perRank = c.optim.batch / world, micro = perRank / c.optim.accumulate
        // Role-specific seed so the teacher and student phases see different orders and masks.
        let seed = c.seed &+ (role == .teacher ? 0 : 0x5EED)
        var sampler = try DistributedSampler(datasetSize: trainSet.count, globalBatch: c.optim.batch, worldSize: world,
                                             rank: rank, seed: seed)
        let totalSteps = Trainer.totalSteps(epochs: epochs, stepsPerEpoch: sampler.stepsPerEpoch)
        var position = TrainingPosition()
        if let r = resume {
            try Checkpoint.load(r, into: store, identity: identity, momentum: true)
            position = r.position
            // The stored place in the epoch must exist in this run's epoch (optim.batch, the data
            // set or the number of ranks may have changed since the checkpoint was written).
            guard position.stepInEpoch < sampler.stepsPerEpoch else {
                throw CheckpointError(r.path, "it stopped at step \(position.stepInEpoch) of an epoch, but an epoch of this run has \(sampler.stepsPerEpoch) steps (\(trainSet.count) images / optim.batch \(c.optim.batch)); resume with the optim.batch and data set it was written with, or start the phase anew")
            }
            if let w = r.metadata["world_size"], Int(w) != world {
                log.say("resume: checkpoint was written by \(w) rank(s), this job has \(world): replicas are identical, but the data order changes from here on")
            }
        }
        // Every replica starts identical: rank 0's parameters, buffers and momentum.
        try comm.broadcast(store.params, count: store.paramCount)
        try comm.broadcast(store.buffers, count: store.bufferCount)
        try comm.broadcast(store.momentum, count: store.paramCount)
        if c.dist.syncBN && world > 1 {
            let r = BatchNormReducer(comm)
            for bn in model.net.batchNorms { bn.reducer = r }
        }
        let loss: LossConfig = {
            if role == .teacher { var l = LossConfig(); l.recognition = 1; return l }
            return c.lossConfig(stageCount: model.net.config.depths.count)
        }()
        let step = DistillationStep(student: model, teacher: role == .student ? teacher : nil, loss: loss)
        step.plan(batch: micro)
        let sgd = SGD(store: store, config: c.sgdConfig)
        let schedule = c.schedule(baseLR: baseLR, totalSteps: totalSteps)
        let reducer = try GradientReducer(communicator: comm, gradients: store.grads, count: store.paramCount,
                                          options: c.reducerOptions)
        let producer = try BatchProducer(source: trainSet, config: batchConfig(seed: seed))
        let prefetch = Prefetcher(producer: producer, batchCapacity: perRank, depth: c.data.prefetch)
        defer { prefetch.stop(); comm.progressStep = -1 }
        // Queue the index lists of the next steps.
        var queued = position.step
        var queuePos = SamplerPosition(epoch: position.epoch, step: position.stepInEpoch)
        func enqueueAhead() {
            while queued < totalSteps && queued < position.step + c.data.prefetch + 1 {
                let idx = sampler.indices(at: queuePos)
                prefetch.enqueue(indices: idx, epoch: queuePos.epoch)
                queuePos = sampler.advance(queuePos)
                queued += 1
            }
        }
        kd_install_stop_handlers()
        log.say("\(role.rawValue): \(model.net.config.forwardFLOPs / 1e9 >= 0.1 ? String(format: "%.2f", model.net.config.forwardFLOPs / 1e9) : String(format: "%.3f", model.net.config.forwardFLOPs / 1e9)) GFLOP/image, \(store.paramCount) parameters, \(trainSet.summary); \(world) rank(s) x \(perRank) images (\(c.optim.accumulate) micro-batch(es)), \(sampler.stepsPerEpoch) steps/epoch, \(totalSteps) steps" + (position.step > 0 ? ", resuming at step \(position.step)" : ""))
        var metrics = StepMetrics()
        var scratch = [Double](repeating: 0, count: StepMetrics.fieldCount)
        var clock = PhaseClock()
        var lastLogStep = position.step
        let started = Date()
        let epochs = (totalSteps + sampler.stepsPerEpoch - 1) / sampler.stepsPerEpoch
        let name = variant.map { "\(role.rawValue) (\($0))" } ?? role.rawValue
        var lastCheckpoint = ""
        var stopFlag = [Double](repeating: 0, count: 1)
        record(["event": "phase_start", "steps": totalSteps, "from_step": position.step, "world_size": world])
        enqueueAhead()
        while position.step < totalSteps {
            let lr = schedule.lr(at: position.step)
            comm.progressStep = position.step + 1   // for the stall report (1-based, as in the log)
            store.zeroGrad()
            seedDropout(step: position.step)
            let batch = try prefetch.next()
            clock.start()
            let local = try forwardBackward(batch, step: step, reducer: reducer, at: position.step, micro: micro)
            // The loss is the mean over micro-batches: 1/accumulate, applied with the 1/ranks of the
            // mean once the all-reduce is complete (scaling earlier raced with buckets in flight).
            try reducer.finish(scale: 1 / Float(c.optim.accumulate))
            // Gradients are now identical on every rank, so this decision is too.
            let norm = c.optim.clipNorm > 0 ? sgd.clipGradients(maxNorm: c.optim.clipNorm) : sgd.gradientNorm()
            enqueueAhead()
            if norm.isFinite {
                sgd.step(lr: lr)
                // Per-rank batch-norm running statistics are averaged across ranks every step (a few
                // KB): replicas then stay bitwise identical in every tensor, and a resume reproduces
                // them exactly. Averaging is linear, so this equals averaging them before a checkpoint.
                if world > 1 && !c.dist.syncBN { try comm.allReduceMean(store.buffers, count: store.bufferCount, what: .batchNormStatistics) }
                metrics.add(local, microBatches: c.optim.accumulate)
            } else {
                position.skippedSteps += 1
                log.say("\(role.rawValue) step \(position.step): non-finite loss or gradient (norm \(norm)); step skipped (\(position.skippedSteps) so far)")
                record(["event": "skipped_step", "step": position.step])
                if position.skippedSteps > c.guards.maxSkippedSteps {
                    throw ConfigError("\(role.rawValue): \(position.skippedSteps) steps had non-finite loss or gradients (limit guards.maxSkippedSteps = \(c.guards.maxSkippedSteps)); lower the learning rate or check the data")
                }
            }
            metrics.images += Double(batch.count)
            let stepEpoch = position.epoch
            position.step += 1
            clock.stepDone(position.step)
            let next = sampler.advance(SamplerPosition(epoch: position.epoch, step: position.stepInEpoch))
            position.epoch = next.epoch; position.stepInEpoch = next.step

            if position.step % c.dist.checkEvery == 0 {
                try verifyReplicas(checksum: store.checksum(includeMomentum: true, includeBuffers: true),
                                        what: "\(role.rawValue) parameters, momentum and batch-norm statistics at step \(position.step)")
            }
            // Every rank learns of a stop signal received by any rank at the same step.
            stopFlag[0] = Double(kd_stop_requested())
            try comm.allReduce(&stopFlag, op: .max, what: .stopSignalCheck)
            let stopping = stopFlag[0] > 0
            let due = c.checkpoints.every > 0 && position.step % c.checkpoints.every == 0
            if position.step % c.logEvery == 0 || position.step == totalSteps || stopping {
                let g = try metrics.reduced(comm, scratch: &scratch)
                let t = g.meanTerms(world: world)
                let rate = clock.interval(images: g.images, step: position.step, totalSteps: totalSteps)
                log.say(progressLine(role: name, epoch: stepEpoch + 1, epochs: epochs, step: position.step, totalSteps: totalSteps,
                                     terms: t, student: role == .student, embedding: loss.embedding > 0, lr: Double(lr),
                                     imagesPerSecond: rate.smoothed, eta: rate.eta))
                record(["step": position.step, "epoch": position.epoch, "steps": totalSteps,
                        "loss": t.total, "recognition": t.recognition, "kd": t.kd,
                        "attention_similarity": t.attentionSimilarity, "attention_transfer": t.attentionTransfer,
                        "embedding": t.embedding, "lr": Double(lr), "images_per_second": rate.raw,
                        "images_per_second_smoothed": rate.smoothed, "eta_seconds": rate.eta,
                        "grad_norm": Double(norm), "skipped_steps": position.skippedSteps, "interval_steps": Int(position.step - lastLogStep)])
                metrics = StepMetrics(); lastLogStep = position.step
            }
            if due || position.step == totalSteps || stopping {
                lastCheckpoint = try writeCheckpoint(position)
            }
            if stopping {
                let sig = Int32(stopFlag[0])
                log.say("\(role.rawValue): stop signal \(sig) received; checkpoint \(lastCheckpoint) written at step \(position.step); resume with --resume auto")
                // The stop record stays the last one: requeue scripts read it (cluster/kdtrain.sbatch).
                record(["event": "phase_end", "outcome": "interrupted", "step": position.step, "seconds": Date().timeIntervalSince(started)])
                record(["event": "interrupted", "step": position.step, "signal": Int(sig), "checkpoint": lastCheckpoint])
                return .interrupted(checkpoint: lastCheckpoint, signal: sig)
            }
        }
        record(["event": "phase_end", "outcome": "completed", "step": position.step, "seconds": Date().timeIntervalSince(started)])
        return .completed(lastCheckpoint: lastCheckpoint)
    }

    /// Forward and backward of this rank's share of one step, in `optim.accumulate` micro-batches
    /// of `micro` images; the reducer all-reduces gradients while backward runs. Every
    /// `loss.balanceEvery` steps (student) the loss balance is measured first on micro-batch 0.
    /// Returns the loss terms summed over the micro-batches.
    func forwardBackward(_ batch: Batch, step: DistillationStep, reducer: GradientReducer, at stepIndex: Int, micro: Int) throws -> LossBreakdown {
        var local = LossBreakdown()
        for m in 0..<cfg.optim.accumulate {
            reducer.beginMicroBatch(m, of: cfg.optim.accumulate)
            let off = m * micro * batch.sampleSize
            if role == .student, let t = teacher {
                t.net.input.loadNCHW(batch.hr.baseAddress! + off)
                model.net.input.loadNCHW(batch.lr.baseAddress! + off)
                step.teacherForward()
            } else {
                model.net.input.loadNCHW(batch.hr.baseAddress! + off)
            }
            if m == 0 && role == .student && cfg.loss.balanceEvery > 0 && stepIndex % cfg.loss.balanceEvery == 0 {
                measureBalance(batch, step: step, at: stepIndex)
            }
            var first: Error?
            let out = batch.labels.withUnsafeBufferPointer { lb in
                step.studentForwardBackward(labels: lb.baseAddress! + m * micro, ready: { offset in
                    do { try reducer.gradientsReady(from: offset) } catch { if first == nil { first = error } }
                })
            }
            if let first { throw first }
            local.recognition += out.recognition; local.kd += out.kd; local.attentionSimilarity += out.attentionSimilarity
            local.attentionTransfer += out.attentionTransfer; local.embedding += out.embedding; local.total += out.total
        }
        return local
    }

    /// The dropout masks of a step: the same on a replay (resume) and distinct per rank.
    func seedDropout(step stepIndex: Int) {
        model.net.dropoutLayer.seed(step: UInt64(stepIndex) &* 0x9E37_79B9 &+ UInt64(comm.rank) &* 0x1000_0001)
    }

    /// Measures each loss term's weighted value and gradient norm on micro-batch 0 (rank 0's shard
    /// is logged), then re-seeds dropout so the real step draws the same masks.
    func measureBalance(_ batch: Batch, step: DistillationStep, at stepIndex: Int) {
        let terms = batch.labels.withUnsafeBufferPointer { step.termGradientNorms(labels: $0.baseAddress!) }
        seedDropout(step: stepIndex)
        balance.add(terms)
        if comm.isRoot {
            log.say("\(role.rawValue) step \(stepIndex) loss balance (rank 0 shard): " + LossBalance.line(terms))
            var rec: [String: Any] = ["event": "loss_balance", "step": stepIndex]
            for t in terms { rec[t.term.rawValue] = ["weighted": Double(t.value), "grad_norm": Double(t.gradNorm)] }
            record(rec)
        }
    }

    /// The replica check: every rank learns the same verdict, so a divergence is one agreed
    /// failure, printed once (by rank 0), not once per rank.
    func verifyReplicas(checksum: UInt64, what: String) throws {
        do { try comm.verifyReplicas(checksum: checksum, what: what) } catch let e as DistError {
            guard case .replicaDivergence = e else { throw e }
            throw AgreedFailure(rank: 0, message: comm.isRoot ? "\(e)" : nil)
        }
    }

    /// One metrics.jsonl record of this phase: tagged with the phase and, in a study, the variant.
    func record(_ fields: [String: Any]) {
        var r = fields
        r["phase"] = role.rawValue
        if let v = variant { r["variant"] = v }
        log.record(r)
    }

    /// Averages running statistics across ranks, checks replicas, writes (rank 0) and prunes.
    func writeCheckpoint(_ position: TrainingPosition) throws -> String {
        let store = model.store
        try verifyReplicas(checksum: store.checksum(includeMomentum: true, includeBuffers: true),
                                what: "\(role.rawValue) parameters before the checkpoint at step \(position.step)")
        let path = checkpointDir + "/" + Checkpoint.fileName(step: position.step)
        if comm.isRoot {
            try Checkpoint.save(store, identity: identity, position: position,
                                extra: ["world_size": String(comm.size), "phase": role.rawValue, "seed": String(cfg.seed),
                                        "run_id": runID, "preprocessing": Preprocessing(config: cfg, inputSize: model.net.config.inputSize).json],
                                to: path)
            let all = Checkpoint.list(in: checkpointDir).compactMap { p in Checkpoint.step(ofFile: p).map { ($0, p) } }
            let drop = Set(Checkpoint.toDelete(steps: all.map(\.0), every: cfg.checkpoints.every, keep: cfg.checkpoints.keep))
            for (s, old) in all where drop.contains(s) { try? FileManager.default.removeItem(atPath: old) }
            record(["event": "checkpoint", "step": position.step, "path": path])
        }
        try comm.barrier(.checkpointBarrier)
        return path
    }

}

func fmt(_ x: Double) -> String { String(format: abs(x) >= 100 ? "%.1f" : abs(x) >= 0.01 || x == 0 ? "%.4f" : "%.3e", x) }
