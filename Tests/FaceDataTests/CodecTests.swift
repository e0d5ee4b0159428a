// Image codecs: PNG/PPM round trips, JPEG closeness, PGM to RGB, PNG read as stored (16 bits, gAMA,
// alpha), malformed files and huge declared sizes refused with named errors before allocating.
import CImage
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

    /// PNGs are read as stored: 16-bit samples keep their high byte, a gAMA chunk changes nothing,
    /// transparent pixels keep their colour; palette, tRNS and low bit depths expand to the stored values.
    func testPNGReadAsStored() throws {
        // 16-bit gray, 2x1: 0x3012 and 0xFF01 -> 0x30 and 0xFF
        let g16 = makePNG(width: 2, height: 1, bitDepth: 16, colorType: 0, rows: [[0x30, 0x12, 0xFF, 0x01]])
        XCTAssertEqual(try ImageCodec.decode(g16, name: "g16.png").pixels, [48, 48, 48, 255, 255, 255])
        // 16-bit RGB
        let rgb16 = makePNG(width: 1, height: 1, bitDepth: 16, colorType: 2, rows: [[0x10, 0xFF, 0x80, 0x00, 0x07, 0x07]])
        XCTAssertEqual(try ImageCodec.decode(rgb16).pixels, [0x10, 0x80, 0x07])
        // 8-bit gray with gAMA 1.0 (linear): stored 48 must read 48 (a gamma-correcting reader gives ~119)
        let gama = makePNG(width: 2, height: 1, bitDepth: 8, colorType: 0, rows: [[48, 200]], chunks: [("gAMA", be32(100000))])
        XCTAssertEqual(try ImageCodec.decode(gama).pixels, [48, 48, 48, 200, 200, 200])
        // and with an RGB gAMA 1/2.2 plus an sRGB-unrelated cHRM-less file: still as stored
        let gama2 = makePNG(width: 1, height: 1, bitDepth: 8, colorType: 2, rows: [[48, 100, 150]], chunks: [("gAMA", be32(70000))])
        XCTAssertEqual(try ImageCodec.decode(gama2).pixels, [48, 100, 150])
        // RGBA with alpha 0 and alpha 128: colour channels as stored, not darkened
        let rgba = makePNG(width: 2, height: 1, bitDepth: 8, colorType: 6, rows: [[200, 100, 50, 0, 10, 20, 30, 128]])
        XCTAssertEqual(try ImageCodec.decode(rgba).pixels, [200, 100, 50, 10, 20, 30])
        // 16-bit RGBA, alpha 0
        let rgba16 = makePNG(width: 1, height: 1, bitDepth: 16, colorType: 6, rows: [[0xC8, 1, 0x64, 2, 0x32, 3, 0, 0]])
        XCTAssertEqual(try ImageCodec.decode(rgba16).pixels, [200, 100, 50])
        // gray + alpha
        let ga = makePNG(width: 1, height: 1, bitDepth: 8, colorType: 4, rows: [[77, 0]])
        XCTAssertEqual(try ImageCodec.decode(ga).pixels, [77, 77, 77])
        // palette with a tRNS entry making index 1 fully transparent
        let pal = makePNG(width: 2, height: 1, bitDepth: 8, colorType: 3, rows: [[0, 1]],
                          chunks: [("PLTE", [9, 8, 7, 250, 150, 50]), ("tRNS", [255, 0])])
        XCTAssertEqual(try ImageCodec.decode(pal).pixels, [9, 8, 7, 250, 150, 50])
        // 2-bit gray: 0, 1, 2, 3 -> 0, 85, 170, 255
        let g2 = makePNG(width: 4, height: 1, bitDepth: 2, colorType: 0, rows: [[0b00_01_10_11]])
        XCTAssertEqual(try ImageCodec.decode(g2).pixels, [0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255])
        // Adam7-interlaced RGB, 5x5: every pixel where it belongs
        var rows5 = [[UInt8]]()
        for y in 0..<5 {
            var row = [UInt8]()
            for x in 0..<5 { row += [UInt8(10 * y + x), UInt8(100 + x), UInt8(200 + y)] }
            rows5.append(row)
        }
        let il = makePNG(width: 5, height: 5, bitDepth: 8, colorType: 2, rows: rows5, interlaced: true)
        XCTAssertEqual(try ImageCodec.decode(il, name: "il.png").pixels, rows5.flatMap { $0 })
        // a bad CRC and a cut file are one-line errors naming the file
        var crc = gama; crc[crc.count - 20] ^= 0x55
        assertThrowsDataError(.decode, containing: "crc.png: PNG", try ImageCodec.decode(crc, name: "crc.png"))
        assertThrowsDataError(.decode, containing: "cut.png: PNG", try ImageCodec.decode(Array(gama.prefix(gama.count - 16)), name: "cut.png"))
    }

    /// Tiny files declaring huge images are refused from the header, before the pixels are allocated.
    func testHugeDeclaredSizesAreRefusedBeforeAllocating() throws {
        let pgm = Array("P5 100000 100000 255 ".utf8)
        XCTAssertLessThan(pgm.count, 24)
        assertThrowsDataError(.decode, containing: "big.pgm: PGM/PPM declares 100000x100000 pixels, over kdtrain's limit of 8192", try ImageCodec.decode(pgm, name: "big.pgm"))
        // within the limits but longer than the file: the file length decides, before allocating
        assertThrowsDataError(.decode, containing: "declares 8000x8000x3 samples (192000000 bytes) but 4 bytes follow",
                              try ImageCodec.decode(Array("P6 8000 8000 255\n".utf8) + [1, 2, 3, 4], name: "short.ppm"))
        assertThrowsDataError(.decode, containing: "at least 9999 bytes as text",
                              try ImageCodec.decode(Array("P2 5000 1 255\n1 2 3".utf8), name: "short.pgm"))
        // a real JPEG whose frame header is patched to 16384x16384
        var jpg = try ImageCodec.encodeJPEG(face(1, 1, size: 16))
        guard let sof = (0..<(jpg.count - 1)).first(where: { jpg[$0] == 0xFF && jpg[$0 + 1] == 0xC0 }) else { return XCTFail("no SOF0") }
        jpg[sof + 5] = 0x40; jpg[sof + 6] = 0x00; jpg[sof + 7] = 0x40; jpg[sof + 8] = 0x00
        assertThrowsDataError(.decode, containing: "huge.jpg: JPEG declares 16384x16384 pixels", try ImageCodec.decode(jpg, name: "huge.jpg"))
        // 8192 x 8193: over the per-side limit
        jpg[sof + 5] = 0x20; jpg[sof + 6] = 0x01; jpg[sof + 7] = 0x20; jpg[sof + 8] = 0x00
        assertThrowsDataError(.decode, containing: "declares 8192x8193", try ImageCodec.decode(jpg, name: "huge.jpg"))
        // a PNG whose IHDR declares 100000 x 100000
        let png = makePNG(width: 100000, height: 100000, bitDepth: 8, colorType: 0, rows: [[0]])
        assertThrowsDataError(.decode, containing: "huge.png: PNG declares 100000x100000", try ImageCodec.decode(png, name: "huge.png"))
        XCTAssertEqual(ImageCodec.maxSide, 8192); XCTAssertEqual(ImageCodec.maxPixels, 8192 * 8192)
    }

    /// CMYK JPEGs (YCCK with an Adobe marker, as libjpeg writes them) decode to RGB with the naive
    /// inverted-CMYK formula Pillow and OpenCV use: R = C*K/255.
    func testCMYKJPEGDecodesToRGB() throws {
        let quads: [[UInt8]] = [[255, 128, 0, 255], [255, 255, 255, 128], [200, 100, 50, 255], [0, 0, 0, 255]]
        let want: [[UInt8]] = [[255, 128, 0], [128, 128, 128], [200, 100, 50], [0, 0, 0]]
        var src = [UInt8](repeating: 0, count: 16 * 16 * 4)
        for y in 0..<16 { for x in 0..<16 { let q = (y / 8) * 2 + x / 8; for c in 0..<4 { src[(y * 16 + x) * 4 + c] = quads[q][c] } } }
        guard let h = tjInitCompress() else { return XCTFail("tjInitCompress") }
        defer { tjDestroy(h) }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let r = tjCompress2(h, src, 16, 0, 16, Int32(TJPF_CMYK.rawValue), &out, &size, Int32(TJSAMP_444.rawValue), 100, 0)
        XCTAssertEqual(r, 0, String(cString: tjGetErrorStr2(h)))
        guard let out else { return XCTFail("no JPEG") }
        let jpg = [UInt8](UnsafeBufferPointer(start: out, count: Int(size)))
        tjFree(out)
        let img = try ImageCodec.decode(jpg, name: "cmyk.jpg")
        XCTAssertEqual(img.width, 16); XCTAssertEqual(img.height, 16)
        for (q, (cx, cy)) in [(4, 4), (12, 4), (4, 12), (12, 12)].enumerated() {
            let p = Array(img.pixels[((cy * 16 + cx) * 3)..<((cy * 16 + cx) * 3 + 3)])
            for c in 0..<3 { XCTAssertLessThanOrEqual(abs(Int(p[c]) - Int(want[q][c])), 4, "quadrant \(q): \(p) vs \(want[q])") }
        }
    }

    /// GIF, BMP, WebP and TIFF are named as unsupported formats, not 'not an image'.
    func testUnsupportedFormatsAreNamed() throws {
        let cases: [(String, [UInt8])] = [
            ("GIF", Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0, 0x3B]),
            ("BMP", Array("BM".utf8) + [UInt8](repeating: 0, count: 12) + [40, 0, 0, 0] + [UInt8](repeating: 0, count: 36)),
            ("WebP", Array("RIFF".utf8) + [26, 0, 0, 0] + Array("WEBPVP8 ".utf8) + [UInt8](repeating: 0, count: 14)),
            ("TIFF", [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0]),
            ("TIFF", [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8]),
        ]
        for (fmt, bytes) in cases {
            assertThrowsDataError(.unsupported, containing: "a.img: \(fmt) is not supported; convert to PNG or JPEG", try ImageCodec.decode(bytes, name: "a.img"))
        }
        assertThrowsDataError(.decode, containing: "not a JPEG, PNG or PGM/PPM image", try ImageCodec.decode(Array("BMW owners manual".utf8), name: "t.txt"))
        assertThrowsDataError(.decode, containing: "empty file", try ImageCodec.decode([], name: "e.jpg"))
    }
}
