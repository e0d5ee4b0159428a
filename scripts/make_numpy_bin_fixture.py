#!/usr/bin/env python3
"""Makes Tests/FaceDataTests/Fixtures/bin_numpy_*.bin: verification sets whose images are numpy uint8
arrays, as insightface's build_eval_pack.py writes them (cv2.imencode returns an (N, 1) uint8 array of
the encoded bytes, pickled with the images list and issame_list).

The encoded images are the JPEGs of bin_p4.bin (made by make_data_fixtures.py), so the test can compare
the arrays' bytes with the plain-bytes fixture. Files:
- bin_numpy_p2.bin, bin_numpy_p4.bin, bin_numpy_p5.bin: pickle protocols 2, 4, 5 under the installed
  numpy (numpy 2 names its modules numpy._core.*; protocol 2/4 use _reconstruct + BUILD, protocol 5
  uses numeric._frombuffer with the bytes in-band);
- bin_numpy1_p2.bin: the protocol-2 file with numpy 1's module names (numpy.core.*). Protocol 2 names
  globals as text lines without length prefixes or frames, so renaming them keeps the file valid.

Run: python3 scripts/make_numpy_bin_fixture.py   (needs numpy; CI does not run it)
"""
import os, pickle
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "FaceDataTests", "Fixtures")

with open(os.path.join(OUT, "bin_p4.bin"), "rb") as f:
    bins, issame = pickle.load(f)
arrays = [np.frombuffer(b, dtype=np.uint8).reshape(-1, 1).copy() for b in bins]   # writable, like imencode's
for p in (2, 4, 5):
    data = pickle.dumps((arrays, issame), protocol=p)
    with open(os.path.join(OUT, "bin_numpy_p%d.bin" % p), "wb") as f:
        f.write(data)
    back, same = pickle.loads(data)
    assert [bytes(a.tobytes()) for a in back] == bins and same == issame

p2 = pickle.dumps((arrays, issame), protocol=2)
assert b"numpy._core." in p2 or b"numpy.core." in p2
v1 = p2.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
with open(os.path.join(OUT, "bin_numpy1_p2.bin"), "wb") as f:
    f.write(v1)
print("wrote bin_numpy_p2/p4/p5.bin and bin_numpy1_p2.bin: %d arrays, numpy %s" % (len(arrays), np.__version__))
