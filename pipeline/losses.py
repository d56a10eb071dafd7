"""Training losses. Every loss takes explicit validity masks; depths are Bx1xHxW metres, 0 = unknown."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def masked_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * w).sum() / w.sum().clamp_min(1.0)


def depth_edges(gt: torch.Tensor, jump: float = 0.02, radius: int = 2) -> torch.Tensor:
    """1 within ``radius`` pixels of a depth discontinuity of the truth (the depth range of a 3x3 window over
    valid pixels exceeds ``jump`` metres), else 0: object outlines, rims and walls, where a network's blur
    widens or lowers what a grasp sees."""
    valid = gt > 0
    hi = F.max_pool2d(gt, 3, 1, 1)  # unknown depth is 0: never the maximum next to a valid pixel
    lo = -F.max_pool2d(-torch.where(valid, gt, torch.full_like(gt, 1e3)), 3, 1, 1)
    edge = ((hi - lo) > jump).float()
    if radius:
        edge = F.max_pool2d(edge, 2 * radius + 1, 1, radius)
    return edge * valid.float()


def supervised_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, transparent_weight: float = 4.0,
                    grad_weight: float = 0.5, edge_weight: float = 1.0) -> torch.Tensor:
    """L1 on valid ground truth, ``transparent_weight`` times heavier on glass, ``edge_weight`` times heavier
    near depth discontinuities (``depth_edges``; 1 = no extra weight), plus a gradient-matching term."""
    valid = (gt > 0).float()
    w = valid * (1.0 + (transparent_weight - 1.0) * mask)
    if edge_weight != 1.0:
        w = w * (1.0 + (edge_weight - 1.0) * depth_edges(gt))
    loss = masked_mean((pred - gt).abs(), w)
    if grad_weight:
        (px, py), (gx, gy) = _grad(pred), _grad(gt)
        vx, vy = valid[..., :, 1:] * valid[..., :, :-1], valid[..., 1:, :] * valid[..., :-1, :]
        loss = loss + grad_weight * (masked_mean((px - gx).abs(), vx) + masked_mean((py - gy).abs(), vy))
    return loss


def gate_loss(logits: torch.Tensor, raw: torch.Tensor, gt: torch.Tensor, wrong_m: float = 0.01,
              positive_weight: float = 4.0) -> torch.Tensor:
    """Binary cross-entropy of a trust gate (``Student(gate=True)``): 1 where the camera's valid reading is more
    than ``wrong_m`` from the truth, 0 where it is right; pixels without a reading or without truth do not
    count. Wrong readings are rare and weigh ``positive_weight`` times more. ``logits`` may be larger than
    ``raw`` (padding): they are cropped to its size."""
    logits = logits[..., : raw.shape[-2], : raw.shape[-1]].float()
    both = ((raw > 0) & (gt > 0)).float()
    wrong = ((raw - gt).abs() > wrong_m).float()
    w = both * (1.0 + (positive_weight - 1.0) * wrong)
    return masked_mean(F.binary_cross_entropy_with_logits(logits, wrong, reduction="none"), w)


def silog_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, lam: float = 0.85) -> torch.Tensor:
    """Scale-invariant log error (Eigen et al.): sqrt(mean d^2 - lam * mean(d)^2), d = log p - log t."""
    d = torch.log(pred.clamp_min(1e-3)) - torch.log(target.clamp_min(1e-3))
    m1, m2 = masked_mean(d, valid), masked_mean(d * d, valid)
    return torch.sqrt((m2 - lam * m1 * m1).clamp_min(1e-8))


def ssim(x: torch.Tensor, y: torch.Tensor, c1: float = 1e-4, c2: float = 9e-4) -> torch.Tensor:
    """Per-pixel SSIM with 3x3 windows (inputs roughly unit scale)."""
    mx, my = F.avg_pool2d(x, 3, 1, 1), F.avg_pool2d(y, 3, 1, 1)
    sx = F.avg_pool2d(x * x, 3, 1, 1) - mx * mx
    sy = F.avg_pool2d(y * y, 3, 1, 1) - my * my
    sxy = F.avg_pool2d(x * y, 3, 1, 1) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sx + sy + c2))


def edge_loss(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between image gradients, optionally weighted per pixel by ``w``."""
    (px, py), (tx, ty) = _grad(pred), _grad(target)
    if w is None:
        return (px - tx).abs().mean() + (py - ty).abs().mean()
    return masked_mean((px - tx).abs(), w[..., :, 1:]) + masked_mean((py - ty).abs(), w[..., 1:, :])


@dataclass(frozen=True)
class DistillWeights:
    """Weights of the distillation terms (student vs teacher) and of the supervised term (student vs truth)."""

    silog: float = 1.0
    ssim: float = 1.0
    edge: float = 1.0
    supervised: float = 1.0
    depth: float = 0.0  # the supervised loss's form (L1, glass-weighted, + gradients) against the teacher
    transparent: float = 4.0  # the distillation terms weigh glass pixels this much more than the rest
    edges: float = 1.0  # the supervised term weighs pixels near depth discontinuities this much more


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor,
                      w: DistillWeights = DistillWeights()) -> tuple[torch.Tensor, dict[str, float]]:
    """Scale-invariant depth + structure (SSIM) + edge terms against the teacher, plus the supervised loss.

    The teacher terms weigh glass ``w.transparent`` times more than the rest, like the supervised loss: what
    the student should learn from the teacher is the glass; matching its every detail on the table would
    spend the small network's capacity where raw depth is already good."""
    teacher = teacher.detach()
    scale = teacher.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    s_n, t_n = student / scale, teacher / scale
    focus = 1.0 + (w.transparent - 1.0) * mask
    parts = {
        "silog": silog_loss(student, teacher, focus),
        "ssim": masked_mean(((1 - ssim(s_n, t_n)) / 2).clamp(0, 1), focus),
        "edge": edge_loss(s_n, t_n, focus),
        "supervised": supervised_loss(student, gt, mask, edge_weight=w.edges),
    }
    if w.depth:
        parts["depth"] = supervised_loss(student, teacher, mask)
    total = sum(getattr(w, k) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}
