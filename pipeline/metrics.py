"""Depth-completion metrics of the ClearGrasp protocol.

Over pixels with valid ground truth (inside the transparent mask, or everywhere), metres:
RMSE = sqrt(mean (p - g)^2), REL = mean |p - g| / g, MAE = mean |p - g|, and d105 / d110 / d125 = share of
pixels with max(p/g, g/p) below 1.05 / 1.10 / 1.25. Computed per image, then averaged over images.
A prediction with no depth (0) at a pixel is counted as it is (an error of the full depth), not skipped.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METRIC_KEYS = ("rmse", "rel", "mae", "d105", "d110", "d125")
MOVED_M = 0.01  # a depth changed by more than this was moved (repaired, or disturbed where it was right)


def depth_metrics(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> dict[str, float] | None:
    """Metrics of one image over ``region`` & valid ground truth; None when no pixel qualifies."""
    if pred.shape != gt.shape:
        raise ValueError(f"depth_metrics: prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    sel = np.isfinite(gt) & (gt > 0)
    if region is not None:
        sel &= region.astype(bool)
    if not sel.any():
        return None
    p = np.nan_to_num(pred[sel].astype(np.float64), nan=0.0)
    g = gt[sel].astype(np.float64)
    err = p - g
    ratio = np.maximum(p / g, g / np.maximum(p, 1e-9))
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "rel": float(np.mean(np.abs(err) / g)),
        "mae": float(np.mean(np.abs(err))),
        "d105": float(np.mean(ratio < 1.05)),
        "d110": float(np.mean(ratio < 1.10)),
        "d125": float(np.mean(ratio < 1.25)),
    }


def average(per_image: list[dict[str, float] | None]) -> dict[str, float] | None:
    rows = [m for m in per_image if m is not None]
    if not rows:
        return None
    return {k: float(np.mean([m[k] for m in rows])) for k in METRIC_KEYS}


def glass_pieces(mask: np.ndarray):
    """Each connected piece of a glass mask (HxW bool), as a boolean mask of the same shape."""
    labels, n = ndimage.label(mask)
    for j in range(1, n + 1):
        yield labels == j
