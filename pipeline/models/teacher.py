"""Teacher: RGB and depth encoders correlated by position correlation blocks, NeWCRF-style decoder.

Encoders: two CNN pyramids (strides 4, 8, 16, 32), one on colour, one on the filled depth and its validity.

PCB (position correlation block), at every scale: window attention whose queries and keys come from the
RGB features and whose values come from the depth features, with a learned relative-position bias. RGB thus
decides from where in the window depth is carried, e.g. from the table around a glass into the glass.

Decoder (after NeWCRFs): starting from a pyramid-pooling module on the coarsest fused features, each scale
runs a window fully-connected CRF step: attention whose queries and keys come from that scale's fused
features and whose values are the current prediction features, so every pixel's estimate is refined by the
estimates of the pixels it resembles. Predictions are upsampled by pixel shuffle, coarse to fine, and a
last full-resolution refinement sharpens the residual at image edges.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.models.common import DepthNet, ResBlock, conv_bn, zero_last


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """BxCxHxW -> (B*nW) x (w*w) x C."""
    b, c, h, wd = x.shape
    x = x.reshape(b, c, h // w, w, wd // w, w).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, w * w, c)


def window_merge(x: torch.Tensor, w: int, b: int, h: int, wd: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.view(b, h // w, wd // w, w, w, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, wd)


class WindowCrossAttention(nn.Module):
    """Multi-head attention inside non-overlapping w x w windows (optionally shifted by w/2).

    queries and keys from ``guide``, values from ``value``; a learned relative-position bias per head.
    """

    def __init__(self, dim: int, heads: int, window: int, shift: bool = False):
        super().__init__()
        self.heads, self.window, self.shift = heads, window, shift
        self.scale = (dim // heads) ** -0.5
        self.qk = nn.Linear(dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.zeros(heads, (2 * window - 1) ** 2))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("rel_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def forward(self, guide: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        b, c, h, wd = guide.shape
        w = self.window
        pad_h, pad_w = (-h) % w, (-wd) % w
        if pad_h or pad_w:
            guide = F.pad(guide, (0, pad_w, 0, pad_h))
            value = F.pad(value, (0, pad_w, 0, pad_h))
        hp, wp = guide.shape[-2:]
        if self.shift:
            guide = torch.roll(guide, (-w // 2, -w // 2), (2, 3))
            value = torch.roll(value, (-w // 2, -w // 2), (2, 3))
        g, v = window_partition(guide, w), window_partition(value, w)
        n = w * w
        q, k = self.qk(g).view(-1, n, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        v = self.v(v).view(-1, n, self.heads, c // self.heads).transpose(1, 2)
        attn = (q * self.scale) @ k.transpose(-2, -1) + self.bias[:, self.rel_index].unsqueeze(0)
        out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c)
        out = window_merge(self.proj(out), w, b, hp, wp)
        if self.shift:
            out = torch.roll(out, (w // 2, w // 2), (2, 3))
        return out[..., :h, :wd]


class ChannelNorm(nn.Module):
    """LayerNorm over channels of a BxCxHxW map."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, c)

    def forward(self, x):
        return self.norm(x)


class FFN(nn.Module):
    def __init__(self, c: int, ratio: int = 2):
        super().__init__()
        self.net = nn.Sequential(ChannelNorm(c), nn.Conv2d(c, c * ratio, 1), nn.GELU(), nn.Conv2d(c * ratio, c, 1))

    def forward(self, x):
        return x + self.net(x)


class PCB(nn.Module):
    """Position correlation block: RGB-guided window attention over depth features (+ shifted windows)."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.norm_rgb, self.norm_depth = ChannelNorm(dim), ChannelNorm(dim)
        self.attn = nn.ModuleList([WindowCrossAttention(dim, heads, window, shift=s) for s in (False, True)])
        self.ffn = nn.ModuleList([FFN(dim), FFN(dim)])
        self.rgb_skip = nn.Conv2d(dim, dim, 1)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        x = depth
        g = self.norm_rgb(rgb)
        for attn, ffn in zip(self.attn, self.ffn):
            x = x + attn(g, self.norm_depth(x))
            x = ffn(x)
        return x + self.rgb_skip(rgb)


class CRFBlock(nn.Module):
    """NeWCRF-style window CRF step: affinities from features, messages from the prediction features."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.norm_f, self.norm_p = ChannelNorm(dim), ChannelNorm(dim)
        self.attn = nn.ModuleList([WindowCrossAttention(dim, heads, window, shift=s) for s in (False, True)])
        self.ffn = nn.ModuleList([FFN(dim), FFN(dim)])

    def forward(self, feats: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        f = self.norm_f(feats)
        for attn, ffn in zip(self.attn, self.ffn):
            pred = pred + attn(f, self.norm_p(pred))
            pred = ffn(pred)
        return pred


class PyramidPooling(nn.Module):
    def __init__(self, c: int, bins=(1, 2, 3, 6)):
        super().__init__()
        self.bins = bins
        self.stages = nn.ModuleList([nn.Conv2d(c, c // 4, 1) for _ in bins])
        self.out = conv_bn(c + len(bins) * (c // 4), c)

    def forward(self, x):
        h, w = x.shape[-2:]
        pooled = [F.interpolate(conv(adaptive_avg_pool(x, b)), size=(h, w), mode="bilinear", align_corners=False)
                  for b, conv in zip(self.bins, self.stages)]
        return self.out(torch.cat([x, *pooled], 1))


def _pool_matrix(n: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """bins x n averaging matrix with adaptive pooling's bin edges: floor(i n / b) to ceil((i + 1) n / b)."""
    m = torch.zeros(bins, n, dtype=like.dtype, device=like.device)
    for i in range(bins):
        lo, hi = (i * n) // bins, -((-(i + 1) * n) // bins)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, bins)`` as two matrix products, which ONNX export traces at any input size."""
    h, w = (int(v) for v in x.shape[-2:])
    return _pool_matrix(h, bins, x) @ x @ _pool_matrix(w, bins, x).T


def _encoder(cin: int, widths: tuple[int, ...], blocks: int) -> nn.ModuleList:
    stages = nn.ModuleList()
    prev = cin
    for i, c in enumerate(widths):
        stride_layers = [conv_bn(prev, c, 3, 2)] + ([conv_bn(c, c, 3, 2)] if i == 0 else [])
        stages.append(nn.Sequential(*stride_layers, *[ResBlock(c) for _ in range(blocks)]))
        prev = c
    return stages


class Teacher(DepthNet):
    def __init__(self, widths=(32, 96, 160, 256), heads=(1, 3, 5, 8), window: int = 8, blocks: int = 1):
        super().__init__()
        self.config = {"widths": list(widths), "heads": list(heads), "window": window, "blocks": blocks}
        self.rgb_enc = _encoder(3, widths, blocks)
        self.depth_enc = _encoder(2, widths, max(blocks - 1, 1))
        self.pcb = nn.ModuleList([PCB(c, h, window) for c, h in zip(widths, heads)])
        self.ppm = PyramidPooling(widths[-1])
        self.crf = nn.ModuleList([CRFBlock(c, h, window) for c, h in zip(widths, heads)])
        # pixel-shuffle upsampling from scale i+1 to scale i
        self.up = nn.ModuleList([nn.Sequential(nn.Conv2d(widths[i + 1], widths[i] * 4, 1), nn.PixelShuffle(2))
                                 for i in range(len(widths) - 1)])
        self.head = nn.Sequential(conv_bn(widths[0], 32), nn.Conv2d(32, 16, 3, padding=1))
        self.refine = nn.Sequential(conv_bn(16 + 3 + 2, 32), conv_bn(32, 32), nn.Conv2d(32, 1, 3, padding=1))
        zero_last(self.refine)

    def core(self, x_rgb: torch.Tensor, x_depth: torch.Tensor) -> torch.Tensor:
        r, d = x_rgb, x_depth
        fused = []
        for rgb_stage, depth_stage, pcb in zip(self.rgb_enc, self.depth_enc, self.pcb):
            r, d = rgb_stage(r), depth_stage(d)
            fused.append(pcb(r, d))
        pred = self.ppm(fused[-1])
        for i in range(len(fused) - 1, -1, -1):
            pred = self.crf[i](fused[i], pred)
            if i > 0:
                pred = self.up[i - 1](pred) + fused[i - 1]
        x = F.interpolate(self.head(pred), size=x_rgb.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(torch.cat([x, x_rgb, x_depth], 1))
