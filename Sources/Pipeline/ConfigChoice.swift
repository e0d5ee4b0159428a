// The typed choices of the run configuration: every option that takes one of a fixed set of words
// (resize kernels, head kind, LR schedule, loss recipe, attention and embedding distillation kind,
// which images evaluation degrades) is a String enum conforming to `ConfigChoice`. Each is encoded
// as its raw string, so config.json files and checkpoints keep the strings they always had, and a
// value outside the set is refused when the configuration is read, in one line naming the option,
// the value, the allowed values and the nearest one.
import FaceData
import Foundation
import Model

/// A configuration option that takes one of a fixed set of strings.
public protocol ConfigChoice: CaseIterable, RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible
where RawValue == String {}

extension ConfigChoice {
    /// The allowed strings, in declaration order.
    public static var allowedValues: [String] { allCases.map(\.rawValue) }
    public var description: String { rawValue }

    /// The value named `raw`, or a one-line reason naming `option`, the allowed values and the
    /// nearest one.
    public static func parse(_ raw: String, option: String) throws -> Self {
        if let v = Self(rawValue: raw) { return v }
        throw ConfigError(choiceProblem(raw, allowed: allowedValues, option: option))
    }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let v = Self(rawValue: raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: choiceReason(raw, allowed: Self.allowedValues)))
        }
        self = v
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// "OPTION: 'VALUE' is not one of A, B, C (did you mean B?)".
func choiceProblem(_ raw: String, allowed: [String], option: String) -> String {
    "\(option): " + choiceReason(raw, allowed: allowed)
}

/// "'VALUE' is not one of A, B, C (did you mean B?)"; the suggestion only when one is close.
func choiceReason(_ raw: String, allowed: [String]) -> String {
    let shown = raw.count > 40 ? String(raw.prefix(40)) + "..." : raw
    let near = EditDistance.nearest(raw, among: allowed)
    return "'\(shown)' is not one of \(allowed.joined(separator: ", "))" + (near.isEmpty ? "" : " (did you mean \(near.joined(separator: " or "))?)")
}

/// Levenshtein distance and "nearest of these" for suggestions.
enum EditDistance {
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased()), b = Array(b.lowercased())
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var prev = row[0]; row[0] = i
            for j in 1...b.count {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }

    /// The candidates nearest to `s` (sorted), when within max(2, |s| / 3) edits; else none.
    static func nearest(_ s: String, among candidates: [String]) -> [String] {
        let s = String(s.prefix(200))
        let scored = candidates.map { ($0, distance(s, $0)) }
        guard let best = scored.map(\.1).min(), best <= max(2, s.count / 3) else { return [] }
        return scored.filter { $0.1 == best }.map(\.0).sorted()
    }
}

// MARK: the choices

extension ResizeKernel: ConfigChoice {}

/// data.resize: the kernel bringing source images to the network input size (no nearest).
public enum InputResize: String, ConfigChoice {
    case area, bilinear, bicubic
    public var kernel: ResizeKernel {
        switch self { case .area: return .area; case .bilinear: return .bilinear; case .bicubic: return .bicubic }
    }
}

/// head.kind: the classification head.
public enum HeadKind: String, ConfigChoice {
    case softmax, cosface, arcface
}

/// optim.schedule: the learning-rate decay after warm-up.
public enum ScheduleKind: String, ConfigChoice {
    case cosine, multistep, poly, constant
}

/// loss.recipe: the named loss recipes of LossRecipes.swift (`LossRecipe.all` holds one per case).
public enum RecipeName: String, ConfigChoice {
    case paper, askd, fskd, at, hinton
    case none = "none"
}

/// loss.attention: which attention-map distillation the student gets.
public enum AttentionKind: String, ConfigChoice {
    /// A-SKD attention similarity on CBAM maps.
    case askd
    /// Attention transfer on stage outputs.
    case at
    case both
    case none = "none"
    public var similarity: Bool { self == .askd || self == .both }
    public var transfer: Bool { self == .at || self == .both }
}

/// loss.embeddingKind: how the student's embedding is compared with the teacher's.
public enum EmbeddingKind: String, ConfigChoice {
    case cosine, mse
    case normalizedL2 = "normalized-l2"
    public var distillKind: EmbeddingDistillKind {
        switch self { case .cosine: return .cosine; case .mse: return .mse; case .normalizedL2: return .normalizedL2 }
    }
}

/// eval.degrade: which images of each pair evaluation degrades.
public enum DegradedImages: String, ConfigChoice {
    /// The second image of each pair, as the paper degrades probes.
    case probe
    /// Both images, as A-SKD's evaluation code does.
    case both
}
