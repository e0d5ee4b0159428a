// The distributed sampler under real ranks: every sample exactly once per epoch across ranks
// (at most once with a drop-last remainder), a different order each epoch, equal step counts on
// every rank, exact resume; checked on rank 0 after gathering every rank's indices.

import XCTest

final class MPISamplerTests: XCTestCase {
    func testSamplerTwoRanks() throws {
        try MPIRunner.expectOK(ranks: 2, ["sampler"])
    }

    func testSamplerFourRanksOversubscribed() throws {
        try MPIRunner.expectOK(ranks: 4, ["sampler"], timeout: 90)
    }
}
