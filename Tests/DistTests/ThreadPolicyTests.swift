// Thread policy: cores on the node / ranks on the node, at least 1, unless OPENBLAS_NUM_THREADS is set.

import Dist
import XCTest

final class ThreadPolicyTests: XCTestCase {
    func testCoresAreSplitAmongLocalRanks() {
        XCTAssertEqual(Communicator.recommendedThreads(environment: [:], coresOnNode: 16, localRanks: 4), 4)
        XCTAssertEqual(Communicator.recommendedThreads(environment: [:], coresOnNode: 2, localRanks: 1), 2)
        XCTAssertEqual(Communicator.recommendedThreads(environment: [:], coresOnNode: 3, localRanks: 2), 1)
        XCTAssertEqual(Communicator.recommendedThreads(environment: [:], coresOnNode: 2, localRanks: 8), 1, "mpirun -n 8 on 2 cores must not thrash")
    }

    func testUserSettingWinsWhenValid() {
        XCTAssertEqual(Communicator.recommendedThreads(environment: ["OPENBLAS_NUM_THREADS": "3"], coresOnNode: 16, localRanks: 4), 3)
        XCTAssertEqual(Communicator.recommendedThreads(environment: ["OPENBLAS_NUM_THREADS": " 6 "], coresOnNode: 2, localRanks: 2), 6)
        XCTAssertEqual(Communicator.recommendedThreads(environment: ["OPENBLAS_NUM_THREADS": "0"], coresOnNode: 8, localRanks: 2), 4)
        XCTAssertEqual(Communicator.recommendedThreads(environment: ["OPENBLAS_NUM_THREADS": "lots"], coresOnNode: 8, localRanks: 2), 4)
    }
}
