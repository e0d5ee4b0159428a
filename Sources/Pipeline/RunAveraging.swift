// Checkpoint averaging: the mean of a phase's last K checkpoints, with batch-norm statistics
// re-estimated on training batches (all ranks), written as averaged.safetensors.
import CStop
import Dist
import Evaluation
import FaceData
import Foundation
import Model
import KDCore

extension Run {
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
        let producer = try BatchProducer(source: data, config: cfg.batchConfig(teacherPhase: false, inputSize: model.net.config.inputSize,
                                                                               seed: cfg.seed ^ 0xB17E))
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
}
