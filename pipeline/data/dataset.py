"""A torch ``Dataset`` over any folders the readers support, resized to a training size, with augmentation.

Each item is a dict of float32 tensors at ``size`` = (width, height):

    rgb        3xHxW in [0, 1]
    depth      1xHxW raw sensor depth, metres, 0 = none
    depth_gt   1xHxW ground truth, metres, 0 = unknown
    mask       1xHxW 1.0 on transparent pixels
    K          3x3 intrinsics at the output size (after any flip)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.data.readers import FrameFolder, discover
from pipeline.types import RGBDFrame


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentations applied on the fly (all off with ``AugmentConfig.none()``)."""

    hflip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.25  # +- relative
    contrast: float = 0.25
    saturation: float = 0.25
    hue_deg: float = 8.0
    blur: float = 0.2  # probability of a slight Gaussian blur
    rgb_noise: float = 0.02  # std of additive noise (0-1 scale)
    depth_dropout: float = 0.3  # probability of extra random holes in the raw depth

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(0, 0, 0, 0, 0, 0, 0, 0)


def resize_frame(frame: RGBDFrame, width: int, height: int) -> RGBDFrame:
    """Resize colour with area/linear filtering and depth and mask with nearest neighbour (the protocol's)."""
    if frame.shape == (height, width):
        return frame
    shrink = width < frame.intrinsics.width
    rgb = cv2.resize(frame.rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    near = cv2.INTER_NEAREST
    return RGBDFrame(
        rgb=rgb, depth=cv2.resize(frame.depth, (width, height), interpolation=near),
        intrinsics=frame.intrinsics.scaled(width, height), T_base_cam=frame.T_base_cam, timestamp=frame.timestamp,
        mask=None if frame.mask is None else cv2.resize(frame.mask.astype(np.uint8), (width, height),
                                                          interpolation=near) > 0,
        depth_gt=None if frame.depth_gt is None else cv2.resize(frame.depth_gt, (width, height), interpolation=near),
        name=frame.name, sensor=frame.sensor,
    )


def _color_jitter(rgb: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    img = rgb.astype(np.float32) / 255.0
    img *= 1 + rng.uniform(-aug.brightness, aug.brightness)
    mean = img.mean()
    img = (img - mean) * (1 + rng.uniform(-aug.contrast, aug.contrast)) + mean
    gray = img.mean(-1, keepdims=True)
    img = (img - gray) * (1 + rng.uniform(-aug.saturation, aug.saturation)) + gray
    if aug.hue_deg:
        hsv = cv2.cvtColor(img.clip(0, 1), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-aug.hue_deg, aug.hue_deg)) % 360.0
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < aug.blur:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.0))
    if aug.rgb_noise:
        img = img + rng.normal(0, aug.rgb_noise * rng.random(), img.shape).astype(np.float32)
    return img.clip(0, 1)


class DepthCompletionDataset(Dataset):
    """Frames from one or several folders (any supported layout, searched recursively)."""

    def __init__(self, folders, size: tuple[int, int] = (320, 240), augment: AugmentConfig | None = None,
                 fmt: str | None = None, seed: int = 0):
        if isinstance(folders, (str, Path)):
            folders = [folders]
        self.sources: list[FrameFolder] = [f for path in folders for f in discover(path, fmt)]
        self.index = [(s, i) for s, src in enumerate(self.sources) for i in range(len(src))]
        self.size = (int(size[0]), int(size[1]))
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (deterministic per (seed, epoch, item))."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def frame(self, idx: int) -> RGBDFrame:
        s, i = self.index[idx]
        return resize_frame(self.sources[s].load(i), *self.size)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        f = self.frame(idx)
        rgb = f.rgb.astype(np.float32) / 255.0
        depth, gt = f.depth.copy(), f.depth_gt.copy() if f.depth_gt is not None else np.zeros_like(f.depth)
        mask = f.mask.astype(np.float32) if f.mask is not None else np.zeros_like(f.depth)
        K = f.intrinsics.K.astype(np.float32)
        aug = self.augment
        if aug is not None:
            rng = np.random.default_rng([self.seed, self.epoch, idx])
            if rng.random() < aug.hflip:
                rgb, depth, gt, mask = (np.ascontiguousarray(a[:, ::-1]) for a in (rgb, depth, gt, mask))
                K[0, 2] = f.intrinsics.width - 1 - K[0, 2]
            rgb = _color_jitter((rgb * 255).astype(np.uint8), rng, aug)
            if rng.random() < aug.depth_dropout:
                h, w = depth.shape
                for _ in range(int(rng.integers(1, 6))):
                    cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
                    r = int(rng.integers(2, max(w // 20, 3)))
                    depth[max(cy - r, 0) : cy + r, max(cx - r, 0) : cx + r] = 0.0
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        return {"rgb": t(rgb).permute(2, 0, 1), "depth": t(depth)[None], "depth_gt": t(gt)[None],
                "mask": t(mask)[None], "K": t(K)}
