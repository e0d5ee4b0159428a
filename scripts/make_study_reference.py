#!/usr/bin/env python3
"""Reference values for kdtrain's study statistics and A-SKD's evaluation blur.

Writes two small fixtures (committed, so CI needs neither scipy nor this script):
  Tests/EvaluationTests/Fixtures/study_reference.json   paired t-tests (scipy.stats.ttest_rel),
                                                        regularized incomplete beta (scipy.special.betainc)
  Tests/FaceDataTests/Fixtures/eval_blur.json           torchvision-style gaussian_blur(img, [5, 5], [sx, sy])
                                                        with reflect padding, in numpy (an independent
                                                        re-implementation of utility/noise.py of
                                                        gist-ailab/teaching-where-to-look)
Run: python3 scripts/make_study_reference.py   (numpy, scipy from PyPI)
"""
import json, os
import numpy as np
from scipy import stats, special

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
rng = np.random.default_rng(7)

cases = []
for n, shift in [(4, 0.5), (10, 0.0), (30, 0.02), (30, -0.01), (3, 1.0)]:
    a = rng.normal(0.8, 0.05, n)
    b = a - shift * 0.05 - rng.normal(0, 0.03, n)
    r = stats.ttest_rel(a, b)
    cases.append({"a": a.tolist(), "b": b.tolist(), "t": float(r.statistic), "p": float(r.pvalue)})
betas = [{"x": x, "a": a, "b": b, "value": float(special.betainc(a, b, x))}
         for x, a, b in [(0.3, 2.0, 3.0), (0.9, 0.5, 0.5), (0.5, 14.5, 0.5), (0.01, 1.5, 0.5), (0.999, 5.0, 0.5)]]
with open(os.path.join(root, "Tests/EvaluationTests/Fixtures/study_reference.json"), "w") as f:
    json.dump({"paired": cases, "betainc": betas}, f, indent=1)

def kernel1d(k, sigma):
    half = (k - 1) * 0.5
    x = np.linspace(-half, half, k)
    pdf = np.exp(-0.5 * (x / sigma) ** 2)
    return pdf / pdf.sum()

def gaussian_blur(img, k, sx, sy):   # img (C, H, W); kernel2d = outer(ky, kx), reflect pad, 2-D correlation
    k2 = np.outer(kernel1d(k, sy), kernel1d(k, sx))
    r = k // 2
    p = np.pad(img, ((0, 0), (r, r), (r, r)), mode="reflect")
    out = np.zeros_like(img)
    for y in range(img.shape[1]):
        for x in range(img.shape[2]):
            out[:, y, x] = (p[:, y:y + k, x:x + k] * k2).sum(axis=(1, 2))
    return out

img = rng.uniform(-1, 1, (3, 7, 9))
blur = []
for k, sx, sy in [(5, 0.1, 2.0), (5, 1.0, 1.0), (3, 0.7, 0.3)]:
    blur.append({"kernel": k, "sigmaX": sx, "sigmaY": sy, "output": gaussian_blur(img, k, sx, sy).ravel().tolist()})
with open(os.path.join(root, "Tests/FaceDataTests/Fixtures/eval_blur.json"), "w") as f:
    json.dump({"channels": 3, "height": 7, "width": 9, "input": img.ravel().tolist(), "cases": blur}, f, indent=1)
print("wrote study_reference.json and eval_blur.json")
