#!/usr/bin/env python3
"""Reference for one whole kdtrain distillation step, computed by PyTorch.

Builds a small ResNeXt-CBAM student and teacher with exactly kdtrain's architecture and
parameter names, runs one training step (frozen teacher forward on the high-quality input,
student forward on the low-quality input, recognition + logit KD + attention losses, backward,
SGD with momentum and weight decay) and writes everything kdtrain's test compares into
Tests/ModelTests/Fixtures/step_reference.safetensors:
  param/<name>     initial student (and classifier) parameters
  buffer/<name>    initial batch-norm running statistics
  teacher/<name>   teacher parameters and buffers
  input/hr, input/lr (N, 3, H, W); input/labels (float)
  out/embedding (N, E); out/logits (N, K)
  grad/<name>      dLoss/dparam
  new/<name>       parameters after the SGD step; newbuf/<name> running stats after the step
and the loss components, the configuration and the torch version in the metadata.

Run: /work/venv/bin/python scripts/make_reference.py  (needs torch, safetensors)
"""
import json
import math
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(20261129)
torch.set_num_threads(1)

# ---- configuration shared with Tests/ModelTests/StepReferenceTests.swift ----------------
CFG = dict(
    input=16, stem=8, cardinality=4, group_width=2, cbam_reduction=4, cbam_kernel=3, embedding=16,
    student_depths=[1, 1], teacher_depths=[2, 1], widths=[16, 32], strides=[1, 2],
    classes=10, batch=4, s=32.0, m=0.5, margin="arcface", kd_T=4.0,
    w_rec=1.0, w_kd=1.0, w_askd=1.0, w_at=50.0, w_emb=0.5,
    lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False, bn_momentum=0.1,
)


class CBAM(nn.Module):
    """Channel attention (shared MLP on avg- and max-pooled descriptors, summed, sigmoid) then
    spatial attention (channel mean and max, k x k conv, sigmoid)."""

    def __init__(self, c, r, k):
        super().__init__()
        self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear(c, c // r), relu=nn.ReLU(), fc2=nn.Linear(c // r, c)))
        self.spatial = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        ca_logit = self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3)))
        ca = torch.sigmoid(ca_logit)
        x = x * ca[:, :, None, None]
        sa_logit = self.spatial(torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1))  # CBAM ChannelPool: (max, mean)
        sa = torch.sigmoid(sa_logit)
        self.maps = dict(channel_logit=ca_logit, channel=ca, spatial_logit=sa_logit.flatten(1), spatial=sa.flatten(1))
        return x * sa


class Block(nn.Module):
    """ResNeXt bottleneck: 1x1, grouped 3x3 (stride), 1x1, CBAM on the residual branch, shortcut."""

    def __init__(self, cin, cout, width, stride, groups, r, k):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False); self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False); self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False); self.bn3 = nn.BatchNorm2d(cout)
        self.cbam = CBAM(cout, r, k)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.cbam(self.bn3(self.conv3(y)))
        sc = x if self.downsample is None else self.downsample(x)
        return F.relu(y + sc)


class Net(nn.Module):
    def __init__(self, depths, cfg):
        super().__init__()
        self.stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, cfg["stem"], 3, 1, 1, bias=False),
                                              bn=nn.BatchNorm2d(cfg["stem"]), prelu=nn.PReLU(cfg["stem"])))
        layers, cin = [], cfg["stem"]
        for si, (d, cout, st) in enumerate(zip(depths, cfg["widths"], cfg["strides"])):
            width = cfg["cardinality"] * cfg["group_width"] * (2 ** si)
            blocks = []
            for b in range(d):
                blocks.append(Block(cin, cout, width, st if b == 0 else 1, cfg["cardinality"],
                                    cfg["cbam_reduction"], cfg["cbam_kernel"]))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        side = cfg["input"]
        for st in cfg["strides"]:
            side = (side - 1) // st + 1
        self.embed = nn.Module()
        self.embed.bn = nn.BatchNorm2d(cin)
        self.embed.fc = nn.Linear(cin * side * side, cfg["embedding"])
        self.embed.features = nn.BatchNorm1d(cfg["embedding"])
        self.classifier = nn.Linear(cfg["embedding"], cfg["classes"], bias=False)  # margin head weight (K, E)
        nn.init.normal_(self.classifier.weight, std=0.01)

    def forward(self, x):
        x = self.stem(x)
        stage_outputs, maps = [], []
        for stage in self.layers:
            x = stage(x)
            stage_outputs.append(x)
            maps.append(stage[-1].cbam.maps)
        e = self.embed.bn(x).flatten(1)
        e = self.embed.features(self.embed.fc(e))
        return e, stage_outputs, maps


def cosines(net, e):
    return F.linear(F.normalize(e), F.normalize(net.classifier.weight))


def arcface_logits(cos, labels, s, m):
    # insightface arcface_torch CombinedMarginLoss / ArcFace with easy_margin=False:
    # theta + m > pi is replaced by cos(theta) - m * sin(pi - m) (the "th"/"mm" rule).
    cos = cos.clamp(-1, 1)
    target = cos.gather(1, labels[:, None])
    sin = (1 - target * target).clamp_min(0).sqrt()
    phi = target * math.cos(m) - sin * math.sin(m)
    th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m
    phi = torch.where(target > th, phi, target - mm)
    out = cos.clone()
    out.scatter_(1, labels[:, None], phi)
    return out * s


def at(x):
    return F.normalize(x.pow(2).mean(1).flatten(1))


def main():
    c = CFG
    student, teacher = Net(c["student_depths"], c), Net(c["teacher_depths"], c)
    # Non-trivial BN running statistics and affine values so inference mode is really tested.
    for net in (student, teacher):
        for mod in net.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
                mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
                mod.weight.data.uniform_(0.8, 1.2); mod.bias.data.uniform_(-0.1, 0.1)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    n, side = c["batch"], c["input"]
    hr = torch.rand(n, 3, side, side) * 2 - 1
    lr = F.interpolate(F.avg_pool2d(hr, 2), scale_factor=2, mode="nearest")
    labels = torch.randint(0, c["classes"], (n,))

    def named(net, prefix):
        d = OrderedDict()
        for k, v in net.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            d[prefix + k] = v.detach().clone().float().contiguous()
        return d

    tensors = OrderedDict()
    for k, v in named(student, "").items():
        is_buffer = k.endswith("running_mean") or k.endswith("running_var")
        tensors[("buffer/" if is_buffer else "param/") + k] = v
    tensors.update(named(teacher, "teacher/"))
    tensors["input/hr"], tensors["input/lr"], tensors["input/labels"] = hr, lr, labels.float()

    with torch.no_grad():
        te, t_stage, t_maps = teacher(hr)
        t_cos = cosines(teacher, te)
    student.train()
    se, s_stage, s_maps = student(lr)
    s_cos = cosines(student, se)
    logits = arcface_logits(s_cos, labels, c["s"], c["m"])
    l_rec = F.cross_entropy(logits, labels)
    T = c["kd_T"]
    l_kd = F.kl_div(F.log_softmax(c["s"] * s_cos / T, 1), F.softmax(c["s"] * t_cos / T, 1),
                    reduction="batchmean") * T * T
    # A-SKD attention similarity: mean over (stage, channel/spatial) maps of mean_n (1 - cos).
    askd_terms = [(1 - F.cosine_similarity(sm[k], tm[k].detach(), dim=1)).mean()
                  for sm, tm in zip(s_maps, t_maps) for k in ("channel", "spatial")]
    l_askd = sum(askd_terms) / len(askd_terms)
    l_at = sum((at(sx) - at(tx)).pow(2).mean() for sx, tx in zip(s_stage, t_stage))
    l_emb = (1 - F.cosine_similarity(se, te, dim=1)).mean()
    total = c["w_rec"] * l_rec + c["w_kd"] * l_kd + c["w_askd"] * l_askd + c["w_at"] * l_at + c["w_emb"] * l_emb
    total.backward()

    tensors["out/embedding"] = se.detach().clone()
    tensors["out/logits"] = logits.detach().clone()
    tensors["out/teacher_embedding"] = te.clone()
    for k, p in student.named_parameters():
        tensors["grad/" + k] = p.grad.detach().clone()

    # SGD (PyTorch semantics) with weight decay exempting batch-norm/PReLU and biases, as kdtrain's default.
    decay, no_decay = [], []
    for k, p in student.named_parameters():
        (no_decay if (p.ndim <= 1) else decay).append(p)
    opt = torch.optim.SGD([dict(params=decay, weight_decay=c["weight_decay"]), dict(params=no_decay, weight_decay=0.0)],
                          lr=c["lr"], momentum=c["momentum"], nesterov=c["nesterov"])
    opt.step()
    for k, v in named(student, "").items():
        is_buffer = k.endswith("running_mean") or k.endswith("running_var")
        tensors[("newbuf/" if is_buffer else "new/") + k] = v

    meta = dict(config=json.dumps(CFG, sort_keys=True), torch=torch.__version__,
                loss_rec=repr(l_rec.item()), loss_kd=repr(l_kd.item()), loss_askd=repr(l_askd.item()),
                loss_at=repr(l_at.item()), loss_emb=repr(l_emb.item()), loss_total=repr(total.item()))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ModelTests", "Fixtures",
                       "step_reference.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, out, metadata=meta)
    print(f"wrote {out}: {len(tensors)} tensors; losses rec {l_rec.item():.5f} kd {l_kd.item():.5f} "
          f"askd {l_askd.item():.5f} at {l_at.item():.6f} emb {l_emb.item():.5f} total {total.item():.5f}")


if __name__ == "__main__":
    sys.exit(main())
