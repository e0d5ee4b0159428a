import FaceData
import Foundation
import XCTest

final class CodecTests: XCTestCase {
    func testPNGAndPPMRoundTripExactly() throws {
        let img = face(3, 1, size: 40)
        XCTAssertEqual(try ImageCodec.decode(try ImageCodec.encodePNG(img)), img)
        XCTAssertEqual(try ImageCodec.decode(ImageCodec.encodePPM(img)), img)
    }

    func testJPEGRoundTripIsClose() throws {
        let img = face(4, 2, size: 48)
        let back = try ImageCodec.decode(try ImageCodec.encodeJPEG(img, quality: 95))
        XCTAssertEqual(back.width, 48); XCTAssertEqual(back.height, 48)
        let mad = zip(img.pixels, back.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +) / img.pixels.count
        XCTAssertLessThan(mad, 6)
        let low = try ImageCodec.decode(try ImageCodec.encodeJPEG(img, quality: 10))
        XCTAssertNotEqual(low, back)
    }

    func testGrayscalePGMExpandsToThreeChannels() throws {
        let pgm = Array("P5\n# comment\n3 2\n255\n".utf8) + [0, 100, 255, 7, 8, 9]
        let img = try ImageCodec.decode(pgm)
        XCTAssertEqual(img.width, 3); XCTAssertEqual(img.height, 2)
        XCTAssertEqual(Array(img.pixels[3..<6]), [100, 100, 100])
        let ascii = try ImageCodec.decode(Array("P2 2 1 15 0 15".utf8))
        XCTAssertEqual(ascii.pixels, [0, 0, 0, 255, 255, 255])
    }

    func testMalformedImagesGiveNamedErrors() throws {
        let jpg = try ImageCodec.encodeJPEG(face(1, 1), quality: 90)
        assertThrowsDataError(.decode, containing: "x.jpg", try ImageCodec.decode(Array(jpg.prefix(jpg.count / 2)), name: "x.jpg"))
        let png = try ImageCodec.encodePNG(face(1, 1))
        assertThrowsDataError(.decode, containing: "PNG", try ImageCodec.decode(Array(png.prefix(60)), name: "y.png"))
        assertThrowsDataError(.decode, containing: "truncated", try ImageCodec.decode(Array("P5 4 4 255 ".utf8) + [1, 2, 3], name: "z.pgm"))
        assertThrowsDataError(.decode, containing: "not a JPEG", try ImageCodec.decode(Array("hello".utf8), name: "t.txt"))
        assertThrowsDataError(.decode, containing: "out of range", try ImageCodec.decode(Array("P6 0 4 255 ".utf8), name: "e.ppm"))
    }
}
