#!/usr/bin/env python3
"""Makes Tests/FaceDataTests/Fixtures: reference values from independent implementations.

- resize.json: torch.nn.functional.interpolate (antialias=True for bilinear/bicubic, 'nearest', 'area'),
  and a numpy exact-area reference for non-integer factors; a degradation chain (down, bicubic up, clamp)
  and a Gaussian blur computed with numpy.
- bin_*.bin: verification sets written by Python's pickle module at protocols 2-5, a hand-written
  Python 2 style file (BINSTRING/SHORT_BINSTRING, as the published insightface files), and a malicious
  pickle (GLOBAL posix.system) that the reader must reject. Images are small JPEGs made with Pillow.

Run: /work/venv/bin/python scripts/make_data_fixtures.py   (needs numpy, torch, pillow; CI does not run it)
"""
import io, json, os, pickle, struct
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "FaceDataTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(1234)


def interp(x, h, w, kernel):
    t = torch.from_numpy(x[None].astype(np.float64))
    if kernel in ("bilinear", "bicubic"):
        y = F.interpolate(t, size=(h, w), mode=kernel, align_corners=False, antialias=True)
    elif kernel == "nearest":
        y = F.interpolate(t, size=(h, w), mode="nearest")
    else:
        y = F.interpolate(t, size=(h, w), mode="area")
    return y[0].numpy()


def exact_area(x, h, w):
    c, H, W = x.shape

    def mat(n_in, n_out):
        m = np.zeros((n_out, n_in))
        s = n_in / n_out
        for i in range(n_out):
            a, b = i * s, (i + 1) * s
            for j in range(n_in):
                m[i, j] = max(0.0, min(b, j + 1) - max(a, j))
            m[i] /= m[i].sum()
        return m

    my, mx = mat(H, h), mat(W, w)
    return np.einsum("ij,cjk,lk->cil", my, x, mx)


def blur(x, sigma):
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma * sigma)); k /= k.sum()
    p = np.pad(x, ((0, 0), (0, 0), (r, r)), mode="edge")
    y = np.stack([np.convolve(row, k, mode="valid") for row in p.reshape(-1, p.shape[2])]).reshape(x.shape)
    p = np.pad(y, ((0, 0), (r, r), (0, 0)), mode="edge")
    z = np.stack([np.convolve(p[c, :, j], k, mode="valid") for c in range(x.shape[0]) for j in range(x.shape[2])])
    return z.reshape(x.shape[0], x.shape[2], x.shape[1]).transpose(0, 2, 1)


cases = []
def case(name, x, h, w, kernel, y):
    cases.append({"name": name, "c": x.shape[0], "H": x.shape[1], "W": x.shape[2], "h": h, "w": w,
                  "kernel": kernel, "input": x.ravel().tolist(), "expected": np.asarray(y).ravel().tolist()})

x = rng.uniform(0, 255, size=(3, 13, 11))
for (h, w) in [(7, 5), (4, 3), (26, 22), (9, 17), (13, 11)]:
    for k in ("bilinear", "bicubic", "nearest"):
        case(f"{k} 13x11->{h}x{w}", x, h, w, k, interp(x, h, w, k))
x2 = rng.uniform(0, 255, size=(3, 16, 12))
for (h, w) in [(8, 6), (4, 3), (2, 2)]:
    case(f"area 16x12->{h}x{w} (torch)", x2, h, w, "area", interp(x2, h, w, "area"))
case("area 13x11->7x5 (exact overlap, numpy)", x, 7, 5, "area", exact_area(x, 7, 5))
case("area 13x11->5x4 (exact overlap, numpy)", x, 5, 4, "area", exact_area(x, 5, 4))

# Degradation chains: down by f with a kernel, bicubic (antialias convention) back up, clamp to 0..255.
face = rng.uniform(0, 255, size=(3, 16, 16))
degr = []
for f, down in [(2, "bicubic"), (4, "area"), (8, "bilinear"), (4, "nearest")]:
    lo = interp(face, 16 // f, 16 // f, down)
    up = np.clip(interp(lo, 16, 16, "bicubic"), 0, 255)
    degr.append({"factor": f, "down": down, "expected": up.ravel().tolist()})

xb = rng.uniform(0, 255, size=(3, 9, 10))
blurs = [{"sigma": s, "expected": blur(xb, s).ravel().tolist()} for s in (0.7, 1.5)]

with open(os.path.join(OUT, "resize.json"), "w") as fh:
    json.dump({"resize": cases,
               "degrade": {"size": 16, "input": face.ravel().tolist(), "cases": degr},
               "blur": {"c": 3, "H": 9, "W": 10, "input": xb.ravel().tolist(), "cases": blurs}}, fh)

# Verification .bin files.
def jpeg(seed):
    a = np.random.default_rng(seed).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    b = io.BytesIO(); Image.fromarray(a).save(b, format="JPEG", quality=90); return b.getvalue()

imgs = [jpeg(i) for i in range(6)]
issame = [True, False, True]
for proto in (2, 3, 4, 5):
    with open(os.path.join(OUT, f"bin_p{proto}.bin"), "wb") as fh:
        pickle.dump((imgs, issame), fh, protocol=proto)

def py2_style(images, flags):
    o = bytearray(b"\x80\x02]q\x00(")
    for i, im in enumerate(images):
        o += (b"U" + bytes([len(im)])) if len(im) < 256 else (b"T" + struct.pack("<i", len(im)))
        o += im + b"q" + bytes([i + 1])
    o += b"e]q\x07(" + b"".join(b"\x88" if f else b"\x89" for f in flags) + b"e\x86q\x08."
    return bytes(o)

with open(os.path.join(OUT, "bin_py2.bin"), "wb") as fh:
    fh.write(py2_style(imgs, issame))
assert pickle.loads(py2_style(imgs, issame), encoding="bytes") == (imgs, issame)
with open(os.path.join(OUT, "bin_evil.bin"), "wb") as fh:
    fh.write(b"\x80\x02cposix\nsystem\nq\x00X\x07\x00\x00\x00echo hi\x85R.")
with open(os.path.join(OUT, "bin_images.json"), "w") as fh:
    json.dump({"issame": issame, "sizes": [len(i) for i in imgs],
               "first_pixels": [list(np.asarray(Image.open(io.BytesIO(im)).convert("RGB"))[0, 0].tolist()) for im in imgs]}, fh)
print("wrote fixtures to", os.path.abspath(OUT))
