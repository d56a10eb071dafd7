"""Student: a light CNN encoder-decoder with consistent feature correlation modules (CFCM).

Two slim encoders (colour; filled depth plus validity) run to stride 16. At every scale a CFCM measures how
far the RGB and depth features agree (per-pixel cosine similarity of their projections, with the depth
validity), turns that into a gate, and keeps the reliable part of each: depth features where they agree with
the image (valid depth off the glass), RGB structure where they do not (glass, holes). The gated features are
fused with convolutions and passed to a U-Net decoder that predicts the depth correction.

The correction is predicted at half resolution and interpolated bilinearly to full resolution.

``gate=True`` adds a trust gate: a second output of the head, the probability that the camera's reading at a
pixel is wrong. The correction is applied in proportion to it (fully where the camera gave no reading), so
valid depth the network does not flag stays exactly as measured; the gate learns from the truth which
readings are wrong (``pipeline.losses.gate_loss``). A classifier pushed far from its decision boundary on the
table moves less on unfamiliar images than a regressor asked for exactly zero correction there. The logits
of the last forward pass are kept in ``last_gate_logits`` for that loss.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.models.common import DepthNet, conv_bn, zero_last


def split_conv(conv: nn.Conv2d, parts: list[torch.Tensor]) -> torch.Tensor:
    """``conv(torch.cat(parts, 1))`` computed as a sum of one convolution per part.

    The same weights and the same result; it keeps the wide feature maps apart from the one- and
    two-channel maps concatenated to them, whose odd channel counts would push a whole convolution off the
    fast blocked-layout path of onnxruntime and oneDNN (about twice slower per multiply-add).
    """
    out, start = None, 0
    for x in parts:
        stop = start + x.shape[1]
        y = F.conv2d(x, conv.weight[:, start:stop], None, conv.stride, conv.padding, conv.dilation, conv.groups)
        out = y if out is None else out + y
        start = stop
    if start != conv.in_channels:
        raise ValueError(f"split_conv: parts have {start} channels, the convolution takes {conv.in_channels}")
    return out if conv.bias is None else out + conv.bias.view(1, -1, 1, 1)


class CFCM(nn.Module):
    """Consistent feature correlation module."""

    def __init__(self, c: int):
        super().__init__()
        self.proj_r = nn.Conv2d(c, c, 1)
        self.proj_d = nn.Conv2d(c, c, 1)
        self.gate = nn.Sequential(conv_bn(2 * c + 2, c // 2, 3), nn.Conv2d(c // 2, 1, 3, padding=1))
        self.fuse = conv_bn(2 * c, c, 3)

    def forward(self, r: torch.Tensor, d: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        pr, pd = self.proj_r(r), self.proj_d(d)
        agree = F.cosine_similarity(pr, pd, dim=1, eps=1e-6).unsqueeze(1)
        # gate(cat([r, d, agree, valid])), with its first convolution split at the feature/map boundary
        g = torch.sigmoid(self.gate[1](self.gate[0][1:](split_conv(self.gate[0][0], [torch.cat([r, d], 1),
                                                                                torch.cat([agree, valid], 1)]))))
        return self.fuse(torch.cat([g * d, (1 - g) * r], 1)) + d


class Student(DepthNet):
    multiple = 16

    def __init__(self, widths=(16, 32, 64, 96), depth_widths=(8, 16, 32, 48), gate: bool = False):
        super().__init__()
        self.config = {"widths": list(widths), "depth_widths": list(depth_widths)}
        if gate:
            self.config["gate"] = True
        self.rgb_enc = nn.ModuleList()
        self.depth_enc = nn.ModuleList()
        self.depth_proj = nn.ModuleList()
        pr, pd = 3, 2
        for c, cd in zip(widths, depth_widths):
            self.rgb_enc.append(nn.Sequential(conv_bn(pr, c, 3, 2), conv_bn(c, c, 3)))
            self.depth_enc.append(nn.Sequential(conv_bn(pd, cd, 3, 2), conv_bn(cd, cd, 3)))
            self.depth_proj.append(nn.Conv2d(cd, c, 1))
            pr, pd = c, cd
        self.cfcm = nn.ModuleList([CFCM(c) for c in widths])
        self.dec = nn.ModuleList([conv_bn(widths[i + 1] + widths[i], widths[i], 3) for i in range(len(widths) - 1)])
        self.head = nn.Sequential(conv_bn(widths[0] + 5, 16, 3), nn.Conv2d(16, 1, 3, padding=1))
        zero_last(self.head)
        self.gate = None
        self.last_gate_logits: torch.Tensor | None = None
        if gate:
            # starts open (sigmoid(4) = 0.98), so the gate can be added to a trained student
            self.gate = nn.Conv2d(16, 1, 3, padding=1)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, 4.0)

    def core(self, x_rgb: torch.Tensor, x_depth: torch.Tensor) -> torch.Tensor:
        r, d = x_rgb, x_depth
        valid = x_depth[:, 1:2]
        fused = []
        for renc, denc, proj, cfcm in zip(self.rgb_enc, self.depth_enc, self.depth_proj, self.cfcm):
            r, d = renc(r), denc(d)
            valid = F.avg_pool2d(valid, 2)
            fused.append(cfcm(r, proj(d), valid))
        x = fused[-1]
        for i in range(len(fused) - 2, -1, -1):
            x = F.interpolate(x, size=fused[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.dec[i](torch.cat([x, fused[i]], 1))
        # The correction is predicted at half resolution (with the half-resolution inputs) and upsampled.
        small = [F.avg_pool2d(x_rgb, 2), F.avg_pool2d(x_depth, 2)]
        hidden = self.head[0][1:](split_conv(self.head[0][0], [x, torch.cat(small, 1)]))
        residual = F.interpolate(self.head[1](hidden), size=x_rgb.shape[-2:], mode="bilinear", align_corners=False)
        if self.gate is None:
            return residual
        logits = F.interpolate(self.gate(hidden), size=x_rgb.shape[-2:], mode="bilinear", align_corners=False)
        self.last_gate_logits = logits
        valid = x_depth[:, 1:2]
        return residual * (1.0 - valid * torch.sigmoid(-logits))  # gate 1 where there is no reading
