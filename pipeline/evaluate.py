"""Evaluate depth completers with the ClearGrasp protocol.

    distillgrasp evaluate --data DIR [DIR ...] [--format cleargrasp|clearpose] [--models student,teacher,fill,raw]
                          [--size native|WxH] [--weights-dir DIR] [--limit N] [--pieces] [--json FILE]
                          [--save-images DIR] [--quiet]

Frames are scored as they come, at their own resolution and aspect (the networks work at their training scale and
return depth at the frame's), or resized to ``--size`` first (nearest neighbour for depth and mask, the aspect as
given). Completed depth is scored over transparent pixels with valid ground truth and over all valid pixels, per
image then averaged. Prints a markdown table and writes ``{"frames": n, "results": {MODEL: {"transparent": {...},
"all": {...}}}}``. Each model also gets ``moved_correct_raw``: the share of correct raw readings outside glass
(within 1 cm of the truth) that it moved by more than 1 cm, depth it should have left alone.

A network completes each frame with the weights for its camera family (``NAME-l515.safetensors`` for lidar
frames, where the folder has them). Frames completed by weights trained for another family (lidar frames and a
folder without lidar weights, or the teacher, which has none) are counted under ``other_family`` (the frame's
family and the weights' one) and named in a note below the table: such a figure measures a network on a camera
it was not made for.

``--pieces`` also scores every glass piece (a connected part of the mask with at least 30 pixels of valid
ground truth) on its own: its median truth, and per model the median signed error (positive = too deep) and
the RMSE, printed as a second table and written under ``"pieces"``: where on a frame the error sits.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.cli import HelpFormatter, list_argument, parse_size, setup_logging, write_json
from pipeline.completion import (COMPLETERS, DepthCompleter, EnsembleCompleter, NetworkCompleter, make_completer,
                                 other_family)
from pipeline.data.dataset import resize_frame
from pipeline.data.readers import FORMATS, discover
from pipeline.errors import DataFormatError, DistillGraspError, FrameError
from pipeline.metrics import METRIC_KEYS, MOVED_M, average, depth_metrics, glass_pieces
from pipeline.pictures import depth_panels, save_png
from pipeline.types import RGBDFrame

logger = logging.getLogger(__name__)


def evaluate_frames(frames: list[RGBDFrame], completers: dict[str, DepthCompleter], progress: bool = True,
                    pieces: bool = False, images: Path | None = None) -> dict:
    """Scores of every completer on every frame (frames already at the evaluation size); with ``pieces``,
    also of every glass piece (``piece_scores``); with ``images``, a picture per frame and completer there
    (RGB, raw, prediction, truth, and the error)."""
    per = {name: {"transparent": [], "all": [], "ms": [], "moved": [], "other": {}} for name in completers}
    scored_pieces, skipped = [], []
    for index, frame in enumerate(tqdm(frames, desc="evaluate", unit="frame", disable=not progress)):
        if frame.depth_gt is None:
            logger.warning("skipped %s: no ground truth to evaluate against", frame.name or f"frame {index}")
            skipped.append({"frame": frame.name or str(index), "reason": "no ground truth"})
            continue
        try:  # every completer on this frame, or none: the models are compared on the same frames
            preds, ms = {}, {}
            for name, completer in completers.items():
                t0 = time.perf_counter()
                preds[name] = completer.complete(frame).depth
                ms[name] = (time.perf_counter() - t0) * 1000
        except FrameError as exc:
            logger.warning("skipped %s: %s", frame.name or f"frame {index}", exc)
            skipped.append({"frame": frame.name or str(index), "reason": str(exc)})
            continue
        for name, pred in preds.items():
            made = other_family(completers[name], frame.sensor) if frame.sensor else None
            if made is not None:  # (members of an ensemble: not checked)
                key = f"{frame.sensor} frames, {made} weights"
                per[name]["other"][key] = per[name]["other"].get(key, 0) + 1
            per[name]["ms"].append(ms[name])
            per[name]["transparent"].append(depth_metrics(pred, frame.depth_gt, frame.mask))
            per[name]["all"].append(depth_metrics(pred, frame.depth_gt))
            per[name]["moved"].append(moved_share(pred, frame))
            if images is not None:
                stem = Path(frame.name).name if frame.name else f"frame-{index:04d}"
                save_png(depth_panels(frame.rgb, frame.depth, pred, frame.depth_gt, title=f"{stem}, {name}",
                                      completed_name=name), images / f"{stem}-{name}.png")
        if pieces:
            scored_pieces += piece_scores(frame, preds)
    if frames and len(skipped) == len(frames):
        raise DistillGraspError(f"every one of the {len(frames)} frames was skipped; the first: {skipped[0]['reason']}")
    results = {}
    for name, p in per.items():
        results[name] = {"transparent": average(p["transparent"]), "all": average(p["all"]),
                         "frames_with_glass": sum(m is not None for m in p["transparent"]),
                         "moved_correct_raw": _mean(p["moved"]),
                         "median_ms": float(np.median(p["ms"])) if p["ms"] else None}
        if p["other"]:
            results[name]["other_family"] = p["other"]
    out = {"frames": len(frames) - len(skipped), "skipped": skipped, "results": results}
    if pieces:
        out["pieces"] = scored_pieces
    return out


def moved_share(pred: np.ndarray, frame: RGBDFrame) -> float | None:
    """Share of the frame's correct raw readings outside glass (valid, within 1 cm of the ground truth) that
    the completer moved by more than 1 cm: depth it should have left alone. None when there are none."""
    mask = frame.mask if frame.mask is not None else np.zeros(frame.depth.shape, bool)
    good = (frame.depth > 0) & (frame.depth_gt > 0) & ~mask & (np.abs(frame.depth - frame.depth_gt) <= MOVED_M)
    if not good.any():
        return None
    return float((np.abs(pred[good] - frame.depth[good]) > MOVED_M).mean())


PIECE_MIN_PIXELS = 30


def piece_scores(frame: RGBDFrame, preds: dict[str, np.ndarray]) -> list[dict]:
    """Per glass piece of one frame: pixels, centre (x, y), median truth and each model's error there."""
    if frame.mask is None or frame.depth_gt is None:
        return []
    pieces = []
    for piece in glass_pieces(frame.mask):
        sel = piece & (frame.depth_gt > 0)
        if sel.sum() < PIECE_MIN_PIXELS:
            continue
        ys, xs = np.nonzero(sel)
        gt = frame.depth_gt[sel]
        piece = {"frame": frame.name, "pixels": int(sel.sum()), "centre": [int(xs.mean()), int(ys.mean())],
                 "truth_m": float(np.median(gt))}
        for name, pred in preds.items():
            err = pred[sel] - gt
            piece[name] = {"median_error": float(np.median(err)), "rmse": float(np.sqrt(np.mean(err**2)))}
        pieces.append(piece)
    return pieces


def pieces_table(pieces: list[dict], names: list[str]) -> str:
    head = "| frame | centre | pixels | truth | " + " | ".join(f"{n} median / RMSE" for n in names) + " |"
    lines = [head, "|" + "---|" * (4 + len(names))]
    for p in pieces:
        cells = " | ".join(f"{p[n]['median_error']:+.3f} / {p[n]['rmse']:.3f}" for n in names)
        frame = p["frame"].rsplit("/", 1)[-1]
        lines.append(f"| {frame} | {p['centre'][0]},{p['centre'][1]} | {p['pixels']} | {p['truth_m']:.3f} | {cells} |")
    return "\n".join(lines)


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def load_frames(data: list[str], fmt: str | None, size: tuple[int, int] | None, limit: int | None = None,
                skipped: list | None = None) -> list[RGBDFrame]:
    """Every frame of the folders, resized. A frame that cannot be read is skipped with a warning and noted in
    ``skipped`` (a list of {"frame", "reason"}); a data set of nothing but such frames is an error."""
    frames, skipped = [], skipped if skipped is not None else []
    for path in data:
        for folder in discover(path, fmt):
            for i in range(len(folder)):
                if limit is not None and len(frames) >= limit:
                    return frames
                try:
                    frame = folder.load(i)
                    frames.append(resize_frame(frame, *size) if size else frame)
                except DataFormatError as exc:
                    logger.warning("skipped a frame: %s", exc)
                    skipped.append({"frame": f"{folder.root}#{i}", "reason": str(exc)})
    if not frames and skipped:
        raise DataFormatError(f"none of the {len(skipped)} frames could be read; the first: {skipped[0]['reason']}")
    return frames


def markdown_table(result: dict) -> str:
    head = "| model | region | " + " | ".join(METRIC_KEYS) + " | ms | moved |"
    lines = [head, "|" + "---|" * (len(METRIC_KEYS) + 4)]
    for name, r in result["results"].items():
        for region in ("transparent", "all"):
            m = r[region]
            cells = " | ".join(f"{m[k]:.4f}" if m else "n/a" for k in METRIC_KEYS)
            ms = f"{r['median_ms']:.1f}" if r["median_ms"] is not None else "n/a"
            moved = r.get("moved_correct_raw")
            moved = "" if region == "transparent" else ("n/a" if moved is None else f"{moved:.3f}")
            lines.append(f"| {name} | {region} | {cells} | {ms} | {moved} |")
    for name, r in result["results"].items():
        for what, n in r.get("other_family", {}).items():
            lines.append(f"\nnote: {name} completed {n} frame(s) with weights made for another camera ({what})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp evaluate", description=__doc__,
                                 formatter_class=HelpFormatter)
    list_argument(ap, "--data", metavar="DIR", required=True, help="dataset folders (searched recursively)")
    ap.add_argument("--format", choices=FORMATS, default=None, help="data layout (default: recognised per folder)")
    list_argument(ap, "--models", metavar="NAME", default="student,teacher,fill,raw", choices=COMPLETERS,
                  help=f"what to evaluate, from {','.join(COMPLETERS)}")
    ap.add_argument("--size", metavar="WxH", default="native",
                    help="resize the frames to this first; native: as they come, aspect kept")
    ap.add_argument("--weights-dir", metavar="DIR", default=None,
                    help="folder holding student/teacher .safetensors (and any NAME-d435/NAME-l515 variants, "
                         "used for frames of those cameras); default: the shipped weights")
    ap.add_argument("--limit", metavar="N", type=int, default=None, help="evaluate only the first N frames")
    ap.add_argument("--pieces", action="store_true", help="also score every glass piece on its own")
    ap.add_argument("--json", dest="json_out", metavar="FILE", default=None, help="write the figures to this file")
    ap.add_argument("--save-images", metavar="DIR", default=None,
                    help="write raw / prediction / truth / error panels per frame and model to this folder")
    ap.add_argument("--flip", action="store_true",
                    help="networks give the mean of each frame's prediction and its mirror image's (offline use)")
    ap.add_argument("--ensemble", metavar="WEIGHTS", nargs="+", default=None,
                    help="also score 'ensemble': the mean depth of these networks")
    ap.add_argument("--device", metavar="DEV", default="auto",
                    help="where the networks run: auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        size = None if args.size == "native" else parse_size(args.size)
        names = args.models
        completers = {}
        for name in names:
            completers[name] = make_completer(name, args.weights_dir if name in ("student", "teacher") else None,
                                              device=args.device, flip=args.flip)
        if args.ensemble:
            members = [NetworkCompleter(w, device=args.device, flip=args.flip) for w in args.ensemble]
            completers["ensemble"] = EnsembleCompleter(members)
            names = [*names, "ensemble"]
        unreadable: list[dict] = []
        frames = load_frames(args.data, args.format, size, args.limit, skipped=unreadable)
        result = evaluate_frames(frames, completers, progress=not args.quiet, pieces=args.pieces,
                                 images=Path(args.save_images) if args.save_images else None)
    except (DistillGraspError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result.update({"size": args.size, "data": args.data})
    result["skipped"] = unreadable + result["skipped"]
    if result["skipped"]:
        logger.warning("%d frame(s) skipped (see the warnings above)", len(result["skipped"]))
    print(markdown_table(result))
    if args.pieces:
        print()
        print(pieces_table(result["pieces"], names))
    if args.json_out:
        write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(main())
