// Learning-rate schedules: a pure function of the 0-based optimizer step s.
//
//   lr(s) = warmup(s) * decay(s)
//   warmup(s) = (s + 1) / W  for s < W (reaches 1 at s = W - 1), else 1.     (W = warmupSteps)
//   decay(s):
//     constant                    base
//     multiStep(milestones, γ)    base * γ^(number of milestones m with m <= s)   (absolute steps,
//                                 as torch.optim.lr_scheduler.MultiStepLR stepped per iteration)
//     cosine(floor)               floor + (base - floor) * (1 + cos(π q)) / 2
//     polynomial(power, floor)    floor + (base - floor) * (1 - q)^power
//   with q = clamp((s - W) / (totalSteps - W), 0, 1), the progress after warm-up (so the decayed
//   part starts from base right after warm-up and reaches floor at s = totalSteps).
// insightface's PolyScheduler is polynomial(power: 2, floor: 0) with its warm-up starting at
// s / W instead of (s + 1) / W (we never train a step at lr 0).
import Foundation

/// A learning-rate schedule.
public struct LRSchedule: Sendable, Equatable {
    public enum Decay: Sendable, Equatable {
        case constant
        case multiStep(milestones: [Int], gamma: Float)
        case cosine(floor: Float)
        case polynomial(power: Float, floor: Float)
    }
    public var baseLR: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Decay

    public init(baseLR: Float, warmupSteps: Int = 0, totalSteps: Int, decay: Decay) {
        precondition(baseLR > 0, "LRSchedule: base learning rate must be positive, got \(baseLR)")
        precondition(warmupSteps >= 0 && totalSteps > warmupSteps,
                     "LRSchedule: need 0 <= warmupSteps < totalSteps, got \(warmupSteps), \(totalSteps)")
        switch decay {
        case .constant: break
        case .multiStep(let ms, let g):
            precondition(g > 0 && ms == ms.sorted() && ms.allSatisfy { $0 > 0 },
                         "LRSchedule: milestones must be positive and sorted, gamma positive: \(ms) \(g)")
        case .cosine(let f):
            precondition(f >= 0 && f <= baseLR, "LRSchedule: cosine floor \(f) outside [0, base]")
        case .polynomial(let p, let f):
            precondition(p > 0 && f >= 0 && f <= baseLR, "LRSchedule: bad polynomial power \(p) or floor \(f)")
        }
        self.baseLR = baseLR; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps; self.decay = decay
    }

    /// The warm-up factor at step s: (s + 1) / W during warm-up, else 1.
    public func warmupFactor(at step: Int) -> Float {
        step < warmupSteps ? Float(step + 1) / Float(warmupSteps) : 1
    }

    /// Progress q in [0, 1] of the decayed part.
    public func progress(at step: Int) -> Double {
        let q = Double(step - warmupSteps) / Double(totalSteps - warmupSteps)
        return min(max(q, 0), 1)
    }

    /// The learning rate for 0-based step `step` (steps past totalSteps keep the final value).
    public func lr(at step: Int) -> Float {
        precondition(step >= 0, "LRSchedule: negative step \(step)")
        let base = Double(baseLR)
        let decayed: Double
        switch decay {
        case .constant:
            decayed = base
        case .multiStep(let milestones, let gamma):
            let passed = milestones.reduce(0) { $0 + ($1 <= step ? 1 : 0) }
            decayed = base * pow(Double(gamma), Double(passed))
        case .cosine(let floor):
            let f = Double(floor)
            decayed = f + (base - f) * (1 + cos(Double.pi * progress(at: step))) / 2
        case .polynomial(let power, let floor):
            let f = Double(floor)
            decayed = f + (base - f) * pow(1 - progress(at: step), Double(power))
        }
        return Float(decayed * Double(warmupFactor(at: step)))
    }
}
