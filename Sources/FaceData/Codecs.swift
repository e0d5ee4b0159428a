// Image codecs: JPEG (libjpeg-turbo TurboJPEG API), PNG (libpng simplified API), PGM/PPM (here).
// Formats are recognized by their leading bytes, never by the file extension.
import CImage
import Foundation

/// Encoded image formats kdtrain reads and writes.
public enum ImageFormat: String, Sendable { case jpeg, png, pnm }

public enum ImageCodec {
    /// The format of an encoded image from its first bytes, or nil when it is not an image kdtrain reads.
    public static func sniff(_ b: [UInt8]) -> ImageFormat? {
        if b.count >= 3, b[0] == 0xFF, b[1] == 0xD8, b[2] == 0xFF { return .jpeg }
        if b.count >= 8, b[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if b.count >= 2, b[0] == UInt8(ascii: "P"), (UInt8(ascii: "2")...UInt8(ascii: "6")).contains(b[1]),
           b[1] != UInt8(ascii: "4") { return .pnm }
        return nil
    }

    /// Decodes a JPEG, PNG or PGM/PPM image to 8-bit RGB (grayscale is expanded to three channels).
    /// - Throws: `DataError(.decode, name, ...)` for unknown formats, corrupt or truncated data.
    public static func decode(_ bytes: [UInt8], name: String = "") throws -> FaceImage {
        switch sniff(bytes) {
        case .jpeg: return try decodeJPEG(bytes, name: name)
        case .png: return try decodePNG(bytes, name: name)
        case .pnm: return try decodePNM(bytes, name: name)
        case nil: throw DataError(.decode, name, "not a JPEG, PNG or PGM/PPM image")
        }
    }

    /// Reads and decodes an image file.
    public static func load(_ path: String) throws -> FaceImage { try decode(try readFile(path), name: path) }

    // MARK: JPEG

    public static func decodeJPEG(_ bytes: [UInt8], name: String = "") throws -> FaceImage {
        guard let h = tjInitDecompress() else { throw DataError(.decode, name, "cannot initialize libjpeg-turbo") }
        defer { tjDestroy(h) }
        var w: Int32 = 0, ht: Int32 = 0, sub: Int32 = 0, cs: Int32 = 0
        let ok = bytes.withUnsafeBufferPointer { p in
            tjDecompressHeader3(h, p.baseAddress, UInt(p.count), &w, &ht, &sub, &cs)
        }
        guard ok == 0 else { throw DataError(.decode, name, "JPEG header: \(String(cString: tjGetErrorStr2(h)))") }
        guard w > 0, ht > 0, Int(w) * Int(ht) <= 1 << 28 else { throw DataError(.decode, name, "JPEG size \(w)x\(ht) out of range") }
        var px = [UInt8](repeating: 0, count: Int(w) * Int(ht) * 3)
        let r = bytes.withUnsafeBufferPointer { p in
            px.withUnsafeMutableBufferPointer { o in
                tjDecompress2(h, p.baseAddress, UInt(p.count), o.baseAddress, w, 0, ht,
                              Int32(TJPF_RGB.rawValue), TJFLAG_STOPONWARNING)
            }
        }
        guard r == 0 else { throw DataError(.decode, name, "JPEG data: \(String(cString: tjGetErrorStr2(h)))") }
        return FaceImage(width: Int(w), height: Int(ht), pixels: px)
    }

    /// Encodes to baseline JPEG, 4:2:0 chroma subsampling, at `quality` (1...100).
    public static func encodeJPEG(_ img: FaceImage, quality: Int = 95) throws -> [UInt8] {
        try img.pixels.withUnsafeBufferPointer { p in
            try encodeJPEG(p.baseAddress!, width: img.width, height: img.height, quality: quality)
        }
    }

    static func encodeJPEG(_ src: UnsafePointer<UInt8>, width: Int, height: Int, quality: Int) throws -> [UInt8] {
        guard let h = tjInitCompress() else { throw DataError(.decode, "", "cannot initialize libjpeg-turbo") }
        defer { tjDestroy(h) }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let r = tjCompress2(h, src, Int32(width), 0, Int32(height), Int32(TJPF_RGB.rawValue), &out, &size,
                            Int32(TJSAMP_420.rawValue), Int32(max(1, min(100, quality))), 0)
        defer { if let out { tjFree(out) } }
        guard r == 0, let out else { throw DataError(.decode, "", "JPEG encode: \(String(cString: tjGetErrorStr2(h)))") }
        return [UInt8](UnsafeBufferPointer(start: out, count: Int(size)))
    }

    // MARK: PNG

    public static func decodePNG(_ bytes: [UInt8], name: String = "") throws -> FaceImage {
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        let ok = bytes.withUnsafeBufferPointer { p in png_image_begin_read_from_memory(&img, p.baseAddress, p.count) }
        guard ok != 0 else { throw DataError(.decode, name, "PNG header: \(pngMessage(&img))") }
        guard img.width > 0, img.height > 0, Int(img.width) * Int(img.height) <= 1 << 28 else {
            png_image_free(&img); throw DataError(.decode, name, "PNG size \(img.width)x\(img.height) out of range")
        }
        img.format = UInt32(PNG_FORMAT_RGB)
        let w = Int(img.width), h = Int(img.height)
        var px = [UInt8](repeating: 0, count: w * h * 3)
        let r = px.withUnsafeMutableBufferPointer { o in png_image_finish_read(&img, nil, o.baseAddress, 0, nil) }
        guard r != 0 else { let m = pngMessage(&img); png_image_free(&img); throw DataError(.decode, name, "PNG data: \(m)") }
        return FaceImage(width: w, height: h, pixels: px)
    }

    public static func encodePNG(_ img: FaceImage) throws -> [UInt8] {
        var im = png_image()
        im.version = UInt32(PNG_IMAGE_VERSION)
        im.width = UInt32(img.width); im.height = UInt32(img.height); im.format = UInt32(PNG_FORMAT_RGB)
        var size = 0
        let ok1 = img.pixels.withUnsafeBufferPointer { p in png_image_write_to_memory(&im, nil, &size, 0, p.baseAddress, 0, nil) }
        guard ok1 != 0, size > 0 else { throw DataError(.decode, "", "PNG encode: \(pngMessage(&im))") }
        var out = [UInt8](repeating: 0, count: size)
        let ok2 = img.pixels.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in png_image_write_to_memory(&im, o.baseAddress, &size, 0, p.baseAddress, 0, nil) }
        }
        guard ok2 != 0 else { throw DataError(.decode, "", "PNG encode: \(pngMessage(&im))") }
        return Array(out[0..<size])
    }

    private static func pngMessage(_ img: inout png_image) -> String {
        withUnsafeBytes(of: &img.message) { raw in
            let b = raw.bindMemory(to: UInt8.self)
            let end = b.firstIndex(of: 0) ?? b.count
            return String(decoding: b[0..<end], as: UTF8.self)
        }
    }

    // MARK: PGM / PPM (P2, P3 ASCII; P5, P6 binary; maxval up to 65535)

    public static func decodePNM(_ b: [UInt8], name: String = "") throws -> FaceImage {
        var pos = 2
        func token() throws -> Int {
            while pos < b.count {
                if b[pos] == UInt8(ascii: "#") { while pos < b.count, b[pos] != 10, b[pos] != 13 { pos += 1 } }
                else if b[pos] == 32 || (9...13).contains(b[pos]) { pos += 1 } else { break }
            }
            var v = 0, digits = 0
            while pos < b.count, (48...57).contains(b[pos]) {
                v = v * 10 + Int(b[pos] - 48); digits += 1; pos += 1
                if v > 1 << 20 { throw DataError(.decode, name, "PGM/PPM header number too large") }
            }
            guard digits > 0 else { throw DataError(.decode, name, "PGM/PPM header is truncated or malformed") }
            return v
        }
        guard b.count >= 2 else { throw DataError(.decode, name, "PGM/PPM header is truncated") }
        let kind = b[1]
        let w = try token(), h = try token(), maxv = try token()
        guard w > 0, h > 0, w * h <= 1 << 28 else { throw DataError(.decode, name, "PGM/PPM size \(w)x\(h) out of range") }
        guard maxv > 0, maxv < 65536 else { throw DataError(.decode, name, "PGM/PPM maxval \(maxv) out of range") }
        let color = kind == UInt8(ascii: "3") || kind == UInt8(ascii: "6")
        let ch = color ? 3 : 1, n = w * h * ch
        var vals = [Int](repeating: 0, count: n)
        if kind == UInt8(ascii: "5") || kind == UInt8(ascii: "6") {
            pos += 1 // exactly one whitespace byte after maxval
            let bps = maxv > 255 ? 2 : 1
            guard b.count - pos >= n * bps else {
                throw DataError(.decode, name, "PGM/PPM data truncated: \(b.count - pos) bytes for \(w)x\(h)x\(ch) samples of \(bps) byte(s)")
            }
            for i in 0..<n { vals[i] = bps == 1 ? Int(b[pos + i]) : Int(b[pos + 2 * i]) << 8 | Int(b[pos + 2 * i + 1]) }
        } else {
            for i in 0..<n { vals[i] = try token() }
        }
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for p in 0..<(w * h) {
            for c in 0..<3 {
                let v = vals[p * ch + (color ? c : 0)]
                guard v <= maxv else { throw DataError(.decode, name, "PGM/PPM sample \(v) above maxval \(maxv)") }
                px[3 * p + c] = maxv == 255 ? UInt8(v) : UInt8((v * 255 + maxv / 2) / maxv)
            }
        }
        return FaceImage(width: w, height: h, pixels: px)
    }

    /// Binary PPM (P6), maxval 255.
    public static func encodePPM(_ img: FaceImage) -> [UInt8] {
        Array("P6\n\(img.width) \(img.height)\n255\n".utf8) + img.pixels
    }
}
