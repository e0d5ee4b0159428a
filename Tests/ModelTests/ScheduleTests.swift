// Learning-rate schedules: warm-up, multi-step, cosine, polynomial.
import Foundation
import XCTest
import Model

final class ScheduleTests: XCTestCase {
    func assertLR(_ s: LRSchedule, _ step: Int, _ expected: Double, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Double(s.lr(at: step)), expected, accuracy: 1e-7 * max(1, abs(expected)) + 1e-9,
                       "\(s.decay) warmup \(s.warmupSteps) step \(step)", file: file, line: line)
    }

    func testLinearWarmupThenConstant() {
        let s = LRSchedule(baseLR: 0.1, warmupSteps: 4, totalSteps: 20, decay: .constant)
        assertLR(s, 0, 0.025); assertLR(s, 1, 0.05); assertLR(s, 3, 0.1); assertLR(s, 4, 0.1); assertLR(s, 500, 0.1)
        let none = LRSchedule(baseLR: 0.1, warmupSteps: 0, totalSteps: 20, decay: .constant)
        assertLR(none, 0, 0.1)
    }

    func testMultiStep() {
        let s = LRSchedule(baseLR: 0.1, totalSteps: 30, decay: .multiStep(milestones: [10, 15], gamma: 0.1))
        assertLR(s, 0, 0.1); assertLR(s, 9, 0.1); assertLR(s, 10, 0.01); assertLR(s, 14, 0.01)
        assertLR(s, 15, 0.001); assertLR(s, 1000, 0.001)
        // A milestone inside the warm-up multiplies the ramp.
        let w = LRSchedule(baseLR: 0.1, warmupSteps: 5, totalSteps: 30, decay: .multiStep(milestones: [3, 8], gamma: 0.5))
        assertLR(w, 2, 0.1 * 3 / 5); assertLR(w, 3, 0.05 * 4 / 5); assertLR(w, 5, 0.05); assertLR(w, 7, 0.05); assertLR(w, 8, 0.025)
    }

    func testCosineToFloor() {
        let s = LRSchedule(baseLR: 0.1, warmupSteps: 10, totalSteps: 110, decay: .cosine(floor: 0.001))
        assertLR(s, 0, 0.01); assertLR(s, 9, 0.1); assertLR(s, 10, 0.1)
        assertLR(s, 35, 0.001 + 0.099 * (1 + cos(Double.pi / 4)) / 2)
        assertLR(s, 60, 0.001 + 0.099 / 2)
        assertLR(s, 110, 0.001); assertLR(s, 1000, 0.001)
    }

    func testPolynomial() {
        let s = LRSchedule(baseLR: 0.1, totalSteps: 100, decay: .polynomial(power: 2, floor: 0))
        assertLR(s, 0, 0.1); assertLR(s, 50, 0.025); assertLR(s, 99, 0.1 * 0.0001); assertLR(s, 100, 0); assertLR(s, 150, 0)
        let lin = LRSchedule(baseLR: 0.2, warmupSteps: 2, totalSteps: 12, decay: .polynomial(power: 1, floor: 0.02))
        assertLR(lin, 0, 0.1); assertLR(lin, 1, 0.2); assertLR(lin, 2, 0.2); assertLR(lin, 7, 0.02 + 0.18 * 0.5); assertLR(lin, 12, 0.02)
    }

    func testDecayIsMonotoneAfterWarmup() {
        let schedules = [
            LRSchedule(baseLR: 0.1, warmupSteps: 7, totalSteps: 200, decay: .multiStep(milestones: [50, 120, 180], gamma: 0.1)),
            LRSchedule(baseLR: 0.1, warmupSteps: 7, totalSteps: 200, decay: .cosine(floor: 1e-4)),
            LRSchedule(baseLR: 0.1, warmupSteps: 7, totalSteps: 200, decay: .polynomial(power: 0.9, floor: 0)),
        ]
        for s in schedules {
            for step in 1..<7 { XCTAssertGreaterThan(s.lr(at: step), s.lr(at: step - 1), "\(s.decay) warm-up rises at \(step)") }
            for step in 8..<260 { XCTAssertLessThanOrEqual(s.lr(at: step), s.lr(at: step - 1), "\(s.decay) rises at \(step)") }
        }
    }
}
