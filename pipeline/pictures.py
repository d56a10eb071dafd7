"""Pictures of depth: colour-mapped depth maps with a colour bar, and side-by-side panels with captions.

All images are HxWx3 uint8 RGB; ``save_png`` writes one. Depth 0 (no reading) is drawn black.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CAPTION_H = 22  # pixels above each panel for its caption
BAR_W = 64  # width of a colour bar with its labels


def depth_range(*depths: np.ndarray) -> tuple[float, float]:
    """A shared colour range (metres) for several depth maps: 0.5th-99.5th percentile of their valid readings."""
    valid = np.concatenate([d[(d > 0) & np.isfinite(d)].ravel() for d in depths if d is not None])
    if valid.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(valid, [0.5, 99.5])
    return float(lo), float(max(hi, lo + 1e-3))


def colourise(values: np.ndarray, lo: float, hi: float, colormap: int = cv2.COLORMAP_TURBO,
              invalid: np.ndarray | None = None) -> np.ndarray:
    """``values`` mapped onto ``colormap`` over [lo, hi]; pixels in ``invalid`` (default: values <= 0 or not
    finite) black."""
    if invalid is None:
        invalid = ~(np.isfinite(values) & (values > 0))
    scaled = np.clip((np.nan_to_num(values) - lo) / (hi - lo), 0, 1)
    img = cv2.applyColorMap((scaled * 255).astype(np.uint8), colormap)[..., ::-1].copy()
    img[invalid] = 0
    return img


def _text_scale(height: int) -> float:
    """Lettering grows with the picture: 1 for frames up to 240 rows high."""
    return max(1.0, height / 240)


def colour_bar(height: int, lo: float, hi: float, unit: str = "m", colormap: int = cv2.COLORMAP_TURBO) -> np.ndarray:
    """A vertical colour bar, ``hi`` at the top, with five labelled ticks."""
    k = _text_scale(height)
    bar = np.full((height, int(BAR_W * k), 3), 255, np.uint8)
    x0, x1 = int(4 * k), int(18 * k)
    ramp = np.linspace(1, 0, height)[:, None].repeat(x1 - x0, axis=1)
    bar[:, x0:x1] = cv2.applyColorMap((ramp * 255).astype(np.uint8), colormap)[..., ::-1]
    thick = max(1, round(k))
    for i in range(5):
        y = int(round(i * (height - 1) / 4))
        value = hi - i * (hi - lo) / 4
        cv2.line(bar, (x1, y), (int(22 * k), y), (0, 0, 0), thick)
        cv2.putText(bar, f"{value:.2f}{unit}", (int(24 * k), min(max(y + int(4 * k), int(10 * k)), height - 2)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.32 * k, (0, 0, 0), thick, cv2.LINE_AA)
    return bar


def captioned(img: np.ndarray, caption: str, height: int | None = None) -> np.ndarray:
    """``img`` with ``caption`` written in a white band above it (lettering sized for a panel ``height`` rows
    high, default ``img``'s)."""
    k = _text_scale(height or img.shape[0])
    band_h = int(CAPTION_H * k)
    band = np.full((band_h, img.shape[1], 3), 255, np.uint8)
    cv2.putText(band, caption, (int(4 * k), band_h - int(7 * k)), cv2.FONT_HERSHEY_SIMPLEX, 0.42 * k, (0, 0, 0),
                max(1, round(k)), cv2.LINE_AA)
    return np.vstack([band, img])


def row(panels: list[tuple[str, np.ndarray]], bar: np.ndarray | None = None, title: str | None = None) -> np.ndarray:
    """Captioned panels of one height side by side, an optional colour bar at the right, an optional title."""
    h = max(img.shape[0] for _, img in panels)
    parts = [captioned(_pad(img, h), caption) for caption, img in panels]
    if bar is not None:
        parts.append(captioned(_pad(bar, h), "", h))
    gap = int(4 * _text_scale(h))
    out = np.hstack([np.hstack([p, np.full((p.shape[0], gap, 3), 255, np.uint8)]) for p in parts])
    if title:
        out = captioned(out, title, h)
    return out


def _pad(img: np.ndarray, h: int) -> np.ndarray:
    if img.shape[0] == h:
        return img
    return np.vstack([img, np.full((h - img.shape[0], *img.shape[1:]), 255, np.uint8)])


def depth_panels(rgb: np.ndarray, raw: np.ndarray, completed: np.ndarray, truth: np.ndarray | None = None,
                 title: str | None = None, completed_name: str = "repaired depth") -> np.ndarray:
    """RGB, raw depth, completed depth (and ground truth with the absolute error, when given), the depth maps
    on one colour scale with its bar; the error on its own bar (0-10 cm)."""
    lo, hi = depth_range(raw, completed, truth)
    panels = [("RGB", rgb), ("raw depth", colourise(raw, lo, hi)), (completed_name, colourise(completed, lo, hi))]
    if truth is None:
        return row(panels, colour_bar(rgb.shape[0], lo, hi), title)
    panels.append(("ground truth", colourise(truth, lo, hi)))
    valid = truth > 0
    err = np.where(valid, np.abs(completed - truth), 0.0)
    depth_row = row(panels, colour_bar(rgb.shape[0], lo, hi), title)
    err_img = colourise(err, 0.0, 0.10, cv2.COLORMAP_INFERNO, invalid=~valid)
    error_row = row([("|error| (m)", err_img)], colour_bar(rgb.shape[0], 0.0, 0.10))
    width = max(depth_row.shape[1], error_row.shape[1])
    return np.vstack([_pad_w(depth_row, width), _pad_w(error_row, width)])


def _pad_w(img: np.ndarray, w: int) -> np.ndarray:
    return np.hstack([img, np.full((img.shape[0], w - img.shape[1], 3), 255, np.uint8)]) if img.shape[1] < w else img


def save_png(img: np.ndarray, path: str | Path) -> Path:
    """Write an RGB image as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(img[..., ::-1])):
        raise OSError(f"could not write {path}")
    return path
