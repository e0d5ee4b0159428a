#!/usr/bin/env python3
"""Writes the seed corpus of the parser fuzz targets to fuzz/corpus/<target>/ (small files).

Files named valid-* must be accepted by their parser (Tests/FuzzTests checks it); every other file
must be rejected or accepted without a trap, with a one-line error naming the file. regress-* files
are inputs the fuzzer found (kept, not written here). Deterministic; Python 3 standard library only,
plus numpy for the numpy-array .bin seeds and libturbojpeg (through ctypes) for the JPEG seeds (both
are skipped with a note when missing; the committed files stay).
    python3 scripts/make_fuzz_corpus.py
"""
import ctypes
import ctypes.util
import os
import pickle
import struct
import sys
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pgm(w, h, pixels):
    return b"P5\n%d %d\n255\n" % (w, h) + bytes(pixels)


# ---- images -------------------------------------------------------------------------------------

def png(w, h, color_type, depth, rows, palette=None, interlace=0, extra=b""):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace))
    if palette is not None:
        out += chunk(b"PLTE", palette)
    out += extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return out


def images():
    t = "image"
    put(t, "valid-p5.pgm", pgm(3, 2, [0, 128, 255, 1, 2, 3]))
    put(t, "valid-p6.ppm", b"P6\n2 1\n255\n" + bytes([255, 0, 0, 0, 255, 0]))
    put(t, "valid-p2.pgm", b"P2\n# comment\n2 2\n15\n0 5\n10 15\n")
    put(t, "valid-p3.ppm", b"P3 1 1 255 1 2 3")
    put(t, "valid-p5-16bit.pgm", b"P5 2 1 65535\n" + struct.pack(">HH", 0, 65535))
    put(t, "valid-gray.png", png(2, 2, 0, 8, [b"\x00\x7f", b"\xff\x10"]))
    put(t, "valid-gray1bit.png", png(8, 1, 0, 1, [b"\xa5"]))
    put(t, "valid-rgb.png", png(2, 1, 2, 8, [b"\xff\x00\x00\x00\xff\x00"]))
    put(t, "valid-rgba16.png", png(1, 1, 6, 16, [b"\x12\x34\x56\x78\x9a\xbc\xde\xf0"]))
    put(t, "valid-gray-alpha.png", png(1, 1, 4, 8, [b"\x80\x40"]))
    put(t, "valid-palette.png", png(2, 1, 3, 8, [b"\x00\x01"], palette=b"\x00\x00\x00\xff\xff\xff",
                                    extra=b"\x00\x00\x00\x01tRNS\x00" + struct.pack(">I", zlib.crc32(b"tRNS\x00") & 0xFFFFFFFF)))
    put(t, "valid-interlaced.png", png(1, 1, 2, 8, [b"\x01\x02\x03"], interlace=1))
    put(t, "huge-pgm-header.pgm", b"P5 8192 8192 255\n\x00")
    put(t, "over-limit-pgm.pgm", b"P5 9000 9000 255\n\x00")
    put(t, "sample-above-maxval.pgm", b"P2 1 1 10 11")
    put(t, "truncated.png", png(2, 2, 0, 8, [b"\x00\x7f", b"\xff\x10"])[:40])
    put(t, "huge-png-ihdr.png", png(100000, 1, 0, 8, [b"\x00"]))
    put(t, "gif.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    put(t, "bmp.bmp", b"BM" + b"\x00" * 12 + struct.pack("<I", 40) + b"\x00" * 20)
    put(t, "empty", b"")
    put(t, "jpeg-soi-only.jpg", b"\xff\xd8\xff")
    # JPEG seeds from libjpeg-turbo's TurboJPEG API through ctypes (the library kdtrain decodes with):
    # baseline gray, baseline RGB 4:2:0, progressive, CMYK (written with an Adobe marker).
    try:
        tj = ctypes.CDLL(ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0")
    except OSError:
        print("note: libturbojpeg not found, JPEG seeds not rewritten", file=sys.stderr)
        return
    tj.tjInitCompress.restype = ctypes.c_void_p
    tj.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                               ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong), ctypes.c_int, ctypes.c_int, ctypes.c_int]
    tj.tjFree.argtypes = [ctypes.c_void_p]
    tj.tjDestroy.argtypes = [ctypes.c_void_p]

    def jpeg(pixels, pf, channels, subsamp, flags=0):
        h = tj.tjInitCompress()
        buf, size = ctypes.c_void_p(), ctypes.c_ulong()
        assert tj.tjCompress2(h, bytes(pixels), 8, 8 * channels, 8, pf, ctypes.byref(buf), ctypes.byref(size), subsamp, 80, flags) == 0
        data = ctypes.string_at(buf, size.value)
        tj.tjFree(buf); tj.tjDestroy(h)
        return data
    rgb = [(x * 31 + y * 17 + c * 70) % 256 for y in range(8) for x in range(8) for c in range(3)]
    gray = [(x * 31 + y * 17) % 256 for y in range(8) for x in range(8)]
    cmyk = [(x * 31 + y * 17 + c * 50) % 256 for y in range(8) for x in range(8) for c in range(4)]
    TJPF_RGB, TJPF_GRAY, TJPF_CMYK, TJSAMP_444, TJSAMP_420, TJSAMP_GRAY, TJFLAG_PROGRESSIVE = 0, 6, 11, 0, 2, 3, 16384
    base = jpeg(rgb, TJPF_RGB, 3, TJSAMP_420)
    put(t, "valid-rgb.jpg", base)
    put(t, "valid-gray.jpg", jpeg(gray, TJPF_GRAY, 1, TJSAMP_GRAY))
    put(t, "valid-progressive.jpg", jpeg(rgb, TJPF_RGB, 3, TJSAMP_444, TJFLAG_PROGRESSIVE))
    put(t, "valid-cmyk.jpg", jpeg(cmyk, TJPF_CMYK, 4, TJSAMP_444))
    put(t, "truncated.jpg", base[: len(base) // 2])
    # SOF0 height and width set to 65535 x 65535 (over the 8192 limit).
    sof = base.find(b"\xff\xc0")
    put(t, "huge-sof.jpg", base[:sof + 5] + b"\xff\xff\xff\xff" + base[sof + 9:])


# ---- pickle (.bin) ------------------------------------------------------------------------------

def pickles():
    t = "pickle"
    imgs = [pgm(1, 1, [i]) for i in range(4)]
    same = [True, False]
    for proto in (2, 3, 4, 5):
        put(t, "valid-p%d.bin" % proto, pickle.dumps((imgs, same), protocol=proto))
    # Python 2 form: SHORT_BINSTRING images, APPENDS, NEWTRUE/NEWFALSE, BININT1 flags.
    py2 = b"\x80\x02]q\x00(" + b"".join(b"U" + bytes([len(i)]) + i for i in imgs) + b"e]q\x01(K\x01K\x00e\x86q\x02."
    put(t, "valid-py2.bin", py2)
    try:
        import numpy as np
        arrs = [np.frombuffer(i, dtype=np.uint8).reshape(-1, 1) for i in imgs]
        put(t, "valid-numpy-p2.bin", pickle.dumps((arrs, same), protocol=2))
        put(t, "valid-numpy-p5.bin", pickle.dumps((arrs, same), protocol=5))
    except ImportError:
        print("note: numpy not found, numpy .bin seeds not rewritten", file=sys.stderr)
    p4 = pickle.dumps((imgs, same), protocol=4)
    put(t, "truncated.bin", p4[: len(p4) // 2])
    put(t, "evil-global.bin", b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")
    put(t, "self-append.bin", b"\x80\x02]q\x00h\x00a]\x88a\x86.")
    put(t, "huge-binbytes8.bin", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 39) + b"x")
    put(t, "memo-missing.bin", b"\x80\x02h\x07.")
    put(t, "odd-count.bin", pickle.dumps((imgs[:3], same), protocol=4))
    put(t, "empty", b"")


# ---- RecordIO -----------------------------------------------------------------------------------

MAGIC = 0xCED7230A


def irheader(label, flag=0, labels=(), ident=0):
    return struct.pack("<IfQQ", len(labels) if labels else flag, label, ident, 0) + b"".join(struct.pack("<f", x) for x in labels)


def frame(payload):
    """Frames a payload as MXNet's writer does (split at aligned magic words)."""
    out, start, parts = b"", 0, []
    for i in range(0, len(payload) & ~3, 4):
        if struct.unpack_from("<I", payload, i)[0] == MAGIC:
            parts.append((1 if start == 0 else 2, payload[start:i]))
            start = i + 4
    parts.append((0 if start == 0 else 3, payload[start:]))
    for cflag, s in parts:
        out += struct.pack("<II", MAGIC, cflag << 29 | len(s)) + s + b"\x00" * ((4 - len(s) % 4) % 4)
    return out


def rec_input(records, idx=True, strict=False, idx_text=None):
    """The recordio target's layout: mode byte, [u16 idx length, idx text], .rec bytes."""
    rec, lines = b"", []
    for key, payload in records:
        lines.append("%d\t%d\n" % (key, len(rec)))
        rec += frame(payload)
    text = ("".join(lines) if idx_text is None else idx_text).encode()
    mode = (1 if idx else 0) | (2 if strict else 0)
    return bytes([mode]) + (struct.pack("<H", len(text)) + text if idx else b"") + rec


def recordio():
    t = "recordio"
    a, b = pgm(2, 1, [10, 20]), pgm(2, 1, [30, 40])
    scalar = [(0, irheader(0) + a), (1, irheader(1) + b)]
    put(t, "valid-scalar.in", rec_input(scalar))
    put(t, "valid-sequential.in", rec_input(scalar, idx=False))
    put(t, "valid-strict.in", rec_input(scalar, strict=True))
    # Legacy: images 1..2, identity records 3..4, header record 0 with labels [N+1, N+1+K].
    legacy = [(1, irheader(0, ident=1) + a), (2, irheader(1, ident=2) + b),
              (3, irheader(0, labels=(1, 2), ident=3)), (4, irheader(0, labels=(2, 3), ident=4)),
              (0, irheader(0, labels=(3, 5)))]
    put(t, "valid-legacy.in", rec_input(legacy))
    # A payload with the magic at an aligned offset is split into parts (cflag 1, 3).
    split_img = b"P5 4 2 255\n" + bytes([7]) + struct.pack("<I", MAGIC) + bytes([1, 2, 3])
    assert len(irheader(0) + split_img) > 36 and (irheader(0) + split_img)[36:40] == struct.pack("<I", MAGIC)
    put(t, "valid-split.in", rec_input([(0, irheader(0) + split_img)]))
    put(t, "valid-label-vector.in", rec_input([(0, irheader(0, labels=(4, 9)) + a)]))
    put(t, "bad-image-skipped.in", rec_input([(0, irheader(0) + a), (1, irheader(0) + b"not an image")]))
    put(t, "bad-image-strict.in", rec_input([(0, irheader(0) + b"not an image")], strict=True))
    whole = rec_input(scalar, idx=False)
    put(t, "truncated.in", whole[: len(whole) - 9])
    put(t, "bad-magic.in", bytes([0]) + b"\x0b\x23\xd7\xce" + whole[5:])
    put(t, "huge-flag.in", rec_input([(0, struct.pack("<IfQQ", 0xFFFFFFFF, 0, 0, 0) + a)], idx=False))
    put(t, "bad-label.in", rec_input([(0, irheader(-1.5) + a)]))
    put(t, "idx-past-end.in", rec_input(scalar, idx_text="0\t0\n1\t99999\n"))
    put(t, "idx-garbage.in", rec_input(scalar, idx_text="zero\tx\n"))
    put(t, "idx-duplicate.in", rec_input(scalar, idx_text="0\t0\n0\t0\n"))
    put(t, "legacy-huge-range.in", rec_input([(0, irheader(0, labels=(16777216, 16777216)))]))
    put(t, "legacy-missing-key.in", rec_input([(0, irheader(0, labels=(3, 4))), (1, irheader(0) + a)]))
    put(t, "continuation-first.in", bytes([0]) + struct.pack("<II", MAGIC, 3 << 29 | 4) + b"abcd")
    put(t, "empty", b"")


# ---- safetensors --------------------------------------------------------------------------------

def st(header, data=b"", pad=True):
    h = header.encode()
    if pad:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors():
    t = "safetensors"
    two = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    put(t, "valid-two.safetensors", st('{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
                                       '"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}', two))
    put(t, "valid-empty.safetensors", st("{}"))
    put(t, "valid-scalar-and-empty.safetensors", st('{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},'
                                                    '"z":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}}', two[:4]))
    put(t, "dtype-f16.safetensors", st('{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', b"\x00" * 4))
    put(t, "overlap.safetensors", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\x00" * 4))
    put(t, "huge-header-length.safetensors", struct.pack("<Q", 1 << 63) + b"{}")
    put(t, "shape-overflow.safetensors", st('{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}', b"\x00" * 16))
    put(t, "negative-dim.safetensors", st('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', b"\x00" * 4))
    put(t, "float-offsets.safetensors", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4]}}', b"\x00" * 4))
    put(t, "bool-shape.safetensors", st('{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}', b"\x00" * 4))
    put(t, "not-json.safetensors", st("{not json"))
    put(t, "trailing-bytes.safetensors", st("{}", b"\x01\x02"))
    put(t, "deep-nesting.safetensors", st("[" * 600 + "]" * 600))
    put(t, "short", b"\x01\x00")


# ---- config -------------------------------------------------------------------------------------

def config():
    t = "config"
    put(t, "valid-defaults", b"")
    put(t, "valid-json.json", b'{"seed": 3, "optim": {"batch": 32, "schedule": "poly"}, "eval": {"blur": [0.1, 2.0]}}')
    put(t, "valid-overrides", b"\x00optim.batch=32\nhead.kind=cosface\nloss.recipe=\"hinton\"\neval.identification=null\ndata.train=1")
    put(t, "valid-both", b'{"loss": {"recipe": "askd"}}\x00loss.blocks=0.0,2.1\nstudent.epochs=0.5')
    # Read fine, refused by validation (problems()).
    put(t, "valid-invalid-values.json", b'{"optim": {"batch": 3}, "loss": {"blocks": "x.y"}}')
    # A choice outside its values is refused when read.
    put(t, "bad-choice.json", b'{"optim": {"batch": 3}, "head": {"kind": "nope"}, "loss": {"blocks": "x.y"}}')
    put(t, "unknown-key.json", b'{"optm": {"batch": 32}}')
    put(t, "wrong-type.json", b'{"optim": {"batch": "32"}}')
    put(t, "int-too-big.json", b'{"optim": {"batch": 1e30}}')
    put(t, "float-too-big.json", b'{"head": {"s": 1e300}}')
    put(t, "section-as-value.json", b'{"optim": 5}')
    put(t, "not-object.json", b"[1, 2]")
    put(t, "syntax.json", b'{"seed": ')
    put(t, "override-no-eq", b"\x00optim.batch")
    put(t, "override-empty-key", b"\x00optim..batch=3")
    put(t, "override-bad-value", b"\x00optim.batch=abc")
    put(t, "override-unknown", b"\x00optim.bach=3")
    put(t, "override-newline-key", b"\x00optim.ba\rch=3")


if __name__ == "__main__":
    images()
    pickles()
    recordio()
    safetensors()
    config()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(ROOT) for f in fs)
    count = sum(len(fs) for _, _, fs in os.walk(ROOT))
    print("fuzz/corpus: %d files, %d bytes" % (count, total))
