#!/usr/bin/env python3
"""Runs an exported kdtrain ONNX model with onnxruntime on the exact network inputs that
`kdtrain embed --pixels --flip none` wrote, and prints the max abs difference to kdtrain's
embeddings (and the largest embedding magnitude, for scale).

  kdtrain export --format onnx CK.safetensors -o model.onnx [--fold-bn]
  kdtrain embed --checkpoint CK.safetensors --data SOURCE --output emb.safetensors --pixels --flip none
  python3 scripts/check_onnx.py model.onnx emb.safetensors [--rtol 1e-5]

Needs numpy, onnxruntime and safetensors. Exit status 1 when the difference exceeds --rtol times the largest |embedding|.
"""
import argparse
import sys

import numpy as np
import onnxruntime as ort
from safetensors.numpy import load_file


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("embeddings", help="output of kdtrain embed --pixels --flip none")
    ap.add_argument("--rtol", type=float, default=1e-5, help="allowed max abs difference / largest |embedding|")
    a = ap.parse_args()
    t = load_file(a.embeddings)
    if "pixels" not in t:
        sys.exit(f"{a.embeddings}: no 'pixels' tensor (run kdtrain embed with --pixels)")
    if "pixels_mirror" in t or "embeddings_noflip" in t:
        sys.exit(f"{a.embeddings}: embeddings are a flip sum (run kdtrain embed with --flip none)")
    pixels, want = t["pixels"], t["embeddings"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    meta = s.get_modelmeta().custom_metadata_map
    if int(meta["input_size"]) != pixels.shape[-1]:
        sys.exit(f"{a.model}: input_size {meta['input_size']} but the pixels are {pixels.shape[-1]} wide")
    got = np.concatenate([s.run(["embedding"], {"input": pixels[i:i + 64]})[0] for i in range(0, len(pixels), 64)])
    d = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
    print(f"{a.model}: {len(pixels)} images, embedding {want.shape[1]}: max abs difference {d:.3g} "
          f"(largest |embedding| {float(np.abs(want).max()):.3g}; batch_norm: {meta['batch_norm']})")
    return 0 if d <= a.rtol * float(np.abs(want).max()) else 1


if __name__ == "__main__":
    sys.exit(main())
