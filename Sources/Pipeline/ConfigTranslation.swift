// The one place that translates a RunConfig into the types of Model, FaceData and Dist, with the
// units converted here: the loss terms and attention pairing (Model.LossConfig), the batch pipeline
// and its degradations (ConfigRange to ClosedRange; the teacher phase trains on undegraded faces),
// SGD, the learning-rate schedule (milestones as fractions of the phase to steps) and the gradient
// buckets (MiB / KiB to floats).
import Dist
import FaceData
import Model

extension RunConfig {
    /// The student's distillation loss.
    public func lossConfig(stageCount: Int) -> LossConfig {
        var l = LossConfig()
        l.recognition = loss.recognition
        l.kd = loss.kd
        l.temperature = loss.temperature
        l.attentionSimilarity = loss.attention.similarity ? loss.attentionWeight : 0
        l.attentionTransfer = loss.attention.transfer ? loss.atWeight : 0
        l.attention = AttentionDistillConfig(stages: loss.stages ?? Array(0..<stageCount), blocks: blockSelection ?? .every,
                                             channel: loss.channelMaps, spatial: loss.spatialMaps,
                                             beforeSigmoid: loss.beforeSigmoid, meanOverMaps: loss.meanOverMaps)
        l.embedding = loss.embedding
        l.embeddingKind = loss.embeddingKind.distillKind
        return l
    }

    /// The batch pipeline of a phase: the teacher's batches are not degraded (factor 1, no blur,
    /// noise or JPEG), the student's use `degrade.*`.
    public func batchConfig(teacherPhase: Bool, inputSize input: Int, seed: UInt64) -> BatchConfig {
        let d = degrade, t = teacherPhase
        let deg = Degradation(factors: t ? [1] : d.trainFactors, downKernel: d.down, upKernel: d.up,
                              blurProbability: t ? 0 : d.blurProbability, blurSigma: d.blurSigma.lower...max(d.blurSigma.lower, d.blurSigma.upper),
                              noiseProbability: t ? 0 : d.noiseProbability, noiseSigma: d.noiseSigma.lower...max(d.noiseSigma.lower, d.noiseSigma.upper),
                              jpegProbability: t ? 0 : d.jpegProbability, jpegQuality: d.jpegQuality.lower...max(d.jpegQuality.lower, d.jpegQuality.upper))
        return BatchConfig(height: input, width: input, resizeKernel: data.resize.kernel,
                           augmentation: Augmentation(flip: data.flip, maxShift: data.maxShift),
                           degradation: deg, seed: seed, threads: data.threads)
    }

    public var sgdConfig: SGDConfig {
        SGDConfig(momentum: optim.momentum, weightDecay: optim.weightDecay, nesterov: optim.nesterov, exemptNoDecay: optim.decayExempt)
    }

    /// Gradient buckets: `dist.bucketMB` MiB and `dist.firstBucketKB` KiB as counts of floats.
    public var reducerOptions: ReducerOptions {
        ReducerOptions(bucketFloats: max(1, Int(dist.bucketMB * 262_144)), firstBucketFloats: max(1, Int(dist.firstBucketKB * 256)),
                       overlap: dist.overlap)
    }

    /// The learning-rate schedule of a phase of `totalSteps` steps starting at `baseLR`.
    public func schedule(baseLR: Float, totalSteps: Int) -> LRSchedule {
        let o = optim
        let warm = min(o.warmupSteps, max(0, totalSteps - 1))
        let floor = baseLR * o.floor
        let decay: LRSchedule.Decay
        switch o.schedule {
        case .multistep: decay = .multiStep(milestones: o.milestones.map { Int(($0 * Float(totalSteps)).rounded()) }, gamma: o.gamma)
        case .poly: decay = .polynomial(power: o.power, floor: floor)
        case .constant: decay = .constant
        case .cosine: decay = .cosine(floor: floor)
        }
        return LRSchedule(baseLR: baseLR, warmupSteps: warm, totalSteps: totalSteps, decay: decay)
    }
}
