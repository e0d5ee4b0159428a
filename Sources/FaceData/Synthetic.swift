// Procedural faces: the default data set, generated on the fly, no download.
//
// An identity is a deterministic function of (seed, identity key). Identity lives at two scales:
//  - coarse: head and face shape, skin/hair colour, hairline, eye placement/size/spacing, iris colour,
//    brow shape, nose length/width, mouth position/width/lip thickness, ears;
//  - fine: skin texture (oriented high-frequency gratings, periods of 2.5-5 pixels at 56x56), small marks
//    (moles, about 1-2 pixels), high-order wiggles of the face contour, eyelash/brow hair texture.
// Down-sampling by 4 or 8 erases the fine scale and blurs the coarse one, so identity information
// disappears progressively, as on real faces.
// Each image of an identity varies by pose (shift, rotation, scale), illumination (gain, directional
// gradient, colour cast), expression (smile, mouth opening, eye opening, brow raise, gaze), occlusion
// (sunglasses band, mask, random patch) and sensor noise; the background is random per image.
// Training identities use keys 0..<identities; verification identities use keys from 2^40 upwards,
// so the two sets are disjoint by construction.
import Foundation

/// Configuration of the procedural face generator.
public struct SyntheticConfig: Sendable, Equatable {
    public var seed: UInt64
    /// Number of training identities (classes) and images per identity.
    public var identities: Int
    public var imagesPerIdentity: Int
    /// Output size (the network input size): 56x56 for the small preset, 112x112 for the paper preset.
    public var width: Int, height: Int
    /// Verification: number of pairs (balanced, 10 folds) and size of the verification identity pool.
    public var pairs: Int
    public var verificationIdentities: Int
    public init(seed: UInt64 = 1, identities: Int = 1000, imagesPerIdentity: Int = 50, width: Int = 56, height: Int = 56,
                pairs: Int = 3000, verificationIdentities: Int = 1000) {
        self.seed = seed; self.identities = identities; self.imagesPerIdentity = imagesPerIdentity
        self.width = width; self.height = height; self.pairs = pairs; self.verificationIdentities = verificationIdentities
    }
    public func validate() throws {
        guard identities >= 2, identities <= 1 << 24 else { throw DataError(.spec, "synthetic.identities", "need 2...16777216, got \(identities)") }
        guard imagesPerIdentity >= 1, imagesPerIdentity <= 1 << 16 else { throw DataError(.spec, "synthetic.images", "need 1...65536, got \(imagesPerIdentity)") }
        guard (8...1024).contains(width), (8...1024).contains(height) else { throw DataError(.spec, "synthetic.size", "\(width)x\(height) must be within 8...1024") }
        guard pairs >= 20, pairs % 20 == 0, pairs <= 1 << 24 else { throw DataError(.spec, "synthetic.pairs", "must be a positive multiple of 20 (10 balanced folds), got \(pairs)") }
        guard verificationIdentities >= 20, verificationIdentities <= 1 << 24 else { throw DataError(.spec, "synthetic.verify-ids", "need at least 20 (2 per fold), got \(verificationIdentities)") }
    }
}

/// Parameters of one identity (face coordinates: x right, y down, the image spans -1...1 before pose).
struct SyntheticIdentity {
    typealias C3 = SIMD3<Float>
    var faceA: Float, faceB: Float, faceCY: Float, faceP: Float
    var skin: C3, hair: C3, iris: C3, lip: C3
    var hairline: Float, hairVolume: Float, bangs: Float, bangsPhase: Float
    var eyeY: Float, eyeDX: Float, eyeRX: Float, eyeRY: Float, irisR: Float
    var browGap: Float, browLen: Float, browThick: Float, browTilt: Float, browArch: Float
    var noseY: Float, noseW: Float, noseLen: Float
    var mouthY: Float, mouthW: Float, lipT: Float
    var earY: Float, earR: Float
    // fine
    var gratings: [(kx: Float, ky: Float, phase: Float, amp: Float)]
    var marks: [(x: Float, y: Float, r: Float, dark: Float)]
    var wiggle: [(k: Float, phase: Float, amp: Float)]
    var hairFreq: Float

    init(seed: UInt64, key: UInt64) {
        var r = Rng(seed: seed, 0x1D, key)
        func u(_ a: Float, _ b: Float) -> Float { r.uniform(a, b) }
        faceA = u(0.46, 0.62); faceB = u(0.62, 0.80); faceCY = u(0.02, 0.12); faceP = u(1.7, 2.8)
        let tone = u(0.25, 1)
        skin = C3(u(150, 175) + 70 * tone, u(105, 125) + 60 * tone, u(80, 100) + 50 * tone) * u(0.75, 1.0)
        let hk = r.int(4)
        hair = [C3(30, 25, 20), C3(90, 60, 35), C3(170, 130, 70), C3(120, 120, 120)][hk] * u(0.7, 1.3)
        iris = [C3(60, 40, 25), C3(70, 110, 160), C3(80, 120, 70), C3(40, 30, 30)][r.int(4)] * u(0.8, 1.2)
        lip = C3(u(140, 200), u(60, 100), u(60, 100))
        hairline = u(-0.75, -0.35); hairVolume = u(1.02, 1.2); bangs = u(0, 0.18); bangsPhase = u(0, 6.28)
        eyeY = u(-0.28, -0.08); eyeDX = u(0.17, 0.30); eyeRX = u(0.075, 0.12); eyeRY = u(0.035, 0.065)
        irisR = eyeRY * u(0.8, 1.1)
        browGap = u(0.07, 0.16); browLen = u(0.08, 0.15); browThick = u(0.018, 0.045); browTilt = u(-0.35, 0.35); browArch = u(0, 0.05)
        noseY = u(0.10, 0.26); noseW = u(0.05, 0.11); noseLen = u(0.12, 0.28)
        mouthY = u(0.33, 0.50); mouthW = u(0.13, 0.26); lipT = u(0.015, 0.045)
        earY = u(-0.15, 0.1); earR = u(0.07, 0.14)
        gratings = (0..<3).map { _ in
            let ang = r.uniform(0, .pi), f = r.uniform(40, 75)
            return (f * cosf(ang), f * sinf(ang), r.uniform(0, 6.28), r.uniform(0.05, 0.11))
        }
        marks = (0..<(4 + r.int(5))).map { _ in
            (r.uniform(-0.42, 0.42), r.uniform(-0.35, 0.55), r.uniform(0.018, 0.04), r.uniform(0.35, 0.7))
        }
        wiggle = (0..<3).map { _ in (Float(8 + r.int(10)), r.uniform(0, 6.28), r.uniform(0.008, 0.022)) }
        hairFreq = r.uniform(35, 70)
    }
}

/// Per-image variation of an identity.
struct SyntheticVariation {
    var tx: Float, ty: Float, cosR: Float, sinR: Float, scale: Float
    var gain: Float, gx: Float, gy: Float, cast: SIMD3<Float>
    var smile: Float, open: Float, eyeOpen: Float, browRaise: Float, gaze: Float
    var occlusion: Int, occY: Float, occH: Float, occX: Float, occW: Float, occColor: SIMD3<Float>
    var bg0: SIMD3<Float>, bg1: SIMD3<Float>, bgAngle: Float
    var noise: Float

    init(_ r: inout Rng) {
        tx = r.uniform(-0.08, 0.08); ty = r.uniform(-0.08, 0.08)
        let a = r.uniform(-0.2, 0.2); cosR = cosf(a); sinR = sinf(a); scale = r.uniform(1.15, 1.4)
        gain = r.uniform(0.7, 1.25); gx = r.uniform(-0.3, 0.3); gy = r.uniform(-0.2, 0.2)
        cast = SIMD3(r.uniform(0.9, 1.1), r.uniform(0.92, 1.08), r.uniform(0.9, 1.1))
        smile = r.uniform(-0.03, 0.07); open = r.bernoulli(0.3) ? r.uniform(0.01, 0.06) : 0
        eyeOpen = r.uniform(0.55, 1.1); browRaise = r.uniform(-0.02, 0.04); gaze = r.uniform(-0.3, 0.3)
        let o = r.uniform()
        occlusion = o < 0.08 ? 1 : o < 0.14 ? 2 : o < 0.22 ? 3 : 0
        occY = r.uniform(-0.3, 0.5); occH = r.uniform(0.1, 0.3); occX = r.uniform(-0.5, 0.5); occW = r.uniform(0.15, 0.4)
        occColor = SIMD3(r.uniform(0, 255), r.uniform(0, 255), r.uniform(0, 255))
        bg0 = SIMD3(r.uniform(0, 255), r.uniform(0, 255), r.uniform(0, 255))
        bg1 = SIMD3(r.uniform(0, 255), r.uniform(0, 255), r.uniform(0, 255))
        bgAngle = r.uniform(0, 6.28)
        noise = r.uniform(0, 5)
    }
}

/// The procedural face generator. Thread-safe (immutable); identities are cached per call site by the
/// data sets below, rendering is pure.
public struct SyntheticFaces: Sendable {
    public let config: SyntheticConfig
    public init(_ config: SyntheticConfig) { self.config = config }

    /// Key of verification identity `i` (disjoint from every training key).
    public static func verificationKey(_ i: Int) -> UInt64 { (1 << 40) + UInt64(i) }

    /// Renders image `variation` of the identity with key `key` (training identity i has key i).
    public func render(key: UInt64, variation: UInt64) -> FaceImage {
        let id = SyntheticIdentity(seed: config.seed, key: key)
        var r = Rng(seed: config.seed, 0x7A, key, variation)
        let v = SyntheticVariation(&r)
        return SyntheticFaces.draw(id, v, width: config.width, height: config.height, rng: &r)
    }

    /// Sine to about 1e-3 (parabolic approximation with one refinement): textures only.
    @inline(__always) static func fastSin(_ x0: Float) -> Float {
        let x = x0 - 6.2831853 * (x0 * 0.15915494).rounded()     // -pi...pi
        let y = 1.2732395 * x - 0.40528473 * x * abs(x)
        return 0.225 * (y * abs(y) - y) + y
    }

    @inline(__always) static func smooth(_ d: Float, _ e: Float) -> Float {
        // 1 inside (d < -e), 0 outside (d > e), linear ramp between: anti-aliased edges.
        min(max(0.5 - d / (2 * e), 0), 1)
    }

    static func draw(_ f: SyntheticIdentity, _ v: SyntheticVariation, width W: Int, height H: Int, rng: inout Rng) -> FaceImage {
        f.gratings.withUnsafeBufferPointer { gr in
            f.marks.withUnsafeBufferPointer { mk in
                f.wiggle.withUnsafeBufferPointer { wg in
                    draw(f, v, gr, mk, wg, width: W, height: H, rng: &rng)
                }
            }
        }
    }

    static func draw(_ f: SyntheticIdentity, _ v: SyntheticVariation,
                     _ gratings: UnsafeBufferPointer<(kx: Float, ky: Float, phase: Float, amp: Float)>,
                     _ marks: UnsafeBufferPointer<(x: Float, y: Float, r: Float, dark: Float)>,
                     _ wiggle: UnsafeBufferPointer<(k: Float, phase: Float, amp: Float)>,
                     width W: Int, height H: Int, rng: inout Rng) -> FaceImage {
        typealias C3 = SIMD3<Float>
        var px = [UInt8](repeating: 0, count: W * H * 3)
        let e = 1.6 / (Float(min(W, H)) * v.scale)         // edge softness: ~0.8 pixel
        let bgDir = (cosf(v.bgAngle), sinf(v.bgAngle))
        let brow = f.hair * 0.7
        let eyeRY = f.eyeRY * v.eyeOpen
        // t^p for t in 0...1.1 (257 samples, linear interpolation)
        let lutN: Float = 256, lutMax: Float = 1.1
        let table = (0...256).map { powf(Float($0) / lutN * lutMax, f.faceP) }
        let inner = powf(0.9, f.faceP), outer = powf(1.1, f.faceP)
        func lut(_ t: Float) -> Float {
            let x = min(t, lutMax) * (lutN / lutMax)
            let i = min(Int(x), 255), fr = x - Float(i)
            return table[i] + (table[i + 1] - table[i]) * fr
        }
        for y in 0..<H {
            for x in 0..<W {
                let px0 = (Float(x) + 0.5) / Float(W) * 2 - 1, py0 = (Float(y) + 0.5) / Float(H) * 2 - 1
                // inverse pose: p = s R q + t  ->  q = R^T (p - t) / s
                let qx = (px0 - v.tx), qy = (py0 - v.ty)
                let u = (v.cosR * qx + v.sinR * qy) / v.scale, w = (-v.sinR * qx + v.cosR * qy) / v.scale
                let t = 0.5 + 0.5 * (bgDir.0 * px0 + bgDir.1 * py0) * 0.7
                var col = v.bg0 * (1 - t) + v.bg1 * t
                // hair (behind the head)
                let hv = w - f.faceCY + 0.05
                let hd = (u * u) / (f.faceA * f.faceA * f.hairVolume * f.hairVolume) + (hv * hv) / (f.faceB * f.faceB * f.hairVolume * f.hairVolume)
                let hairTex: Float = 1 + 0.12 * fastSin(f.hairFreq * u + 3 * fastSin(9 * w))
                let hairA = smooth(hd.squareRoot() - 1, e) * smooth(w - (f.faceCY + f.faceB * 0.2), e)
                col = col + (f.hair * hairTex - col) * hairA
                // ears
                for si in 0..<2 { let s: Float = si == 0 ? -1 : 1
                    let ex = u - s * f.faceA * 0.98, ey = w - f.earY
                    let ed = (ex * ex * 2.2 + ey * ey).squareRoot() - f.earR
                    col = col + (f.skin * 0.88 - col) * smooth(ed, e)
                }
                // face: superellipse with a fine wiggle
                let fv = w - f.faceCY
                let au = abs(u) / f.faceA, av = abs(fv) / f.faceB
                var faceA: Float = 0
                if au < 1.1 && av < 1.1 {
                    // |u|^p + |v|^p through a table; the p-th root only in the edge band
                    let sp = lut(au) + lut(av)
                    if sp < inner { faceA = 1 } else if sp < outer {
                        let sd = powf(sp, 1 / f.faceP)
                        let ang = atan2f(fv, u)
                        var rad: Float = 1
                        for k in wiggle { rad += k.amp * cosf(k.k * ang + k.phase) }
                        faceA = smooth((sd - rad) * min(f.faceA, f.faceB), e)
                    }
                }
                if faceA > 0 {
                    var skin = f.skin
                    var tex: Float = 1
                    for g in gratings { tex += g.amp * fastSin(g.kx * u + g.ky * w + g.phase) }
                    skin = skin * tex
                    for m in marks {
                        let dx = u - m.x, dy = w - m.y
                        if abs(dx) > m.r + e || abs(dy) > m.r + e { continue }
                        let a = smooth((dx * dx + dy * dy).squareRoot() - m.r, e)
                        skin = skin * (1 - m.dark * a)
                    }
                    // nose: two shading lines and nostrils
                    let nTop = f.noseY - f.noseLen
                    if w > nTop && w < f.noseY + 0.05 {
                        for si in 0..<2 { let s: Float = si == 0 ? -1 : 1
                            let d = abs(u - s * f.noseW * (0.5 + 0.5 * (w - nTop) / f.noseLen))
                            skin = skin * (1 - 0.25 * smooth(d - 0.012, e))
                        }
                    }
                    for si in 0..<2 { let s: Float = si == 0 ? -1 : 1
                        let dx = (u - s * f.noseW * 0.6) / 1.6, dy = w - f.noseY
                        skin = skin * (1 - 0.6 * smooth((dx * dx + dy * dy).squareRoot() - 0.022, e))
                    }
                    // mouth: lips around a smile curve, dark opening
                    let mu = u / f.mouthW
                    if abs(mu) < 1.2 && abs(w - f.mouthY) < 0.2 {
                        let dy = w - (f.mouthY - v.smile * mu * mu)   // corners rise when smiling
                        let half = v.open * 0.5
                        let width = smooth(abs(mu) - 1, e / f.mouthW)
                        let lipA = smooth(abs(dy) - (half + f.lipT), e) * width
                        skin = skin + (f.lip - skin) * lipA
                        let inA = smooth(abs(dy) - half, e) * width * (half > 0 ? 1 : 0)
                        skin = skin + (C3(40, 15, 20) - skin) * inA
                    }
                    // eyes: sclera, iris, pupil, lid line
                    for si in 0..<2 { let s: Float = si == 0 ? -1 : 1
                        let cx = s * f.eyeDX, dx = (u - cx) / f.eyeRX, dy = (w - f.eyeY) / max(eyeRY, 1e-3)
                        let ed = (dx * dx + dy * dy).squareRoot()
                        if abs(dx) < 1.6 && abs(dy) < 2.5 {
                            let eyeA = smooth((ed - 1) * eyeRY, e)
                            var ec = C3(235, 235, 230)
                            let ix = u - cx - v.gaze * f.eyeRX * 0.5, iy = w - f.eyeY
                            let ir = (ix * ix + iy * iy).squareRoot()
                            if ir < f.irisR + e { ec = ec + (f.iris * (1 + 0.2 * sinf(40 * atan2f(iy, ix))) - ec) * smooth(ir - f.irisR, e) }
                            ec = ec + (C3(10, 10, 10) - ec) * smooth(ir - f.irisR * 0.45, e)
                            skin = skin + (ec - skin) * eyeA
                            let lid = smooth(abs(ed - 1) * eyeRY - 0.008, e)
                            skin = skin + (brow * 0.8 - skin) * lid
                        }
                        // brow: a tilted, arched band with hair texture
                        let bx = (u - cx) * s
                        if abs(bx) < f.browLen + 0.03 {
                            let by = f.eyeY - f.eyeRY - f.browGap - v.browRaise + f.browTilt * bx * 0.5
                                - f.browArch * (1 - (bx / f.browLen) * (bx / f.browLen))
                            let bd = max(abs(w - by) - f.browThick, abs(bx) - f.browLen)
                            let ba = smooth(bd, e) * (0.85 + 0.15 * fastSin(f.hairFreq * 1.7 * u))
                            skin = skin + (brow - skin) * ba
                        }
                    }
                    // bangs: the hairline with a wave
                    let hl = f.hairline + f.bangs * fastSin(6 * u + f.bangsPhase)
                    skin = skin + (f.hair * hairTex - skin) * smooth(w - hl, e)
                    col = col + (skin - col) * faceA
                }
                // occlusion in face coordinates
                switch v.occlusion {
                case 1: // sunglasses band over the eyes
                    let a = smooth(abs(w - f.eyeY) - f.eyeRY * 1.6, e) * smooth(abs(u) - f.eyeDX - f.eyeRX * 1.4, e)
                    col = col + (C3(20, 20, 25) - col) * a
                case 2: // mask over mouth and nose
                    let a = smooth(f.noseY - 0.03 - w, e) * smooth(abs(u) - f.faceA * 0.95, e) * smooth(w - f.mouthY - 0.25, e)
                    col = col + (v.occColor - col) * a
                case 3: // random patch
                    let a = smooth(abs(w - v.occY) - v.occH * 0.5, e) * smooth(abs(u - v.occX) - v.occW * 0.5, e)
                    col = col + (v.occColor - col) * a
                default: break
                }
                // illumination and noise
                let light = v.gain * (1 + v.gx * u + v.gy * w)
                col = col * v.cast * light
                let o = 3 * (y * W + x)
                for c in 0..<3 {
                    // approximately normal noise: sum of four 16-bit uniforms (Irwin-Hall), unit variance
                    let r = rng.next()
                    let s0 = Float(r & 0xFFFF) + Float((r >> 16) & 0xFFFF)
                    let s1 = Float((r >> 32) & 0xFFFF) + Float(r >> 48)
                    let g: Float = (s0 + s1) * (1.0 / 65536.0) - 2
                    let val = col[c] + v.noise * 1.7320508 * g
                    px[o + c] = UInt8(min(max(val, 0), 255).rounded())
                }
            }
        }
        return FaceImage(width: W, height: H, pixels: px)
    }
}
