"""How a depth sensor fails on glass: statistics over transparent pixels with valid ground truth.

    distillgrasp stats DIR [--format cleargrasp|clearpose] [--json FILE] [--quiet]

Per frame, over transparent pixels whose ground truth is valid:

* ``missing``: share with no raw depth;
* ``behind``: of those with raw depth, the share read more than 1 cm behind (deeper than) the truth;
* ``median_error_mm``: median of (raw - truth) over those with raw depth, in millimetres (positive = too deep).

The overall figures are the means of the per-frame figures (frames without valid transparent pixels are
skipped and counted).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.cli import HelpFormatter, setup_logging, write_json
from pipeline.data.readers import FORMATS, discover
from pipeline.errors import DistillGraspError

BEHIND_THRESHOLD_M = 0.01


def glass_failure_stats(raw: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict | None:
    """Statistics of one frame (depths in metres, 0 = none). None when no transparent pixel has ground truth."""
    sel = mask & (gt > 0)
    n = int(sel.sum())
    if n == 0:
        return None
    r, g = raw[sel], gt[sel]
    valid = r > 0
    err = r[valid] - g[valid]
    return {
        "pixels": n,
        "missing": float(1.0 - valid.mean()),
        "behind": float((err > BEHIND_THRESHOLD_M).mean()) if err.size else float("nan"),
        "median_error_mm": float(np.median(err) * 1000.0) if err.size else float("nan"),
    }


def summarise(per_frame: list[dict]) -> dict:
    """Overall figures: means of the per-frame figures (NaN-aware)."""
    out: dict = {"frames": len(per_frame)}
    for key in ("missing", "behind", "median_error_mm"):
        vals = np.array([f[key] for f in per_frame], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[key] = float(vals.mean()) if vals.size else None
        out[key + "_range"] = [float(vals.min()), float(vals.max())] if vals.size else None
    return out


def folder_stats(path: str | Path, fmt: str | None = None, progress: bool = True) -> dict:
    per_frame, skipped = [], 0
    folders = discover(path, fmt)
    total = sum(len(f) for f in folders)
    with tqdm(total=total, desc="stats", unit="frame", disable=not progress) as bar:
        for folder in folders:
            for i in range(len(folder)):
                frame = folder.load(i)
                s = glass_failure_stats(frame.depth, frame.depth_gt, frame.mask)
                if s is None:
                    skipped += 1
                else:
                    per_frame.append({"frame": frame.name, **s})
                bar.update(1)
    result = summarise(per_frame)
    result["skipped_frames"] = skipped
    result["per_frame"] = per_frame
    return result


def _pct(x) -> str:
    return "   n/a" if x is None or not np.isfinite(x) else f"{x:6.1%}"


def _line(label: str, s: dict) -> str:
    med = s["median_error_mm"]
    med = "    n/a" if med is None or not np.isfinite(med) else f"{med:+7.1f}"
    return f"{label:>28s}  missing {_pct(s['missing'])}  behind {_pct(s['behind'])}  median error {med} mm"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp stats", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("folder", metavar="DIR", help="dataset folder (searched recursively)")
    ap.add_argument("--format", choices=FORMATS, default=None, help="data layout (default: recognised)")
    ap.add_argument("--json", dest="json_out", metavar="FILE", default=None,
                    help="write the statistics to this JSON file")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        result = folder_stats(args.folder, args.format, progress=not args.quiet)
    except DistillGraspError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not result["per_frame"]:
        print(f"error: {args.folder}: no frame has transparent pixels with valid ground truth", file=sys.stderr)
        return 2
    for f in result["per_frame"]:
        print(_line(Path(f["frame"]).name, f))
    print(_line(f"overall ({result['frames']} frames)", result))
    if args.json_out:
        write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(main())
