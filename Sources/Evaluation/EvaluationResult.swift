// One row of a report: one model, one verification set, one degradation factor.

import Foundation

/// The verification numbers of one model on one set at one degradation factor, as reports store them.
/// Fractions are in [0, 1] (the markdown table and the chart print percentages).
public struct EvaluationResult: Codable, Sendable, Equatable {
    /// Model name as it should appear in tables and legends (e.g. "BasicNet", "+ logit KD").
    public var model: String
    /// Verification set (e.g. "AgeDB-30", "CPLFW").
    public var dataset: String
    /// Down-sampling factor of the probes: 1 (none), 2, 4, 8, ...
    public var degradationFactor: Int
    /// How the probes were degraded (e.g. "area down, nearest up"); kernels change the numbers, so say which.
    public var degradation: String
    /// Mean 10-fold verification accuracy.
    public var accuracy: Double
    /// Population std of the fold accuracies.
    public var accuracyStd: Double
    /// Mean of the per-fold best thresholds (squared L2 distance).
    public var threshold: Double
    /// Mean TAR (VAL) at `farTarget`.
    public var tarAtFar: Double
    /// Std of the per-fold TAR.
    public var tarStd: Double
    /// Mean FAR measured on the held-out folds at the interpolated thresholds.
    public var far: Double
    /// The FAR the TAR was read at (1e-3).
    public var farTarget: Double
    /// ROC AUC over all pairs.
    public var auc: Double
    /// Number of pairs P.
    public var pairs: Int
    /// Which protocol produced the numbers (`VerificationProtocol.name` for this module).
    public var protocolName: String
    /// Accuracy and best threshold of each held-out fold (absent in reports written before they were kept).
    public var foldAccuracies: [Double]? = nil
    public var foldThresholds: [Double]? = nil
    /// The squared L2 distance of every pair (P values, pair order), when the evaluation was asked to
    /// keep them (kdtrain's `eval.pairDistances`); absent otherwise and in older reports.
    public var pairDistances: [Double]? = nil
    /// The training seed of this row, for rows of a multi-seed study.
    public var seed: UInt64? = nil
    /// For rows aggregated over seeds: the number of seeds and the sample std (ddof 1) of their
    /// accuracies; `accuracy` is then the mean over seeds and `accuracyStd` the mean fold std.
    public var seeds: Int? = nil
    public var seedStd: Double? = nil

    /// A result with every field given.
    public init(model: String, dataset: String, degradationFactor: Int, degradation: String, accuracy: Double,
                accuracyStd: Double, threshold: Double, tarAtFar: Double, tarStd: Double, far: Double,
                farTarget: Double, auc: Double, pairs: Int, protocolName: String = VerificationProtocol.name) {
        self.model = model
        self.dataset = dataset
        self.degradationFactor = degradationFactor
        self.degradation = degradation
        self.accuracy = accuracy
        self.accuracyStd = accuracyStd
        self.threshold = threshold
        self.tarAtFar = tarAtFar
        self.tarStd = tarStd
        self.far = far
        self.farTarget = farTarget
        self.auc = auc
        self.pairs = pairs
        self.protocolName = protocolName
    }

    /// The result of `VerificationProtocol.evaluate` for one model, set and factor.
    public init(model: String, dataset: String, degradationFactor: Int, degradation: String,
                metrics: VerificationMetrics) {
        self.init(model: model, dataset: dataset, degradationFactor: degradationFactor, degradation: degradation,
                  accuracy: metrics.accuracy.mean, accuracyStd: metrics.accuracy.std,
                  threshold: metrics.accuracy.thresholdMean, tarAtFar: metrics.validationRate.valMean,
                  tarStd: metrics.validationRate.valStd, far: metrics.validationRate.farMean,
                  farTarget: metrics.validationRate.farTarget, auc: metrics.auc, pairs: metrics.pairs)
        foldAccuracies = metrics.accuracy.foldAccuracies
        foldThresholds = metrics.accuracy.foldThresholds
    }
}
