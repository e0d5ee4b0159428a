// The configuration's ranges: `[min, max]` in JSON (as config.json files always had them), a typed
// pair in Swift. Decoding refuses anything but two numbers, naming the option; `problems()` checks
// the order and the bounds; `closed` is the ClosedRange the data pipeline takes.

/// A `[lower, upper]` option (degrade.blurSigma, degrade.noiseSigma, degrade.jpegQuality).
public struct ConfigRange<Bound: Comparable & Codable & Sendable>: Codable, Sendable, Equatable {
    public var lower: Bound
    public var upper: Bound

    public init(_ lower: Bound, _ upper: Bound) {
        self.lower = lower; self.upper = upper
    }

    /// `lower...upper`, or nil when they are out of order.
    public var closed: ClosedRange<Bound>? { lower <= upper ? lower...upper : nil }

    /// Whether `lower <= upper` and both lie in `bounds`.
    public func isOrdered(within bounds: ClosedRange<Bound>) -> Bool {
        lower <= upper && bounds.contains(lower) && bounds.contains(upper)
    }

    public init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        guard c.count == 2 else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "must be [min, max] (2 numbers), got \(c.count.map(String.init) ?? "?") values")
        }
        lower = try c.decode(Bound.self)
        upper = try c.decode(Bound.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(lower)
        try c.encode(upper)
    }
}

/// Types whose JSON shape `JSONShape(sample:)` cannot read off their Swift structure.
protocol JSONShapeProviding {
    static var jsonShape: JSONShape { get }
}

extension ConfigRange: JSONShapeProviding {
    static var jsonShape: JSONShape { .array(JSONShape(typeName: "\(Bound.self)")) }
}
