"""Training losses. Every loss takes explicit validity masks; depths are Bx1xHxW metres, 0 = unknown."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def masked_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * w).sum() / w.sum().clamp_min(1.0)


def supervised_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, transparent_weight: float = 4.0,
                    grad_weight: float = 0.5) -> torch.Tensor:
    """L1 on valid ground truth, ``transparent_weight`` times heavier on glass, plus a gradient-matching term."""
    valid = (gt > 0).float()
    w = valid * (1.0 + (transparent_weight - 1.0) * mask)
    loss = masked_mean((pred - gt).abs(), w)
    if grad_weight:
        (px, py), (gx, gy) = _grad(pred), _grad(gt)
        vx, vy = valid[..., :, 1:] * valid[..., :, :-1], valid[..., 1:, :] * valid[..., :-1, :]
        loss = loss + grad_weight * (masked_mean((px - gx).abs(), vx) + masked_mean((py - gy).abs(), vy))
    return loss


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


def teacher_bounded_loss(student: torch.Tensor, teacher: torch.Tensor, gt: torch.Tensor,
                         w: torch.Tensor) -> torch.Tensor:
    """Teacher-bounded regression (Chen et al., NeurIPS 2017): L1 to the truth, only on the pixels where the
    student is still further from the truth than the teacher.

    The teacher marks which errors a network can remove; the student is pushed harder there, and never
    towards the teacher's own mistakes. The mean runs over all valid pixels (weights ``w``), so the term
    fades as the student catches up with the teacher."""
    valid = (gt > 0).float()
    err_s, err_t = (student - gt).abs(), (teacher.detach() - gt).abs()
    behind = (err_s > err_t).float()
    return masked_mean(err_s * behind, w * valid)


@dataclass(frozen=True)
class DistillWeights:
    """Weights of the distillation terms (student vs teacher) and of the supervised term (student vs truth)."""

    silog: float = 1.0
    ssim: float = 1.0
    edge: float = 1.0
    supervised: float = 1.0
    depth: float = 0.0  # the supervised loss's form (L1, glass-weighted, + gradients) against the teacher
    transparent: float = 4.0  # the distillation terms weigh glass pixels this much more than the rest
    bounded: float = 0.0  # teacher-bounded term: extra L1 to the truth where the student is worse than the teacher
    gaps_only: bool = False  # the teacher terms only where there is no ground truth (frames without it, holes)


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
    no_gt = (gt <= 0).float()
    if w.gaps_only:
        focus = focus * no_gt * (teacher > 0).float()  # a teacher target of 0 teaches nothing
    parts = {
        "silog": silog_loss(student, teacher, focus),
        "ssim": masked_mean(((1 - ssim(s_n, t_n)) / 2).clamp(0, 1), focus),
        "edge": edge_loss(s_n, t_n, focus),
        "supervised": supervised_loss(student, gt, mask),
    }
    if w.depth:  # supervised_loss skips pixels whose target is 0: with gaps_only, those with ground truth
        parts["depth"] = supervised_loss(student, teacher * no_gt if w.gaps_only else teacher, mask)
    if w.bounded:
        parts["bounded"] = teacher_bounded_loss(student, teacher, gt, focus)
    if w.gaps_only:  # each teacher term is a mean over the gaps: weigh it by the gaps' share of the batch
        share = no_gt.mean()
        parts = {k: v if k in ("supervised", "bounded") else v * share for k, v in parts.items()}
    total = sum(getattr(w, k) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}
