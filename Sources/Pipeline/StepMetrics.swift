// What a training phase reports between log lines: the loss terms summed over one logging interval
// (`StepMetrics`, reduced over ranks in one all-reduce through a buffer allocated once), the
// phase's progress clock (`PhaseClock`: images/s and ETA smoothed, start-up not counted), and the
// progress line built from both.
import Dist
import Foundation
import Model

/// Loss sums of the steps of one logging interval on one rank. Skipped steps (non-finite loss or
/// gradients) add their images but not their losses or a step.
struct StepMetrics {
    var recognition = 0.0, kd = 0.0, attentionSimilarity = 0.0, attentionTransfer = 0.0, embedding = 0.0, total = 0.0
    var images = 0.0, steps = 0.0

    static let fieldCount = 8

    /// Adds one applied step: `l` summed over `microBatches` micro-batches (the loss is their mean).
    mutating func add(_ l: LossBreakdown, microBatches: Int) {
        let a = Double(microBatches)
        recognition += Double(l.recognition) / a; kd += Double(l.kd) / a
        attentionSimilarity += Double(l.attentionSimilarity) / a; attentionTransfer += Double(l.attentionTransfer) / a
        embedding += Double(l.embedding) / a; total += Double(l.total) / a
        steps += 1
    }

    /// The sums over all ranks: one all-reduce of `fieldCount` doubles through `scratch`.
    func reduced(_ comm: Communicator, scratch: inout [Double]) throws -> StepMetrics {
        precondition(scratch.count == Self.fieldCount)
        scratch[0] = recognition; scratch[1] = kd; scratch[2] = attentionSimilarity; scratch[3] = attentionTransfer
        scratch[4] = embedding; scratch[5] = total; scratch[6] = images; scratch[7] = steps
        try comm.allReduce(&scratch, op: .sum)
        return StepMetrics(recognition: scratch[0], kd: scratch[1], attentionSimilarity: scratch[2], attentionTransfer: scratch[3],
                           embedding: scratch[4], total: scratch[5], images: scratch[6], steps: scratch[7])
    }

    /// Each loss term as its mean per step and rank, from sums over `world` ranks.
    func meanTerms(world: Int) -> (recognition: Double, kd: Double, attentionSimilarity: Double, attentionTransfer: Double,
                                   embedding: Double, total: Double) {
        let w = Double(world), n = max(1, steps / w)
        return (recognition / w / n, kd / w / n, attentionSimilarity / w / n, attentionTransfer / w / n, embedding / w / n, total / w / n)
    }
}

/// A phase's throughput and ETA as a user reads them. The clock starts when the first batch has
/// arrived (model set-up and the first batch's decoding are start-up, not training); images/s is
/// an exponential moving average of the intervals' rates (weight `smoothing` for the newest), so
/// one slow interval (a checkpoint, a busy disk) moves it a little, not all the way; the ETA is the
/// remaining steps at the mean time per step since the end of the first step (whose kernel warm-up
/// would otherwise weigh on every estimate), or at the first step's time while it is the only one.
public struct PhaseClock {
    public static let smoothing = 0.3

    private var intervalStart: Date?
    private var firstStepEnd: Date?
    private var firstStep = 0
    private var firstStepSeconds = 0.0
    public private(set) var imagesPerSecond: Double?

    public init() {}

    /// Call when the first batch of this invocation is in hand.
    public mutating func start(now: Date = Date()) {
        if intervalStart == nil { intervalStart = now }
    }

    /// Call after every step; `step` is the number of steps done.
    public mutating func stepDone(_ step: Int, now: Date = Date()) {
        guard firstStepEnd == nil, let s = intervalStart else { return }
        firstStepEnd = now; firstStep = step; firstStepSeconds = now.timeIntervalSince(s)
    }

    /// Closes a logging interval of `images` images (all ranks) ending at `step`; returns the
    /// smoothed rate, the interval's own rate and the ETA in seconds.
    public mutating func interval(images: Double, step: Int, totalSteps: Int, now: Date = Date()) -> (smoothed: Double, raw: Double, eta: Double) {
        let dt = max(now.timeIntervalSince(intervalStart ?? now), 1e-9)
        let raw = images / dt
        let smoothed = imagesPerSecond.map { Self.smoothing * raw + (1 - Self.smoothing) * $0 } ?? raw
        imagesPerSecond = smoothed
        intervalStart = now
        var perStep = firstStepSeconds
        if let e = firstStepEnd, step > firstStep { perStep = now.timeIntervalSince(e) / Double(step - firstStep) }
        return (smoothed, raw, perStep * Double(max(0, totalSteps - step)))
    }
}

/// The progress line: `teacher epoch 2/3 step 40/60 loss ... 81.2 img/s ETA 25s`. `epoch` is the
/// 1-based epoch of the last step done, of `epochs` (the epochs the phase's steps span).
func progressLine(role: String, epoch: Int, epochs: Int, step: Int, totalSteps: Int,
                  terms t: (recognition: Double, kd: Double, attentionSimilarity: Double, attentionTransfer: Double, embedding: Double, total: Double),
                  student: Bool, embedding: Bool, lr: Double, imagesPerSecond: Double, eta: Double) -> String {
    var line = "\(role) epoch \(epoch)/\(epochs) step \(step)/\(totalSteps) loss \(fmt(t.total)) rec \(fmt(t.recognition))"
    if student {
        line += " kd \(fmt(t.kd)) askd \(fmt(t.attentionSimilarity)) at \(fmt(t.attentionTransfer))"
        if embedding { line += " emb \(fmt(t.embedding))" }
    }
    return line + " lr \(fmt(lr)) \(String(format: "%.1f", imagesPerSecond)) img/s ETA \(Int(eta.rounded()))s"
}
