#!/usr/bin/env python3
"""PyTorch reference values for kdtrain's heads, losses and SGD.

Writes Tests/ModelTests/Fixtures/losses.json (committed; CI has no torch). Inputs are drawn in
float32 and the references computed in float64 from exactly those float32 values, except SGD,
which runs torch.optim.SGD in float32 as kdtrain does. Layouts match the Swift API:
row-major (N, K) logits and (N, E) embeddings; feature maps CNHW (C, N, H, W) flattened.

Usage: /work/venv/bin/python scripts/make_loss_reference.py [output.json]
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(20260101)


def f32(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).float()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


# ---- margin heads -------------------------------------------------------------------------------
def arcface_logits(cos, labels, s, m):
    """insightface arcface_torch/losses.py ArcFace (easy_margin=False), commit eca1d9a6."""
    cos_m, sin_m = math.cos(m), math.sin(m)
    theta = math.cos(math.pi - m)
    sinmm = math.sin(math.pi - m) * m
    idx = torch.arange(cos.shape[0])
    target = cos[idx, labels]
    sin_theta = torch.sqrt(1.0 - target.pow(2))
    cos_theta_m = target * cos_m - sin_theta * sin_m
    final = torch.where(target > theta, cos_theta_m, target - sinmm)
    logits = cos.clone()
    logits[idx, labels] = final
    return logits * s


def head_case(kind, n, k, e, s=0.0, m=0.0, past_pi=False):
    emb = f32(n, e)
    w = f32(k, e, scale=0.3)
    labels = torch.randint(0, k, (n,))
    if past_pi:
        # Sample 0's class weight points almost opposite to its embedding: θ_y + m > π.
        w[labels[0]] = (-emb[0] * 0.5 + 0.01 * torch.randn(e)).float()
    e64 = emb.double().requires_grad_(True)
    w64 = w.double().requires_grad_(True)
    if kind == "softmax":
        logits = e64 @ w64.t()
    else:
        cos = F.normalize(e64) @ F.normalize(w64).t()
        if kind == "cosface":
            onehot = F.one_hot(labels, k).double()
            logits = s * (cos - m * onehot)
        else:
            logits = arcface_logits(cos, labels, s, m)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out = dict(kind=kind, n=n, k=k, e=e, s=s, m=m, embeddings=flat(emb), weight=flat(w),
               labels=[int(v) for v in labels], logits=flat(logits), loss=float(loss.detach()),
               d_embeddings=flat(e64.grad), d_weight=flat(w64.grad))
    if kind != "softmax":
        out["cosines"] = flat(F.normalize(emb.double()) @ F.normalize(w.double()).t())
    return out


# ---- losses -------------------------------------------------------------------------------------
def ce_case(n, k, scale):
    z = f32(n, k, scale=scale)
    y = torch.randint(0, k, (n,))
    z64 = z.double().requires_grad_(True)
    loss = F.cross_entropy(z64, y)
    loss.backward()
    return dict(n=n, k=k, logits=flat(z), labels=[int(v) for v in y], loss=float(loss), d_logits=flat(z64.grad))


def kd_case(n, k, temperature):
    s = f32(n, k, scale=3)
    t = f32(n, k, scale=3)
    s64 = s.double().requires_grad_(True)
    T = temperature
    loss = F.kl_div(F.log_softmax(s64 / T, 1), F.softmax(t.double() / T, 1), reduction="batchmean") * T * T
    loss.backward()
    return dict(n=n, k=k, temperature=T, student=flat(s), teacher=flat(t), loss=float(loss.detach()),
                d_student=flat(s64.grad))


def at(x):
    # szagoruyko/attention-transfer utils.py
    return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))


def at_case(n, cs, ct, h, w):
    xs = f32(n, cs, h, w)
    xt = f32(n, ct, h, w)
    xs64 = xs.double().requires_grad_(True)
    loss = (at(xs64) - at(xt.double())).pow(2).mean()
    loss.backward()
    cnhw = lambda x: x.permute(1, 0, 2, 3).contiguous()
    return dict(n=n, cs=cs, ct=ct, h=h, w=w, student=flat(cnhw(xs)), teacher=flat(cnhw(xt)),
                loss=float(loss), d_student=flat(cnhw(xs64.grad)))


def askd_case(n):
    # Two blocks: channel attention (N, C) -> exported feature-major (C, N) as the network holds
    # it; spatial attention (N, 1, H, W) -> exported CNHW (1, N, H, W).
    specs = [("channel", 6, 1, 1), ("spatial", 1, 4, 5), ("channel", 3, 1, 1), ("spatial", 1, 3, 3)]
    maps = []
    for kind, c, h, w in specs:
        if kind == "channel":
            s = torch.sigmoid(f32(n, c)); t = torch.sigmoid(f32(n, c))
        else:
            s = torch.sigmoid(f32(n, 1, h, w)); t = torch.sigmoid(f32(n, 1, h, w))
        maps.append((kind, c, h, w, s.float(), t.float()))
    out = dict(n=n, maps=[])
    for reduction in ("sum", "mean"):
        leaves = [m[4].double().requires_grad_(True) for m in maps]
        per = [(1 - F.cosine_similarity(l.reshape(n, -1), m[5].double().reshape(n, -1))).mean()
               for l, m in zip(leaves, maps)]
        loss = sum(per) if reduction == "sum" else sum(per) / len(per)
        loss.backward()
        out["loss_" + reduction] = float(loss)
        out["d_student_" + reduction] = [flat(cnhw_map(m[0], l.grad)) for l, m in zip(leaves, maps)]
        out["per_map"] = [float(p) for p in per]
    for kind, c, h, w, s, t in maps:
        out["maps"].append(dict(kind=kind, c=c, h=h, w=w, student=flat(cnhw_map(kind, s)),
                                teacher=flat(cnhw_map(kind, t))))
    return out


def cnhw_map(kind, x):
    if kind == "channel":
        return x.t().contiguous()          # (N, C) -> (C, N)
    return x.permute(1, 0, 2, 3).contiguous()


def embed_case(n, e):
    s = f32(n, e)
    t = f32(n, e)
    out = dict(n=n, e=e, student=flat(s), teacher=flat(t))
    for name in ("mse", "normalized_l2", "cosine"):
        s64 = s.double().requires_grad_(True)
        t64 = t.double()
        if name == "mse":
            loss = F.mse_loss(s64, t64)
        elif name == "normalized_l2":
            loss = (F.normalize(s64) - F.normalize(t64)).pow(2).sum(1).mean()
        else:
            loss = (1 - F.cosine_similarity(s64, t64)).mean()
        loss.backward()
        out[name] = dict(loss=float(loss), d_student=flat(s64.grad))
    return out


# ---- SGD ----------------------------------------------------------------------------------------
ENTRIES = [("a.weight", [3, 4], True), ("a.bias", [5], False), ("b.weight", [2, 3], True)]


def sgd_case(momentum, wd, nesterov, exempt, lrs):
    params0 = [f32(*shape) for _, shape, _ in ENTRIES]
    ps = [p.clone().requires_grad_(True) for p in params0]
    decay = [p for p, (_, _, d) in zip(ps, ENTRIES) if d or not exempt]
    nodecay = [p for p, (_, _, d) in zip(ps, ENTRIES) if not (d or not exempt)]
    groups = [dict(params=decay, weight_decay=wd)]
    if nodecay:
        groups.append(dict(params=nodecay, weight_decay=0.0))
    opt = torch.optim.SGD(groups, lr=lrs[0], momentum=momentum, nesterov=nesterov)
    grads, after = [], []
    for lr in lrs:
        for g in opt.param_groups:
            g["lr"] = lr
        step_grads = [f32(*p.shape) for p in ps]
        for p, g in zip(ps, step_grads):
            p.grad = g.clone()
        opt.step()
        grads.append(flat(torch.cat([g.reshape(-1) for g in step_grads])))
        after.append(flat(torch.cat([p.detach().reshape(-1) for p in ps])))
    return dict(momentum=momentum, weight_decay=wd, nesterov=nesterov, exempt_no_decay=exempt, lrs=lrs,
                entries=[dict(name=nm, shape=sh, decay=d) for nm, sh, d in ENTRIES],
                params0=flat(torch.cat([p.reshape(-1) for p in params0])), grads=grads, params=after)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "Tests/ModelTests/Fixtures/losses.json"
    fixture = dict(
        generator="scripts/make_loss_reference.py, torch " + torch.__version__,
        heads=[
            head_case("softmax", 4, 7, 5),
            head_case("cosface", 4, 7, 5, s=16.0, m=0.35),
            head_case("cosface", 5, 6, 8, s=30.0, m=0.4),
            head_case("arcface", 5, 6, 8, s=16.0, m=0.5),
            head_case("arcface", 6, 9, 7, s=8.0, m=0.5, past_pi=True),
        ],
        cross_entropy=[ce_case(4, 7, 1.0), ce_case(3, 10, 300.0)],
        kd=[kd_case(3, 6, 4.0), kd_case(5, 11, 1.0)],
        attention_transfer=[at_case(2, 3, 5, 4, 3), at_case(3, 4, 4, 5, 5)],
        attention_similarity=askd_case(3),
        embedding=embed_case(4, 9),
        sgd=[
            sgd_case(0.9, 0.01, False, True, [0.1, 0.05, 0.02]),
            sgd_case(0.9, 0.01, True, True, [0.1, 0.05, 0.02]),
            sgd_case(0.9, 0.01, False, False, [0.1, 0.05, 0.02]),
            sgd_case(0.0, 0.01, False, True, [0.1, 0.05]),
        ],
    )
    with open(path, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
