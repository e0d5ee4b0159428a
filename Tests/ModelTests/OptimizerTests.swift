// SGD: against PyTorch, hand-computed momentum and Nesterov, decay exemptions, gradient clipping and norm.
import XCTest
import Model

final class OptimizerTests: XCTestCase {
    /// A store with the given (name, shape, decay) entries plus one buffer entry, allocated.
    func makeStore(_ entries: [(String, [Int], Bool)]) -> ParamStore {
        let store = ParamStore()
        for (name, shape, decay) in entries { store.register(name, shape: shape, initializer: .constant(0), decay: decay) }
        store.register("bn.running_mean", shape: [3], region: .buffer, initializer: .constant(0))
        store.allocate()
        return store
    }

    func testMatchesPyTorchSGD() throws {
        let fx = try LossFixture.load()
        for c in fx.list("sgd") {
            let mu = c.float("momentum"), wd = c.float("weight_decay"), nesterov = c.bool("nesterov")
            let exempt = c.bool("exempt_no_decay")
            let label = "SGD mu \(mu) wd \(wd) nesterov \(nesterov) exempt \(exempt)"
            guard let entries = c["entries"] as? [[String: Any]], let lrs = c["lrs"] as? [NSNumber],
                  let grads = c["grads"] as? [[NSNumber]], let after = c["params"] as? [[NSNumber]] else {
                return XCTFail("\(label): malformed fixture")
            }
            let store = makeStore(entries.map { ($0.string("name"), $0.ints("shape").map(Int.init), $0.bool("decay")) })
            let p0 = c.floats("params0")
            XCTAssertEqual(p0.count, store.paramCount, label)
            p0.withUnsafeBufferPointer { store.params.update(from: $0.baseAddress!, count: p0.count) }
            let sgd = SGD(store: store, config: SGDConfig(momentum: mu, weightDecay: wd, nesterov: nesterov, exemptNoDecay: exempt))
            for (i, lr) in lrs.enumerated() {
                let g = grads[i].map(\.floatValue)
                g.withUnsafeBufferPointer { store.grads.update(from: $0.baseAddress!, count: g.count) }
                sgd.step(lr: lr.floatValue)
                assertClose(array(store.params, store.paramCount), after[i].map(\.floatValue), atol: 1e-6, rtol: 1e-5,
                            "\(label) params after step \(i + 1)")
            }
        }
    }

    func testHandComputedMomentumAndNesterov() {
        // p = 1, g = 1 every step, lr 0.1, mu 0.9, no decay.
        for (nesterov, expected) in [(false, [Float(0.9), 0.71]), (true, [0.81, 0.539])] {
            let store = makeStore([("w", [1], true)])
            store.params[0] = 1
            let sgd = SGD(store: store, config: SGDConfig(momentum: 0.9, weightDecay: 0, nesterov: nesterov))
            for e in expected {
                store.grads[0] = 1
                sgd.step(lr: 0.1)
                XCTAssertEqual(store.params[0], e, accuracy: 1e-6, "nesterov \(nesterov)")
            }
            XCTAssertEqual(store.momentum[0], 1.9, accuracy: 1e-6, "momentum buffer, nesterov \(nesterov)")
        }
    }

    func testRangesMergeByDecayFlagAndExemption() {
        let store = makeStore([("a.weight", [2, 3], true), ("a.w2", [4], true), ("bn.weight", [3], false),
                               ("bn.bias", [3], false), ("b.weight", [5], true)])
        let sgd = SGD(store: store, config: SGDConfig(momentum: 0, weightDecay: 0.1))
        XCTAssertEqual(sgd.ranges.map(\.offset), [0, 10, 16])
        XCTAssertEqual(sgd.ranges.map(\.count), [10, 6, 5])
        XCTAssertEqual(sgd.ranges.map(\.decay), [true, false, true])
        // Zero gradients, lr 1: decayed entries shrink by (1 - wd), exempt ones stay.
        for exempt in [true, false] {
            for i in 0..<store.paramCount { store.params[i] = 1; store.grads[i] = 0 }
            sgd.config.exemptNoDecay = exempt
            sgd.step(lr: 1)
            for e in store.entries where e.region == .param {
                let want: Float = (e.decay || !exempt) ? 0.9 : 1
                for i in 0..<e.count { XCTAssertEqual(store.params[e.offset + i], want, accuracy: 1e-7, "\(e.name) exempt \(exempt)") }
            }
        }
        XCTAssertEqual(store.buffers[0], 0, "buffers are not optimized")
    }

    func testClipGradientsByGlobalNorm() {
        let store = makeStore([("a", [2], true), ("b", [1], false)])
        let sgd = SGD(store: store, config: SGDConfig())
        store.grads[0] = 3; store.grads[1] = 0; store.grads[2] = 4
        XCTAssertEqual(sgd.gradientNorm(), 5, accuracy: 1e-6)
        XCTAssertEqual(sgd.clipGradients(maxNorm: 10), 5, accuracy: 1e-6)
        XCTAssertEqual(array(store.grads, 3), [3, 0, 4], "no clipping under the limit")
        XCTAssertEqual(sgd.clipGradients(maxNorm: 1), 5, accuracy: 1e-6, "returns the pre-clip norm")
        assertClose(array(store.grads, 3), [0.6, 0, 0.8], atol: 1e-6, rtol: 0, "clipped to norm 1")
        XCTAssertEqual(sgd.gradientNorm(), 1, accuracy: 1e-6)
    }

    func testGradientNormOfLargeStoreMatchesDoubleSum() {
        // Large and odd-sized: exercises the blocked (threaded) reduction and the scaling pass.
        let n = 1_000_003
        let store = makeStore([("big", [n], true)])
        var rng = TestRNG(4)
        var ss = 0.0
        for i in 0..<n { let v = rng.uniform(); store.grads[i] = v; ss += Double(v) * Double(v) }
        let sgd = SGD(store: store, config: SGDConfig())
        XCTAssertEqual(Double(sgd.gradientNorm()), ss.squareRoot(), accuracy: 1e-4 * ss.squareRoot())
        let before = store.grads[n - 1]
        let pre = sgd.clipGradients(maxNorm: 2)
        XCTAssertEqual(Double(pre), ss.squareRoot(), accuracy: 1e-4 * ss.squareRoot())
        XCTAssertEqual(store.grads[n - 1], before * 2 / pre, accuracy: 1e-6)
        XCTAssertEqual(sgd.gradientNorm(), 2, accuracy: 1e-4)
    }

    func testNonFiniteGradientsAreDetectedAndNotClipped() {
        for bad in [Float.nan, .infinity, -.infinity] {
            let store = makeStore([("a", [4], true), ("b", [70_000], true)])
            let sgd = SGD(store: store, config: SGDConfig())
            for i in 0..<store.paramCount { store.grads[i] = 0.5 }
            XCTAssertTrue(sgd.gradientsAreFinite())
            store.grads[store.paramCount - 7] = bad
            XCTAssertFalse(sgd.gradientsAreFinite(), "\(bad) not detected")
            let norm = sgd.clipGradients(maxNorm: 1)
            XCTAssertFalse(norm.isFinite, "\(bad): norm \(norm)")
            XCTAssertEqual(store.grads[0], 0.5, "\(bad): gradients scaled despite a non-finite norm")
        }
    }
}
