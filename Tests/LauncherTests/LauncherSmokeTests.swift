import XCTest
final class LauncherSmokeTests: XCTestCase {
    func testPlaceholderRemovedByOwningIssue() throws { throw XCTSkip("no tests yet for Launcher") }
}
