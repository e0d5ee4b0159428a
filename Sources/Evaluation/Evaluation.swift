// Evaluation: face-verification metrics and the report outputs (JSON, markdown table, SVG chart).
//
// Letters used in buffer-layout comments throughout this module:
//   P  number of verification pairs (6,000 for AgeDB-30 / CPLFW / LFW, 7,000 for CFP-FP)
//   E  embedding dimension (e.g. 512)
//   F  number of folds (10 in the standard protocol)
//   T  number of thresholds on a grid (400 for accuracy, 4,000 for TAR@FAR)
//
// Which protocol the numbers follow:
//   Every number this module produces follows insightface's `recognition/arcface_torch/eval/verification.py`
//   (`evaluate`, `calculate_roc`, `calculate_accuracy`, `calculate_val`, `calculate_val_far`): flip-test
//   embeddings (embedding of the image + embedding of its mirror, summed, L2-normalized), squared L2 distance,
//   10 contiguous folds without shuffling, best accuracy threshold on the grid 0..4 step 0.01 chosen on the other
//   nine folds, TAR (VAL) at FAR = 1e-3 by interpolation on the grid 0..4 step 0.001. It is NOT A-SKD's variant
//   (gist-ailab/teaching-where-to-look evaluation/eval_agedb.py: concatenated flip embeddings, mean subtraction,
//   cosine, finer grid); numbers from the two are not interchangeable. `VerificationProtocol.name` is written into
//   every report so a number always says where it came from. ROC AUC is an addition insightface does not report.

import Foundation

/// A verification input that cannot be evaluated. Thrown, never trapped: the launcher prints `description`.
public enum VerificationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Buffer sizes do not fit together (e.g. embeddings not (2P, E), or `issame.count != P`).
    case shapeMismatch(String)
    /// Fewer pairs than folds (sklearn's KFold refuses this too), or fewer than 2 folds.
    case tooFewPairs(pairs: Int, folds: Int)
    /// Fold `fold` (pairs `range`) holds only same-identity pairs (`allSame`) or only different ones:
    /// TAR/FAR on it would divide by zero (insightface raises ZeroDivisionError there).
    case singleClassFold(fold: Int, range: Range<Int>, allSame: Bool)
    /// The whole set holds a single class, so ROC AUC is undefined.
    case singleClass(allSame: Bool)
    /// A NaN or infinite value at flat index `index` of the named buffer.
    case nonFinite(buffer: String, index: Int)
    /// An argument outside its documented range.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let what):
            return "verification: shape mismatch: \(what)"
        case .tooFewPairs(let pairs, let folds):
            return "verification: \(pairs) pairs cannot be split into \(folds) folds (need folds >= 2 and pairs >= folds)"
        case .singleClassFold(let fold, let range, let allSame):
            return "verification: fold \(fold) (pairs \(range.lowerBound)..<\(range.upperBound)) holds only "
                + (allSame ? "same-identity pairs" : "different-identity pairs") + "; TAR/FAR are undefined on it"
        case .singleClass(let allSame):
            return "verification: every pair is " + (allSame ? "same-identity" : "different-identity")
                + "; ROC AUC is undefined"
        case .nonFinite(let buffer, let index):
            return "verification: non-finite value (NaN or infinity) in \(buffer) at flat index \(index)"
        case .invalidArgument(let what):
            return "verification: invalid argument: \(what)"
        }
    }
}
