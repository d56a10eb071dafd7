"""How glass looks against what lies around it: brightness and texture of each glass piece's outline and
inside, relative to a ring of the surface just outside it.

    distillgrasp look DIR [--format cleargrasp|clearpose] [--size WxH] [--every K] [--glint]
                      [--json FILE] [--quiet]

Frames are resized to ``--size`` (default 320x240). For every glass piece (a connected part of the mask of at
least 150 pixels), with the luminance L (mean of R, G, B) and the ring 2-6 pixels outside all glass:

* ``outline``: median L of the piece's outermost 3 pixels over the ring's median L;
* ``inside``: median L of the rest of the piece over the ring's;
* ``highlight``: 90th percentile of L on the outline over the ring's median (rims that catch the light);
* ``texture``: standard deviation of L inside over the ring's (how much the glass scrambles the surface).

A ratio above 1 means lighter than the surface around. Overall figures are medians over the pieces.
``--glint`` measures the frames as training sees them with ``pipeline.train --glint 1`` (the glass lit as
under room lights, fixed draws), to compare a rendered set with real captures.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from pipeline.cli import HelpFormatter, parse_size, setup_logging, write_json
from pipeline.data.dataset import resize_frame
from pipeline.data.readers import FORMATS, discover
from pipeline.errors import DistillGraspError
from pipeline.metrics import glass_pieces

MIN_PIXELS = 150
KEYS = ("outline", "inside", "highlight", "texture")


def glass_look(rgb: np.ndarray, mask: np.ndarray) -> list[dict]:
    """The figures of every glass piece of one frame (rgb HxWx3 uint8, mask HxW bool)."""
    lum = rgb.astype(np.float64).mean(-1)
    ring_all = ndimage.binary_dilation(mask, iterations=6) & ~ndimage.binary_dilation(mask, iterations=2)
    pieces = []
    for piece in glass_pieces(mask):
        if piece.sum() < MIN_PIXELS:
            continue
        inner = ndimage.binary_erosion(piece, iterations=3)
        outline = piece & ~inner
        ring = ring_all & ndimage.binary_dilation(piece, iterations=6)
        if inner.sum() < 30 or ring.sum() < 30:
            continue
        around = max(float(np.median(lum[ring])), 1.0)
        spread = max(float(lum[ring].std()), 1e-3)
        pieces.append({"pixels": int(piece.sum()),
                       "outline": float(np.median(lum[outline])) / around,
                       "inside": float(np.median(lum[inner])) / around,
                       "highlight": float(np.percentile(lum[outline], 90)) / around,
                       "texture": float(lum[inner].std()) / spread})
    return pieces


def _glint_rgb(rgb: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    import torch

    from pipeline.train.augment import glint_glass

    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    out = glint_glass(x, m, 1.0, torch.Generator().manual_seed(seed))
    return (out[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def folder_look(path: str, fmt: str | None = None, size: tuple[int, int] = (320, 240), every: int = 1,
                glint: bool = False, progress: bool = True) -> dict:
    items = [(f, i) for f in discover(path, fmt) for i in range(len(f))][::every]
    pieces = []
    for n, (folder, i) in enumerate(tqdm(items, desc="look", unit="frame", disable=not progress)):
        frame = resize_frame(folder.load(i), *size)
        if frame.mask is None:
            raise DistillGraspError(f"{frame.name}: no glass mask to measure")
        rgb = _glint_rgb(frame.rgb, frame.mask, n) if glint else frame.rgb
        pieces += glass_look(rgb, frame.mask)
    out: dict = {"frames": len(items), "pieces": len(pieces), "glint": glint}
    for key in KEYS:
        out[key] = float(np.median([p[key] for p in pieces])) if pieces else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp look", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("folder", metavar="DIR", help="dataset folder (searched recursively)")
    ap.add_argument("--format", choices=FORMATS, default=None, help="data layout (default: recognised)")
    ap.add_argument("--size", metavar="WxH", default="320x240", help="frame size the figures are taken at")
    ap.add_argument("--every", metavar="K", type=int, default=1, help="measure every K-th frame")
    ap.add_argument("--glint", action="store_true", help="measure the frames as lit by training's --glint")
    ap.add_argument("--json", dest="json_out", metavar="FILE", default=None, help="write the figures to this JSON file")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        if args.every < 1:
            raise ValueError(f"--every must be at least 1, got {args.every}")
        result = folder_look(args.folder, args.format, parse_size(args.size), args.every, args.glint,
                             progress=not args.quiet)
    except (DistillGraspError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.folder}: {result['pieces']} glass pieces in {result['frames']} frames"
          + (" (with --glint)" if args.glint else ""))
    for key in KEYS:
        value = result[key]
        print(f"  {key:9s} {'-' if value is None else f'{value:.2f}'}")
    if args.json_out:
        write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(main())
