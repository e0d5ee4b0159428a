// Helpers for the head, loss and optimizer tests: the PyTorch fixture and array comparisons.
import Foundation
import XCTest
import Model

/// Tests/ModelTests/Fixtures/losses.json, written by scripts/make_loss_reference.py.
struct LossFixture {
    let root: [String: Any]

    static func load(file: StaticString = #filePath, line: UInt = #line) throws -> LossFixture {
        guard let url = Bundle.module.url(forResource: "losses", withExtension: "json", subdirectory: "Fixtures") else {
            XCTFail("Fixtures/losses.json missing from the test bundle", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        let data = try Data(contentsOf: url)
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CocoaError(.coderReadCorrupt)
        }
        return LossFixture(root: root)
    }

    func object(_ key: String) -> [String: Any] {
        guard let o = root[key] as? [String: Any] else { fatalError("fixture: no object \(key)") }
        return o
    }

    func list(_ key: String) -> [[String: Any]] {
        guard let o = root[key] as? [[String: Any]] else { fatalError("fixture: no list \(key)") }
        return o
    }
}

extension Dictionary where Key == String, Value == Any {
    func floats(_ key: String) -> [Float] {
        guard let a = self[key] as? [NSNumber] else { fatalError("fixture: no float array \(key)") }
        return a.map { $0.floatValue }
    }
    func ints(_ key: String) -> [Int32] {
        guard let a = self[key] as? [NSNumber] else { fatalError("fixture: no int array \(key)") }
        return a.map { $0.int32Value }
    }
    func int(_ key: String) -> Int {
        guard let v = self[key] as? NSNumber else { fatalError("fixture: no int \(key)") }
        return v.intValue
    }
    func double(_ key: String) -> Double {
        guard let v = self[key] as? NSNumber else { fatalError("fixture: no number \(key)") }
        return v.doubleValue
    }
    func float(_ key: String) -> Float { Float(double(key)) }
    func bool(_ key: String) -> Bool {
        if let v = self[key] as? Bool { return v }
        guard let v = self[key] as? NSNumber else { fatalError("fixture: no bool \(key)") }
        return v.boolValue
    }
    func string(_ key: String) -> String {
        guard let v = self[key] as? String else { fatalError("fixture: no string \(key)") }
        return v
    }
    func sub(_ key: String) -> [String: Any] {
        guard let v = self[key] as? [String: Any] else { fatalError("fixture: no object \(key)") }
        return v
    }
}

/// Fails (naming `label`, the count, the first mismatches and the largest difference) unless
/// |actual - expected| <= atol + rtol * |expected| elementwise.
func assertClose(_ actual: [Float], _ expected: [Float], atol: Float, rtol: Float, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(label): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var bad: [String] = [], maxDiff: Float = 0
    for i in actual.indices {
        let d = abs(actual[i] - expected[i])
        if !(d <= atol + rtol * abs(expected[i])) {
            bad.append("[\(i)] \(actual[i]) vs \(expected[i])")
        }
        if d.isNaN { maxDiff = .nan } else if !maxDiff.isNaN { maxDiff = max(maxDiff, d) }
    }
    if !bad.isEmpty {
        XCTFail("\(label): \(bad.count)/\(actual.count) mismatches (atol \(atol), rtol \(rtol)), max diff \(maxDiff), first: \(bad.prefix(4))",
                file: file, line: line)
    }
}

/// Scalar version of `assertClose`.
func assertClose(_ actual: Float, _ expected: Float, atol: Float, rtol: Float, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    assertClose([actual], [expected], atol: atol, rtol: rtol, label, file: file, line: line)
}

/// Finite-difference check of `analytic` (the gradient of `value` w.r.t. the `count` floats at
/// `pointer`); fails naming `label` and `what`.
func checkGradient(_ label: String, _ what: String, pointer: UnsafeMutablePointer<Float>, analytic: [Float],
                   samples: Int = 64, eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2,
                   value: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
    // A gradient that is tiny next to atol would pass whatever its value: refuse such a check.
    let largest = analytic.map { abs(Double($0)) }.max() ?? 0
    if largest < 10 * atol {
        XCTFail("\(label): \(what) gradient too small to test (max \(largest), atol \(atol))", file: file, line: line)
        return
    }
    let bad = analytic.withUnsafeBufferPointer {
        numericCheck(what, pointer: pointer, analytic: $0.baseAddress!, count: analytic.count, samples: samples,
                     eps: eps, atol: atol, rtol: rtol, value: value)
    }
    if !bad.isEmpty {
        XCTFail("\(label): \(bad.count) gradient mismatches, first: \(bad.prefix(4).map(\.description))",
                file: file, line: line)
    }
}

/// A heap buffer for tests, freed by `defer { buf.deallocate() }` at the call site.
func testBuffer(_ values: [Float]) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: max(values.count, 1))
    p.initialize(repeating: 0, count: max(values.count, 1))
    values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
    return p
}

func testBuffer(zeros n: Int) -> UnsafeMutablePointer<Float> { testBuffer([Float](repeating: 0, count: n)) }

func array(_ p: UnsafePointer<Float>, _ n: Int) -> [Float] { Array(UnsafeBufferPointer(start: p, count: n)) }

func randomArray(_ rng: inout TestRNG, _ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
    (0..<n).map { _ in rng.uniform(lo, hi) }
}
