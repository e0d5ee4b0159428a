#!/usr/bin/env python3
"""Independent learnability check of a kdtrain data source (used for the README's synthetic-difficulty figures).

Input: a folder written by FaceData's `RawExport.write` (train.f32 (N,3,H,W), train.i32, pairs_xF.f32, issame.u8),
H = W = 56. Trains a small ResNet (about 0.05 GFLOP/image) with a CosFace loss on one CPU thread for BUDGET
seconds, then prints the 10-fold verification accuracy (flip test, squared L2, thresholds 0..4 step 0.01) at
x1, x8, x4, x2. Needs numpy and torch; kdtrain and CI never run it.

Usage: python scripts/data_learnability.py BUDGET_SECONDS [EXPORT_DIR]
"""
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F, time, sys
torch.set_num_threads(1); torch.manual_seed(0)
d = sys.argv[2] if len(sys.argv) > 2 else "/tmp/kdset"
X = torch.from_numpy(np.fromfile(d + "/train.f32", dtype=np.float32).reshape(-1, 3, 56, 56))
Y = torch.from_numpy(np.fromfile(d + "/train.i32", dtype=np.int32).astype(np.int64))
same = np.fromfile(d + "/issame.u8", dtype=np.uint8).astype(bool)
K = int(Y.max()) + 1
def block(cin, cout, s):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
net = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                    block(32, 32, 2), block(32, 64, 2), block(64, 128, 2), nn.Flatten(),
                    nn.Linear(128 * 7 * 7, 128), nn.BatchNorm1d(128))
W = nn.Parameter(torch.randn(K, 128) * 0.01)
opt = torch.optim.SGD(list(net.parameters()) + [W], lr=0.1, momentum=0.9, weight_decay=5e-4)
def emb(x):
    net.eval()
    with torch.no_grad():
        e = torch.cat([net(x[i:i+500]) + net(torch.flip(x[i:i+500], [3])) for i in range(0, len(x), 500)])
    net.train(); return F.normalize(e)
def verify(f):
    x = torch.from_numpy(np.fromfile(d + f"/pairs_x{f}.f32", dtype=np.float32).reshape(-1, 3, 56, 56))
    e = emb(x); dist = ((e[0::2] - e[1::2]) ** 2).sum(1).numpy()
    P = len(same); accs = []
    for k in range(10):
        te = np.zeros(P, bool); te[k*P//10:(k+1)*P//10] = True
        ths = np.arange(0, 4, 0.01)
        best = max(ths, key=lambda t: ((dist[~te] < t) == same[~te]).mean())
        accs.append(((dist[te] < best) == same[te]).mean())
    return np.mean(accs)
t0 = time.time(); budget = float(sys.argv[1]); step = 0
while time.time() - t0 < budget:
    idx = torch.randint(0, len(X), (64,))
    e = F.normalize(net(X[idx])); logits = e @ F.normalize(W).t()
    m = torch.zeros_like(logits).scatter_(1, Y[idx][:, None], 0.35)   # CosFace margin
    loss = F.cross_entropy(30 * (logits - m), Y[idx])
    opt.zero_grad(); loss.backward(); opt.step(); step += 1
    if step % 200 == 0: print(f"step {step} t {time.time()-t0:.0f}s loss {loss.item():.3f}", flush=True)
print("steps", step, "images", step * 64)
for f in (1, 8, 4, 2): print(f"verification x{f}: {verify(f):.4f}", flush=True)
