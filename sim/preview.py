"""One picture of a simulated scene for a person to look at: RGB, raw depth, ground truth, mask side by side.

    distillgrasp preview --image FILE.png [--seed S] [--index I] [--sensor d435|l515] [--size WxH]
                         [--renderer fast|mitsuba] [--spp N] [--stereo] [--style tabletop|lab] [--room]
                         [--max-tilt DEG] [--compare DIR]

``--compare DIR`` adds a row with the first frame of a real capture folder (any layout the readers know, e.g.
``../shared/data/cleargrasp``) drawn the same way, so simulated and real glass can be judged side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from pipeline.cli import HelpFormatter, parse_size, setup_logging
from pipeline.data.dataset import resize_frame
from pipeline.data.readers import discover
from pipeline.errors import DataFormatError
from pipeline.types import SIM_SENSORS, RGBDFrame
from sim.generate import DEFAULT_MAX_TILT, RENDERERS, STYLES, GenerateConfig, simulate_frame


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
    ap = argparse.ArgumentParser(prog="distillgrasp preview", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--seed", metavar="S", type=int, default=0, help="dataset seed")
    ap.add_argument("--index", metavar="I", type=int, default=0, help="frame index within the seed")
    ap.add_argument("--sensor", choices=SIM_SENSORS, default="d435", help="camera model")
    ap.add_argument("--size", metavar="WxH", default="640x480", help="image size")
    ap.add_argument("--renderer", choices=RENDERERS, default="fast", help="fast or mitsuba (path traced)")
    ap.add_argument("--spp", metavar="N", type=int, default=8, help="mitsuba samples per pixel")
    ap.add_argument("--stereo", action="store_true", help="mitsuba: raw depth from a rendered stereo pair")
    ap.add_argument("--max-tilt", metavar="DEG", type=float, default=DEFAULT_MAX_TILT,
                    help="largest camera tilt from straight down, degrees")
    ap.add_argument("--style", choices=STYLES, default="tabletop", help="scene style (see sim.generate)")
    ap.add_argument("--room", action="store_true", default=None, help="mitsuba: the bright room (see sim.generate)")
    ap.add_argument("--compare", metavar="DIR", help="folder of real frames: add a row with its first frame")
    ap.add_argument("--image", metavar="FILE.png", required=True, help="PNG file to write")
    args = ap.parse_args(argv)
    try:
        w, h = parse_size(args.size)
        cfg = GenerateConfig(seed=args.seed, sensor=args.sensor, width=w, height=h, renderer=args.renderer,
                             spp=args.spp, stereo=args.stereo, views=1, max_tilt=args.max_tilt,
                             style=args.style, room=args.room)
        real = resize_frame(discover(args.compare)[0].load(0), w, h) if args.compare else None
    except (ValueError, DataFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    frame, _ = simulate_frame(cfg, args.index)
    img = preview_image(frame)
    if real is not None:
        row = preview_image(real)
        pad = np.zeros((row.shape[0], max(img.shape[1] - row.shape[1], 0), 3), np.uint8)
        img = np.concatenate([img, np.concatenate([row, pad], 1)[:, : img.shape[1]]], 0)
    Path(args.image).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.image, img[..., ::-1])
    print(f"wrote {args.image} ({img.shape[1]}x{img.shape[0]})")
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(main())
