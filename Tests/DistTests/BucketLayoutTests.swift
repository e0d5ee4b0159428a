// Bucket layout of the gradient reducer: cut from the end of the flat buffer, small first bucket.

import Dist
import XCTest

final class BucketLayoutTests: XCTestCase {
    func testBucketsStartAtTheEndWithASmallFirstBucket() {
        XCTAssertEqual(GradientReducer.layout(count: 10, first: 3, size: 4), [7..<10, 3..<7, 0..<3])
        XCTAssertEqual(GradientReducer.layout(count: 2, first: 3, size: 4), [0..<2])
        XCTAssertEqual(GradientReducer.layout(count: 0, first: 3, size: 4), [])
        XCTAssertEqual(GradientReducer.layout(count: 8, first: 4, size: 4), [4..<8, 0..<4])
    }

    func testBucketsTileTheBufferForAllShapes() {
        for count in [0, 1, 2, 7, 64, 1001] {
            for first in [1, 3, 64, 5000] {
                for size in [1, 4, 100] {
                    let buckets = GradientReducer.layout(count: count, first: first, size: size)
                    let name = "count=\(count) first=\(first) size=\(size)"
                    var hi = count
                    for (i, b) in buckets.enumerated() {
                        XCTAssertEqual(b.upperBound, hi, name)
                        XCTAssertFalse(b.isEmpty, name)
                        XCTAssertLessThanOrEqual(b.count, i == 0 ? first : size, name)
                        if b.lowerBound > 0 { XCTAssertEqual(b.count, i == 0 ? first : size, name) }
                        hi = b.lowerBound
                    }
                    XCTAssertEqual(hi, 0, name)
                }
            }
        }
    }
}
