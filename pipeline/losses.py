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
    no_gt = (gt <= 0).float()
    if w.gaps_only:
        focus = focus * no_gt * (teacher > 0).float()  # a teacher target of 0 teaches nothing
    parts = {
        "silog": silog_loss(student, teacher, focus),
        "ssim": masked_mean(((1 - ssim(s_n, t_n)) / 2).clamp(0, 1), focus),
        "edge": edge_loss(s_n, t_n, focus),
        "supervised": supervised_loss(student, gt, mask, edge_weight=w.edges),
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


def channel_wise_kd(student: torch.Tensor, teacher: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """Channel-wise distillation (Shu et al., ICCV 2021) of BxCxHxW feature maps of one size: each channel's
    spatial softmax (temperature ``tau``) of the teacher is the target of the student's; the KL divergence,
    times tau^2, averaged over channels and images. It transfers where each channel responds, not its scale."""
    if student.shape != teacher.shape:
        raise ValueError(f"channel_wise_kd: student features {tuple(student.shape)} and teacher features "
                         f"{tuple(teacher.shape)} differ (adapt the channels, match the stride)")
    b, c = teacher.shape[:2]
    log_t = F.log_softmax(teacher.detach().reshape(b * c, -1) / tau, dim=1)
    log_s = F.log_softmax(student.reshape(b * c, -1) / tau, dim=1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * tau * tau


class FeatureDistillation(torch.nn.Module):
    """Feature-level distillation between decoder stages of the same stride.

    Forward hooks record the outputs of the named student and teacher modules on every forward pass; a 1x1
    convolution per pair (trained with the student, not shipped) maps the student's channels to the
    teacher's; ``loss()`` is the mean channel-wise KD over the pairs of the last forward passes. For the
    default networks: student ``dec.2`` (stride 8, 64 channels) to teacher ``crf.1`` (stride 8, 96), and
    ``dec.1`` (stride 4, 32) to ``crf.0`` (stride 4, 32): the depth the decoders are building, close to the
    output."""

    PAIRS = (("dec.2", "crf.1"), ("dec.1", "crf.0"))

    def __init__(self, student: torch.nn.Module, teacher: torch.nn.Module, pairs=PAIRS, tau: float = 4.0):
        super().__init__()
        self.pairs, self.tau = list(pairs), tau
        self._feats: dict[str, torch.Tensor] = {}
        s_mods, t_mods = dict(student.named_modules()), dict(teacher.named_modules())
        for s_name, t_name in self.pairs:
            if s_name not in s_mods or t_name not in t_mods:
                raise ValueError(f"feature distillation: no module {s_name!r} in the student or {t_name!r} "
                                 "in the teacher")
            s_mods[s_name].register_forward_hook(self._keep("s:" + s_name))
            t_mods[t_name].register_forward_hook(self._keep("t:" + t_name))
        # one probe frame through both networks (eval mode, no statistics updated) tells the channel counts
        modes = student.training, teacher.training
        student.eval(), teacher.eval()
        with torch.no_grad():
            rgb, depth = torch.rand(1, 3, 64, 64), torch.full((1, 1, 64, 64), 0.8)
            student(rgb, depth), teacher(rgb, depth)
        student.train(modes[0]), teacher.train(modes[1])
        self.adapters = torch.nn.ModuleList([
            torch.nn.Conv2d(self._feats["s:" + s].shape[1], self._feats["t:" + t].shape[1], 1) for s, t in self.pairs])
        self._feats.clear()

    def _keep(self, key: str):
        def hook(_module, _inputs, output):
            self._feats[key] = output
        return hook

    def loss(self) -> torch.Tensor:
        terms = []
        for (s_name, t_name), adapt in zip(self.pairs, self.adapters):
            s, t = adapt(self._feats["s:" + s_name]), self._feats["t:" + t_name]
            if s.shape[-2:] != t.shape[-2:]:  # padding to each network's multiple can differ by a cell
                h, w = min(s.shape[-2], t.shape[-2]), min(s.shape[-1], t.shape[-1])
                s, t = s[..., :h, :w], t[..., :h, :w]
            terms.append(channel_wise_kd(s, t, self.tau))
        self._feats.clear()
        return sum(terms) / len(terms)
