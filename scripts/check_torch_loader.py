#!/usr/bin/env python3
"""Checks python/kdtrain_torch.py: loads a checkpoint in PyTorch, runs it on the exact network
inputs that `kdtrain embed --pixels --flip none` wrote, and prints the max abs difference to
kdtrain's embeddings.

  kdtrain embed --checkpoint CK.safetensors --data SOURCE --output emb.safetensors --pixels --flip none
  python3 scripts/check_torch_loader.py CK.safetensors emb.safetensors [--rtol 1e-5]

Needs torch and safetensors. Exit status 1 when the difference exceeds --rtol times the largest |embedding|.
"""
import argparse
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import kdtrain_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("embeddings", help="output of kdtrain embed --pixels --flip none")
    ap.add_argument("--rtol", type=float, default=1e-5, help="allowed max abs difference / largest |embedding|")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t = load_file(a.embeddings)
    if "pixels" not in t or "pixels_mirror" in t:
        sys.exit(f"{a.embeddings}: run kdtrain embed with --pixels --flip none")
    net, meta = kdtrain_torch.load(a.checkpoint)
    with torch.no_grad():
        got = torch.cat([net(t["pixels"][i:i + 64]) for i in range(0, len(t["pixels"]), 64)])
    want = t["embeddings"]
    d = (got.double() - want.double()).abs().max().item()
    scale = want.abs().max().item()
    print(f"{a.checkpoint}: {len(want)} images, embedding {want.shape[1]}: max abs difference {d:.3g} "
          f"(largest |embedding| {scale:.3g}; torch {torch.__version__})")
    return 0 if d <= a.rtol * scale else 1


if __name__ == "__main__":
    sys.exit(main())
