"""One picture of a simulated scene for a person to look at: RGB, raw depth, ground truth, mask side by side.

    python -m sim.preview --seed S --out FILE.png [--sensor d435|l515] [--size WxH] [--index I]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from pipeline.types import RGBDFrame
from pipeline.cli import parse_size
from sim.generate import GenerateConfig, simulate_frame
from sim.sensor import SENSORS


def colorize_depth(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """HxW metres -> HxWx3 uint8 RGB (turbo colour map, black = no depth)."""
    t = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    img = cv2.applyColorMap((t * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1].copy()
    img[depth <= 0] = 0
    return img


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    scale = max(img.shape[1] / 640.0, 0.4)
    cv2.putText(img, text, (6, int(22 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, int(22 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return img


def preview_image(frame: RGBDFrame) -> np.ndarray:
    """RGB | raw depth | ground truth | mask over RGB, as one HxWx3 uint8 RGB image."""
    gt = frame.depth_gt if frame.depth_gt is not None else frame.depth
    valid = gt[gt > 0]
    lo, hi = (np.percentile(valid, 1), np.percentile(valid, 99)) if valid.size else (0.0, 1.0)
    panels = [_label(frame.rgb, "rgb"), _label(colorize_depth(frame.depth, lo, hi), "raw depth")]
    panels.append(_label(colorize_depth(gt, lo, hi), "ground truth"))
    if frame.mask is not None:
        overlay = frame.rgb.copy()
        overlay[frame.mask] = (0.4 * overlay[frame.mask] + 0.6 * np.array([255, 40, 40])).astype(np.uint8)
        panels.append(_label(overlay, "transparent mask"))
    return np.concatenate(panels, axis=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.preview", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="dataset seed")
    ap.add_argument("--index", type=int, default=0, help="frame index within the seed")
    ap.add_argument("--sensor", choices=SENSORS, default="d435")
    ap.add_argument("--size", default="640x480", help="image size WxH (default 640x480)")
    ap.add_argument("--out", required=True, help="PNG file to write")
    args = ap.parse_args(argv)
    try:
        w, h = parse_size(args.size)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    frame, _ = simulate_frame(GenerateConfig(seed=args.seed, sensor=args.sensor, width=w, height=h), args.index)
    img = preview_image(frame)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, img[..., ::-1])
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
