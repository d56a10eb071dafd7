"""Pieces both networks share: depth normalisation, the initial hole fill, and the residual output.

Every network sees the raw depth and predicts a *correction*: ``out = init + scale * residual``, where
``init`` is the raw depth with its holes filled by a fast push-pull pyramid and ``scale`` is the mean
valid raw depth of the frame. Valid raw depth off the glass therefore survives unless the network has a
reason to change it, and the network works in scale-free units whatever the camera distance.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

MIN_DEPTH_M = 0.05
MAX_DEPTH_M = 10.0


def push_pull_fill(depth: torch.Tensor, levels: int = 7) -> torch.Tensor:
    """Fill zeros in Bx1xHxW depth by valid-weighted averages from coarser pyramid levels."""
    valid = (depth > 0).float()
    pyr = [(depth * valid, valid)]
    for _ in range(levels):
        d, w = pyr[-1]
        if min(d.shape[-2:]) < 2:
            break
        pyr.append((F.avg_pool2d(d, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    d, w = pyr[-1]
    filled = d / w.clamp_min(1e-6)
    for d, w in reversed(pyr[:-1]):
        up = F.interpolate(filled, size=d.shape[-2:], mode="bilinear", align_corners=False)
        est = d / w.clamp_min(1e-6)
        filled = torch.where(w > 0.999, est, w * est + (1 - w) * up)
    return torch.where(depth > 0, depth, filled)


def depth_scale(depth: torch.Tensor) -> torch.Tensor:
    """Per-image mean of valid depth (Bx1x1x1); 1 m for an image with no valid depth."""
    valid = (depth > 0).float()
    n = valid.sum(dim=(1, 2, 3), keepdim=True)
    mean = depth.sum(dim=(1, 2, 3), keepdim=True) / n.clamp_min(1.0)
    return torch.where(n > 0, mean, torch.ones_like(mean))


class DepthNet(nn.Module):
    """Base: prepares normalised inputs and applies the residual output. Subclasses implement ``core``.

    forward(rgb Bx3xHxW in [0, 1], depth Bx1xHxW metres, 0 = none) -> Bx1xHxW metres.
    """

    multiple: int = 32  # input sides are padded to a multiple of this

    def prepare(self, rgb: torch.Tensor, depth: torch.Tensor):
        scale = depth_scale(depth)
        init = push_pull_fill(depth)
        valid = (depth > 0).float()
        mean = rgb.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = rgb.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        x_rgb = (rgb - mean) / std
        x_depth = torch.cat([init / scale - 1.0, valid], dim=1)
        return x_rgb, x_depth, init, scale

    def core(self, x_rgb: torch.Tensor, x_depth: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        h, w = depth.shape[-2:]
        x_rgb, x_depth, init, scale = self.prepare(rgb, depth)
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x_rgb = F.pad(x_rgb, (0, pw, 0, ph), mode="replicate")
            x_depth = F.pad(x_depth, (0, pw, 0, ph), mode="replicate")
        residual = self.core(x_rgb, x_depth)[..., :h, :w]
        return (init + scale * residual).clamp(MIN_DEPTH_M, MAX_DEPTH_M)


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True,
            dilation: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation=dilation, groups=groups,
                                         bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c, c), conv_bn(c, c, act=False))

    def forward(self, x):
        return F.relu(x + self.body(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def zero_last(seq: nn.Sequential) -> None:
    """Zero the last convolution so an untrained network outputs exactly the filled raw depth."""
    nn.init.zeros_(seq[-1].weight)
    nn.init.zeros_(seq[-1].bias)
