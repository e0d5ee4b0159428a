// Wall-clock accounting by layer kind, for `kdtrain bench`. Off (nil) in training.
import Foundation

public enum LayerKind: String, CaseIterable, Sendable {
    case conv1x1 = "conv 1x1", convGrouped = "conv grouped 3x3", convOther = "conv other",
         batchNorm = "batch norm", activation = "activation", cbam = "cbam (incl. its 7x7 conv)",
         residual = "residual add", head = "embedding head", loss = "head+losses", optimizer = "optimizer",
         communication = "communication"
}

public final class Profiler {
    public private(set) var seconds: [LayerKind: Double] = [:]
    public init() {}
    @inline(__always) public static func now() -> Double {
        var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
    public func add(_ kind: LayerKind, _ s: Double) { seconds[kind, default: 0] += s }
    public func reset() { seconds = [:] }
}

extension Optional where Wrapped == Profiler {
    /// Runs `body`, charging its wall time to `kind` when profiling.
    @inline(__always) func time(_ kind: LayerKind, _ body: () -> Void) {
        guard let p = self else { body(); return }
        let t0 = Profiler.now(); body(); p.add(kind, Profiler.now() - t0)
    }
}
