import FaceData
import Foundation
import XCTest

/// Test fixtures (made by scripts/make_data_fixtures.py).
func fixture(_ name: String) throws -> URL {
    guard let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else { throw XCTSkip("fixtures missing") }
    return dir.appendingPathComponent(name)
}

/// A fresh temporary folder, removed by the caller's teardown via `addTeardownBlock`.
func tempDir(_ test: XCTestCase) throws -> String {
    let p = NSTemporaryDirectory() + "kdtrain-facedata-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: p) }
    return p
}

/// The ORL face folder (AT&T Laboratories Cambridge / Olivetti Research Laboratory "ORL Database of
/// Faces"), shared by the project at ../shared/data/orl_faces relative to the repository root.
func orlFolder() throws -> String {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let p = repo.deletingLastPathComponent().appendingPathComponent("shared/data/orl_faces").path
    guard FileManager.default.fileExists(atPath: p) else { throw XCTSkip("ORL faces not present at \(p)") }
    return p
}

func write(_ bytes: [UInt8], _ path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A small synthetic face, deterministic in (key, variation).
func face(_ key: Int, _ v: Int, size: Int = 24) -> FaceImage {
    SyntheticFaces(SyntheticConfig(width: size, height: size)).render(key: UInt64(key), variation: UInt64(v))
}

func assertThrowsDataError<T>(_ kind: DataError.Kind, containing: String, _ body: @autoclosure () throws -> T,
                              file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a DataError(\(kind)) containing '\(containing)'", file: file, line: line)
    } catch let e as DataError {
        XCTAssertEqual(e.kind, kind, "\(e)", file: file, line: line)
        XCTAssertTrue(e.description.contains(containing), "'\(e)' does not contain '\(containing)'", file: file, line: line)
        XCTAssertFalse(e.description.contains("\n"), "error is not one line: \(e)", file: file, line: line)
    } catch {
        XCTFail("unexpected error type: \(error)", file: file, line: line)
    }
}
