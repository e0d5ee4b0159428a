// Collective agreement on a failure: the checks every rank makes alike (configuration, data sources,
// the run directory) fail on every rank at once, and without agreement each rank prints the same
// error and calls MPI_Abort, so the user reads it N times under OpenMPI's abort banner.
//
// `agree` runs a body on every rank and then takes one all-reduce (the lowest failing rank, or the
// world size when none failed). When a rank failed, every rank throws `AgreedFailure`: the lowest
// failing rank carries its error to print, the others carry none. Because every rank knows that the
// whole job fails, none needs MPI_Abort: each finalizes MPI and exits non-zero, and the message
// appears once. Only a failure that some ranks do not see (a rank that dies, an error inside
// training) still goes through `Communicator.abortJob`.
//
// `agree` is a collective: every rank must call it at the same point, also when its body has
// nothing to do on that rank (e.g. a rank-0-only directory check).

/// Thrown on every rank by `Communicator.agree` when its body failed on at least one rank.
public struct AgreedFailure: Error, CustomStringConvertible, Sendable {
    /// The lowest rank whose body failed.
    public let rank: Int
    /// That rank's error, as text; nil on the other ranks (they print nothing).
    public let message: String?

    public init(rank: Int, message: String?) {
        self.rank = rank; self.message = message
    }

    public var description: String { message ?? "rank \(rank) failed (reported by that rank)" }
}

extension Communicator {
    /// Runs `body` on every rank; if it throws on any rank, throws `AgreedFailure` on all of them.
    /// An `AgreedFailure` thrown inside `body` (a nested agreement, which every rank saw alike) is
    /// passed on without another round.
    public func agree<T>(_ body: () throws -> T) throws -> T {
        var result: T?
        var failure: Error?
        do { result = try body() } catch let e as AgreedFailure { throw e } catch { failure = error }
        if size == 1 {
            if let failure { throw AgreedFailure(rank: 0, message: "\(failure)") }
            return result!
        }
        var lowest = [Double(failure == nil ? size : rank)]
        try allReduce(&lowest, op: .min, what: .agreement)
        let first = Int(lowest[0])
        guard first < size else { return result! }
        throw AgreedFailure(rank: first, message: first == rank ? failure.map { "\($0)" } : nil)
    }
}
