// The progress clock: start-up and the first step's warm-up do not distort images/s or the ETA, and
// one slow interval moves the shown rate by the smoothing weight only.
import Foundation
import XCTest
import Pipeline

final class PhaseClockTests: XCTestCase {
    func testStartUpAndFirstStepDoNotDistortTheEstimates() {
        let t0 = Date(timeIntervalSince1970: 1_000)
        var clock = PhaseClock()
        clock.start(now: t0)                                   // first batch in hand: the clock starts
        clock.stepDone(1, now: t0 + 10)                        // the first step: 10 s of warm-up
        for k in 2...4 { clock.stepDone(k, now: t0 + 10 + Double(k - 1)) }   // then 1 s per step
        let r = clock.interval(images: 4 * 16, step: 4, totalSteps: 10, now: t0 + 13)
        XCTAssertEqual(r.raw, 64 / 13, accuracy: 1e-9)
        XCTAssertEqual(r.smoothed, r.raw, accuracy: 1e-12)     // the first interval is its own rate
        XCTAssertEqual(r.eta, 6, accuracy: 1e-9)               // 6 steps left at 1 s, not at (13 s / 4)
    }

    func testOnlyTheFirstStepDoneUsesItsTime() {
        let t0 = Date(timeIntervalSince1970: 0)
        var clock = PhaseClock()
        clock.start(now: t0)
        clock.stepDone(1, now: t0 + 2)
        let r = clock.interval(images: 16, step: 1, totalSteps: 5, now: t0 + 2)
        XCTAssertEqual(r.raw, 8, accuracy: 1e-9)               // a one-step run: 16 images in 2 s
        XCTAssertEqual(r.eta, 8, accuracy: 1e-9)
    }

    func testOneSlowIntervalMovesTheRateByTheSmoothingWeight() {
        let t0 = Date(timeIntervalSince1970: 0)
        var clock = PhaseClock()
        clock.start(now: t0)
        clock.stepDone(1, now: t0 + 1)
        _ = clock.interval(images: 100, step: 1, totalSteps: 100, now: t0 + 1)      // 100 img/s
        clock.stepDone(2, now: t0 + 11)
        let slow = clock.interval(images: 100, step: 2, totalSteps: 100, now: t0 + 11)   // 10 img/s
        XCTAssertEqual(slow.raw, 10, accuracy: 1e-9)
        XCTAssertEqual(slow.smoothed, PhaseClock.smoothing * 10 + (1 - PhaseClock.smoothing) * 100, accuracy: 1e-9)
        XCTAssertGreaterThan(slow.smoothed, 50)
    }
}
