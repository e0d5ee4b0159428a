// Shared helpers of the FaceData tests: fixtures, temporary folders, synthetic faces, the ORL path.
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

// MARK: hand-built PNG files (independent of libpng's writer)

func crc32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return ~c
}

func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let td = Array(type.utf8) + data
    return be32(UInt32(data.count)) + td + be32(crc32(td))
}

/// A zlib stream of stored (uncompressed) deflate blocks.
func zlibStored(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]
    var i = 0
    repeat {
        let n = min(65535, data.count - i), last: UInt8 = i + n == data.count ? 1 : 0
        out += [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)] + data[i..<(i + n)]
        i += n
    } while i < data.count
    var a: UInt32 = 1, b: UInt32 = 0
    for x in data { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
    return out + be32(b << 16 | a)
}

/// A non-interlaced PNG: `rows` are the raw scanlines (without the filter byte), `chunks` go between
/// IHDR and IDAT (e.g. gAMA, PLTE, tRNS).
func makePNG(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]],
             chunks: [(String, [UInt8])] = [], interlaced: Bool = false) -> [UInt8] {
    var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    png += pngChunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [bitDepth, colorType, 0, 0, interlaced ? 1 : 0])
    for (t, d) in chunks { png += pngChunk(t, d) }
    var raw = [UInt8]()
    if interlaced {
        // Adam7, for 8-bit samples: rows[y] holds width * bpp bytes
        let bpp = rows[0].count / width
        for (x0, y0, dx, dy) in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)] {
            let xs = Array(stride(from: x0, to: width, by: dx)), ys = Array(stride(from: y0, to: height, by: dy))
            guard !xs.isEmpty, !ys.isEmpty else { continue }
            for y in ys { raw.append(0); for x in xs { raw += rows[y][(x * bpp)..<(x * bpp + bpp)] } }
        }
    } else {
        raw = rows.flatMap { [0] + $0 }
    }
    png += pngChunk("IDAT", zlibStored(raw))
    return png + pngChunk("IEND", [])
}
