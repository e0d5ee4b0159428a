"""Use a kdtrain checkpoint in PyTorch: one import.

    import sys; sys.path.insert(0, "path/to/kdtrain/python")
    import kdtrain_torch
    net, meta = kdtrain_torch.load("run/student/averaged.safetensors")   # eval mode, float32, CPU
    emb = net(x)        # x: (N, 3, S, S) float32 NCHW, RGB, (pixel / 255 - 0.5) / 0.5; emb: (N, E), not normalized

`load` builds the ResNeXt-CBAM embedding network from the checkpoint's `model` metadata (kdtrain's
NetworkConfig, see Sources/Model/NetworkConfig.swift) with kdtrain's parameter names, loads its
weights and batch-norm running statistics, and returns the network and the checkpoint metadata
(`meta["preprocessing"]` is the JSON of the input preprocessing: input size, resize kernel, mean,
std, channel order). The margin head (`classifier.weight`) and optimizer state are not part of it.
Needs torch and safetensors. The structure is that of scripts/make_reference.py.
"""
import json
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open

__all__ = ["FaceNet", "load"]


class CBAM(nn.Module):
    """Channel attention (shared MLP on avg- and max-pooled maps, summed, sigmoid), then spatial
    attention (k x k conv over the channel max and mean, sigmoid)."""

    def __init__(self, c, r, k):
        super().__init__()
        self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear(c, c // r), relu=nn.ReLU(), fc2=nn.Linear(c // r, c)))
        self.spatial = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        x = x * torch.sigmoid(self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3))))[:, :, None, None]
        return x * torch.sigmoid(self.spatial(torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)))


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
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class FaceNet(nn.Module):
    """kdtrain's embedding network for a NetworkConfig dict (the `network` of the `model` metadata)."""

    def __init__(self, cfg):
        super().__init__()
        k, s, c0 = cfg["stemKernel"], cfg["stemStride"], cfg["stemChannels"]
        self.stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(cfg["inputChannels"], c0, k, s, k // 2, bias=False),
                                              bn=nn.BatchNorm2d(c0), prelu=nn.PReLU(c0)))
        layers, cin = [], c0
        side = (cfg["inputSize"] + 2 * (k // 2) - k) // s + 1
        for i, (d, cout, st) in enumerate(zip(cfg["depths"], cfg["widths"], cfg["strides"])):
            width = cfg["cardinality"] * cfg["groupWidth"] * 2 ** i
            layers.append(nn.Sequential(*[Block(cin if b == 0 else cout, cout, width, st if b == 0 else 1,
                                                cfg["cardinality"], cfg["cbamReduction"], cfg["cbamKernel"]) for b in range(d)]))
            cin, side = cout, (side - 1) // st + 1
        self.layers = nn.Sequential(*layers)
        self.embed = nn.Module()
        self.embed.bn = nn.BatchNorm2d(cin)
        self.embed.dropout = nn.Dropout(cfg["dropout"])
        self.embed.fc = nn.Linear(cin * side * side, cfg["embeddingSize"])
        self.embed.features = nn.BatchNorm1d(cfg["embeddingSize"])

    def forward(self, x):
        x = self.embed.dropout(self.embed.bn(self.layers(self.stem(x)))).flatten(1)
        return self.embed.features(self.embed.fc(x))


def load(path):
    """(network in eval mode with the checkpoint's weights, checkpoint metadata dict)."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "kdtrain-checkpoint-1":
            raise ValueError(f"{path}: not a kdtrain checkpoint (metadata format {meta.get('format')!r})")
        net = FaceNet(json.loads(meta["model"])["network"])
        want = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
        missing = sorted(want - set(f.keys()))
        if missing:
            raise ValueError(f"{path}: missing tensor {missing[0]} (and {len(missing) - 1} more)" if len(missing) > 1
                             else f"{path}: missing tensor {missing[0]}")
        state = {k: f.get_tensor(k) for k in want}
    net.load_state_dict(state, strict=False)   # strict but for num_batches_tracked, which kdtrain has no use for
    return net.eval(), meta
