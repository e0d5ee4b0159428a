// Image codecs: JPEG (libjpeg-turbo TurboJPEG API), PNG (libpng low-level API, C helper in CImage),
// PGM/PPM (here). Formats are recognized by their leading bytes, never by the file extension.
//
// Pixels are read as stored: no colour management, no gamma correction (a PNG gAMA chunk is ignored),
// 16-bit PNG/PNM samples are reduced to 8 bits (PNG: the high byte; PNM: scaled by maxval), and alpha
// is ignored: a transparent pixel keeps its stored colour (it is not composited onto a background).
// CMYK/YCCK JPEGs are converted to RGB with the naive formula other readers use (Pillow, OpenCV).
// Every decoder checks the declared size against `maxSide` / `maxPixels` (and, for PGM/PPM, against
// the bytes in the file) before allocating anything for the pixels.
import CImage
import Foundation

/// Encoded image formats kdtrain reads and writes.
public enum ImageFormat: String, Sendable { case jpeg, png, pnm }

public enum ImageCodec {
    /// Largest width or height kdtrain decodes (face crops are 112-250 pixels; 8192 leaves room for
    /// uncropped photos while bounding what a tiny corrupt file can make us allocate).
    public static let maxSide = 8192
    /// Largest width x height kdtrain decodes: 64 Mpixel (192 MiB as 8-bit RGB).
    public static let maxPixels = 64 << 20

    /// The format of an encoded image from its first bytes, or nil when it is not an image kdtrain reads.
    public static func sniff(_ b: [UInt8]) -> ImageFormat? { sniff(b[...]) }

    static func sniff(_ b: ArraySlice<UInt8>) -> ImageFormat? {
        let s = b.startIndex
        if b.count >= 3, b[s] == 0xFF, b[s + 1] == 0xD8, b[s + 2] == 0xFF { return .jpeg }
        if b.count >= 8, b.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if b.count >= 2, b[s] == UInt8(ascii: "P"), [UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "5"), UInt8(ascii: "6")].contains(b[s + 1]) { return .pnm }
        return nil
    }

    /// The name of an image format kdtrain recognizes but does not read (GIF, BMP, WebP, TIFF, ...),
    /// from the file's first bytes; nil for the formats it reads and for data that is not a known image.
    public static func unsupportedFormat(_ b: [UInt8]) -> String? {
        func at(_ o: Int, _ s: String) -> Bool { let u = Array(s.utf8); return b.count >= o + u.count && Array(b[o..<(o + u.count)]) == u }
        if at(0, "GIF87a") || at(0, "GIF89a") { return "GIF" }
        if at(0, "BM"), b.count >= 18, [12, 40, 52, 56, 64, 108, 124].contains(Int(b[14]) | Int(b[15]) << 8 | Int(b[16]) << 16 | Int(b[17]) << 24) { return "BMP" }
        if at(0, "RIFF"), at(8, "WEBP") { return "WebP" }
        if b.count >= 4, b[0..<4].elementsEqual([0x49, 0x49, 0x2A, 0x00]) || b[0..<4].elementsEqual([0x4D, 0x4D, 0x00, 0x2A]) { return "TIFF" }
        if at(0, "P1") || at(0, "P4") { return "PBM (1-bit bitmap)" }
        if at(0, "P7") { return "PAM" }
        if b.count >= 12, b[0..<12].elementsEqual([0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A]) { return "JPEG 2000" }
        if at(4, "ftyp"), b.count >= 12 {
            let brand = String(decoding: b[8..<12], as: UTF8.self)
            if brand.hasPrefix("avi") { return "AVIF" }
            if ["heic", "heix", "hevc", "heim", "heis", "mif1", "msf1"].contains(brand) { return "HEIF/HEIC" }
        }
        if b.count >= 2, b[0] == 0xFF, b[1] == 0x0A { return "JPEG XL" }
        return nil
    }

    /// The one-line reason for bytes that are not a readable image ("GIF is not supported; ...").
    static func notReadable(_ b: [UInt8], name: String) -> DataError {
        if let f = unsupportedFormat(b) { return DataError(.unsupported, name, "\(f) is not supported; convert to PNG or JPEG") }
        return DataError(.decode, name, b.isEmpty ? "empty file, not an image" : "not a JPEG, PNG or PGM/PPM image")
    }

    /// Checks a declared image size against `maxSide` and `maxPixels`. - Throws: `DataError(.decode, name, ...)`.
    static func checkSize(_ w: Int, _ h: Int, _ format: String, _ name: String) throws {
        guard w > 0, h > 0 else { throw DataError(.decode, name, "\(format) size \(w)x\(h) out of range") }
        guard w <= maxSide, h <= maxSide, w * h <= maxPixels else {
            throw DataError(.decode, name, "\(format) declares \(w)x\(h) pixels, over kdtrain's limit of \(maxSide) pixels per side and \(maxPixels >> 20) Mpixel (corrupt file, or resize it first)")
        }
    }

    /// Decodes a JPEG, PNG or PGM/PPM image to 8-bit RGB (grayscale is expanded to three channels).
    /// - Throws: `DataError(.unsupported, name, ...)` for recognized formats kdtrain does not read (GIF, BMP,
    ///   WebP, TIFF, ...), `DataError(.decode, name, ...)` for unknown, corrupt, truncated or oversized data.
    public static func decode(_ bytes: [UInt8], name: String = "") throws -> FaceImage {
        switch sniff(bytes) {
        case .jpeg: return try decodeJPEG(bytes, name: name)
        case .png: return try decodePNG(bytes, name: name)
        case .pnm: return try decodePNM(bytes, name: name)
        case nil: throw notReadable(bytes, name: name)
        }
    }

    /// Largest encoded image file kdtrain reads (a 64 Mpixel 16-bit PPM is 384 MiB).
    public static let maxFileBytes = 512 << 20

    /// Reads and decodes an image file (at most `maxFileBytes`).
    public static func load(_ path: String) throws -> FaceImage { try decode(try readFile(path, maxBytes: maxFileBytes), name: path) }

    // MARK: JPEG

    public static func decodeJPEG(_ bytes: [UInt8], name: String = "") throws -> FaceImage {
        guard let h = tjInitDecompress() else { throw DataError(.decode, name, "cannot initialize libjpeg-turbo") }
        defer { tjDestroy(h) }
        var w: Int32 = 0, ht: Int32 = 0, sub: Int32 = 0, cs: Int32 = 0
        let ok = bytes.withUnsafeBufferPointer { p in
            tjDecompressHeader3(h, p.baseAddress, UInt(p.count), &w, &ht, &sub, &cs)
        }
        guard ok == 0 else { throw DataError(.decode, name, "JPEG header: \(String(cString: tjGetErrorStr2(h)))") }
        try checkSize(Int(w), Int(ht), "JPEG", name)
        let cmyk = cs == Int32(TJCS_CMYK.rawValue) || cs == Int32(TJCS_YCCK.rawValue)
        let n = Int(w) * Int(ht), flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS
        var px = [UInt8](repeating: 0, count: n * (cmyk ? 4 : 3))
        let r = bytes.withUnsafeBufferPointer { p in
            px.withUnsafeMutableBufferPointer { o in
                tjDecompress2(h, p.baseAddress, UInt(p.count), o.baseAddress, w, 0, ht,
                              Int32(cmyk ? TJPF_CMYK.rawValue : TJPF_RGB.rawValue), flags)
            }
        }
        guard r == 0 else { throw DataError(.decode, name, "JPEG data: \(String(cString: tjGetErrorStr2(h)))") }
        if cmyk { px = cmykToRGB(px, inverted: hasAdobeMarker(bytes)) }
        return FaceImage(width: Int(w), height: Int(ht), pixels: px)
    }

    /// Whether a JPEG carries an Adobe APP14 segment before its first scan. Adobe applications (the source
    /// of nearly all CMYK JPEGs) store CMYK inverted (255 = no ink); Pillow decides the same way.
    static func hasAdobeMarker(_ b: [UInt8]) -> Bool {
        var p = 2
        while p + 4 <= b.count, b[p] == 0xFF {
            let m = b[p + 1]
            if m == 0xFF { p += 1; continue }                       // fill byte
            if m == 0xDA || m == 0xD9 { return false }              // start of scan / end of image
            if m == 0x01 || (0xD0...0xD7).contains(m) { p += 2; continue }
            let len = Int(b[p + 2]) << 8 | Int(b[p + 3])
            guard len >= 2 else { return false }
            if m == 0xEE, len >= 7, p + 9 <= b.count, Array(b[(p + 4)..<(p + 9)]) == Array("Adobe".utf8) { return true }
            p += 2 + len
        }
        return false
    }

    /// Naive CMYK -> RGB (no colour profile), as Pillow and OpenCV do: R = (255 - C)(255 - K)/255 for
    /// plain CMYK, R = C*K/255 for Adobe's inverted CMYK (likewise G from M, B from Y).
    static func cmykToRGB(_ cmyk: [UInt8], inverted: Bool) -> [UInt8] {
        let n = cmyk.count / 4
        var out = [UInt8](repeating: 0, count: 3 * n)
        for i in 0..<n {
            let k = Int(inverted ? cmyk[4 * i + 3] : 255 - cmyk[4 * i + 3])
            for c in 0..<3 {
                let v = Int(inverted ? cmyk[4 * i + c] : 255 - cmyk[4 * i + c])
                out[3 * i + c] = UInt8((v * k + 127) / 255)
            }
        }
        return out
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

    /// Decodes a PNG as stored (see the file comment): no gamma correction, 16-bit samples keep their high
    /// byte, alpha ignored, palette and gray expanded to RGB.
    public static func decodePNG(_ bytes: [UInt8], name: String = "") throws -> FaceImage {
        var w: UInt32 = 0, h: UInt32 = 0
        var msg = [CChar](repeating: 0, count: 256)
        func fail(_ what: String) -> DataError {
            let m = msg.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            return DataError(.decode, name, "PNG \(what): \(m)")
        }
        let ok = bytes.withUnsafeBufferPointer { p in
            kd_png_decode(p.baseAddress, p.count, nil, 0, &w, &h, &msg, msg.count)
        }
        guard ok == 0 else { throw fail("header") }
        try checkSize(Int(w), Int(h), "PNG", name)
        var px = [UInt8](repeating: 0, count: Int(w) * Int(h) * 3)
        let r = bytes.withUnsafeBufferPointer { p in
            px.withUnsafeMutableBufferPointer { o in kd_png_decode(p.baseAddress, p.count, o.baseAddress, o.count, &w, &h, &msg, msg.count) }
        }
        guard r == 0 else { throw fail("data") }
        return FaceImage(width: Int(w), height: Int(h), pixels: px)
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
        func skipSpace() {
            while pos < b.count {
                if b[pos] == UInt8(ascii: "#") { while pos < b.count, b[pos] != 10, b[pos] != 13 { pos += 1 } }
                else if b[pos] == 32 || (9...13).contains(b[pos]) { pos += 1 } else { break }
            }
        }
        func token() throws -> Int {
            skipSpace()
            var v = 0, digits = 0
            while pos < b.count, (48...57).contains(b[pos]) {
                v = v * 10 + Int(b[pos] - 48); digits += 1; pos += 1
                if v > 1 << 20 { throw DataError(.decode, name, "PGM/PPM header number too large") }
            }
            guard digits > 0 else { throw DataError(.decode, name, "PGM/PPM header is truncated or malformed") }
            return v
        }
        guard sniff(b) == .pnm else { throw notReadable(b, name: name) }
        let kind = b[1]
        let w = try token(), h = try token(), maxv = try token()
        try checkSize(w, h, "PGM/PPM", name)
        guard maxv > 0, maxv < 65536 else { throw DataError(.decode, name, "PGM/PPM maxval \(maxv) out of range") }
        let color = kind == UInt8(ascii: "3") || kind == UInt8(ascii: "6")
        let ch = color ? 3 : 1, n = w * h * ch
        let binary = kind == UInt8(ascii: "5") || kind == UInt8(ascii: "6")
        let bps = maxv > 255 ? 2 : 1
        if binary { pos += 1 }   // exactly one whitespace byte after maxval
        // The samples must fit in the file before anything is allocated for them: raw samples take
        // exactly bps bytes each, ASCII samples at least one digit and one separator each.
        let have = max(0, b.count - pos), need = binary ? n * bps : 2 * n - 1
        guard have >= need else {
            throw DataError(.decode, name, "PGM/PPM data truncated: the header declares \(w)x\(h)x\(ch) samples (\(binary ? "\(need) bytes" : "at least \(need) bytes as text")) but \(have) bytes follow it")
        }
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<n {
            let v: Int
            if binary { v = bps == 1 ? Int(b[pos + i]) : Int(b[pos + 2 * i]) << 8 | Int(b[pos + 2 * i + 1]) } else { v = try token() }
            guard v <= maxv else { throw DataError(.decode, name, "PGM/PPM sample \(v) above maxval \(maxv)") }
            let u = maxv == 255 ? UInt8(v) : UInt8((v * 255 + maxv / 2) / maxv)
            if color { px[i] = u } else { px[3 * i] = u; px[3 * i + 1] = u; px[3 * i + 2] = u }
        }
        return FaceImage(width: w, height: h, pixels: px)
    }

    /// Binary PPM (P6), maxval 255.
    public static func encodePPM(_ img: FaceImage) -> [UInt8] {
        Array("P6\n\(img.width) \(img.height)\n255\n".utf8) + img.pixels
    }
}
