"""What training does to frames and crops: JPEG re-encoding, random crops, mirroring, light on the glass, colour
jitter, noise and blur. Every random draw comes from the generator passed in, in a fixed order."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pipeline.train.batch import Batch


def reencode_jpeg(colour: np.ndarray, share: float, index: int) -> np.ndarray:
    """``colour`` (HxWx3 uint8) re-encoded as JPEG at a random quality (40-95), as real captures are, for a
    ``share`` of the frames; the draw is fixed per frame ``index``."""
    if share <= 0:
        return colour
    rng = np.random.default_rng([7, index])
    if rng.random() >= share:
        return colour
    ok, buf = cv2.imencode(".jpg", colour, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else colour


def _uniform(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Uniform 0-1 draws of ``shape`` from ``gen``, on its device (the frames' device)."""
    return torch.rand(shape, generator=gen, device=gen.device)


def binomial_blur(x: torch.Tensor) -> torch.Tensor:
    """Each channel of ``x`` (BxCxHxW) smoothed by the 3x3 binomial kernel, edges replicated."""
    k = torch.tensor([0.25, 0.5, 0.25], dtype=x.dtype, device=x.device)
    c = x.shape[1]
    kernel = (k[:, None] * k[None, :]).expand(c, 1, 3, 3).contiguous()
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)


def glint_glass(rgb: torch.Tensor, mask: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
    """In a ``share`` of the crops the glass (``mask``) is lit as under a room's ceiling lights, which rendered
    glass rarely is: a veil of reflected light over it (0-12% towards white) and a bright highlight along the
    part of its outline that faces a random direction."""
    b = rgb.shape[0]
    soft = binomial_blur(binomial_blur(mask))
    rim = 4 * soft * (1 - soft)  # 1 on the outline, 0 inside and outside
    gy, gx = soft[..., 2:, 1:-1] - soft[..., :-2, 1:-1], soft[..., 1:-1, 2:] - soft[..., 1:-1, :-2]
    angle = 2 * torch.pi * _uniform(gen, b, 1, 1, 1)
    facing = F.pad(-(gx * torch.cos(angle) + gy * torch.sin(angle)), (1, 1, 1, 1))
    facing = (facing / facing.abs().amax((2, 3), keepdim=True).clamp_min(1e-6)).clamp_min(0)
    chosen = _uniform(gen, b, 1, 1, 1) < share
    veil = chosen * 0.12 * _uniform(gen, b, 1, 1, 1)
    shine = chosen * (0.15 + 0.35 * _uniform(gen, b, 1, 1, 1))
    light = (veil * soft + shine * rim * (0.3 + 0.7 * facing)).clamp(0, 1)
    return rgb + light * (1 - rgb)


def random_crop(batch: Batch, crop: tuple[int, int], gen: torch.Generator) -> Batch:
    """One random ``crop`` (width, height) window, the same for every frame and map of ``batch``."""
    cw, ch = crop
    h, w = batch.rgb.shape[-2:]
    y = int(torch.randint(0, h - ch + 1, (1,), generator=gen, device=gen.device))
    x = int(torch.randint(0, w - cw + 1, (1,), generator=gen, device=gen.device))
    return batch.apply(lambda t: t[..., y : y + ch, x : x + cw])


@dataclass(frozen=True)
class Augment:
    """The training augmentation of a cropped batch: a random half of the frames mirrored (every map), then
    on the colour only: the glass lit in a ``glint`` share (``glint_glass``), brightness, tint and saturation
    jitter, sensor noise, and a ``blur`` share softened (defocus)."""

    blur: float = 0.0
    glint: float = 0.0

    def __call__(self, batch: Batch, gen: torch.Generator) -> Batch:
        b = len(batch)
        flip = (_uniform(gen, b) < 0.5).view(b, 1, 1, 1)
        batch = batch.apply(lambda t: torch.where(flip, t.flip(-1), t))
        return replace(batch, rgb=self.colour(batch.rgb, batch.mask, gen))

    def colour(self, rgb: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b = rgb.shape[0]
        if self.glint > 0:
            rgb = glint_glass(rgb, mask, self.glint, gen)
        gain = 1 + 0.25 * (_uniform(gen, b, 1, 1, 1) * 2 - 1)
        tint = 1 + 0.06 * (_uniform(gen, b, 3, 1, 1) * 2 - 1)
        gray = rgb.mean(1, keepdim=True)
        sat = 1 + 0.3 * (_uniform(gen, b, 1, 1, 1) * 2 - 1)
        rgb = (gray + (rgb - gray) * sat) * gain * tint
        strength = 0.02 * _uniform(gen, b, 1, 1, 1)  # drawn before the noise, as it always was
        rgb = rgb + strength * torch.randn(rgb.shape, generator=gen, device=gen.device)
        if self.blur > 0:
            soft = _uniform(gen, b) < self.blur
            rgb = torch.where(soft.view(b, 1, 1, 1), binomial_blur(rgb), rgb)
        return rgb.clamp(0, 1)
