"""How far perception puts each object's top from the truth, per depth source, on simulated scenes.

    distillgrasp heights --sim --depth student,gt --scenes 100 --seed 7 --out reports/heights/dev-s7.json

(also ``python -m grasping.heights``.) Per scene (the single-pick scenes of ``distillgrasp trials``: scene t of
set S has seed S * 100000 + t) and depth source: complete the frame, build the cloud and segment it as a pick
does, and set every cluster that holds exactly one object's centre (seen from above) against that object's
true top. The detector plans its pads from a percentile of a cluster's heights (``DetectorConfig.top_percentile``);
the JSON gives, per source, per glass or opaque and per kind of object, each asked percentile's error in
millimetres (median, 10th and 90th percentile) and the shares of clusters whose top is held (from 30 mm below
the truth to 25 mm above it: lower, the palm meets the top; higher, the pads close over the rim), low and high.
"""

from __future__ import annotations

import argparse
import sys

from distillgrasp.cells import sim_cell_factory
from grasping.detect import DetectorConfig
from grasping.heights import measure
from grasping.trials import completer_for
from pipeline.cli import HelpFormatter, list_argument, write_json
from pipeline.completion import COMPLETERS
from pipeline.errors import DistillGraspError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp heights", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--sim", action="store_true", help="measure in the PyBullet cell (the only mode)")
    list_argument(ap, "--depth", default="student,gt", choices=COMPLETERS, help="depth sources to compare")
    ap.add_argument("--scenes", type=int, default=100, help="scenes of the set, from its first")
    ap.add_argument("--seed", type=int, default=0, help="scene set: scene t has seed SEED * 100000 + t")
    ap.add_argument("--percentiles", type=float, nargs="+", default=None,
                    help="percentiles of a cluster's heights taken for its top (default: the detector's, "
                         f"{DetectorConfig().top_percentile:g}, and 95 and 98)")
    ap.add_argument("--weights-dir", default=None, help="folder holding student/teacher weights to use instead")
    ap.add_argument("--backend", default="auto", choices=("torch", "onnx", "auto"), help="how networks run")
    ap.add_argument("--out", required=True, help="JSON file for the summary")
    args = ap.parse_args(argv)
    if not args.sim:
        ap.error("only --sim: the truth of a scene's tops is known in simulation only")
    if args.scenes < 1 or args.seed < 0:
        ap.error("--scenes must be at least 1 and --seed 0 or more")
    percentiles = args.percentiles or [DetectorConfig().top_percentile, 95.0, 98.0]
    if not all(0.0 <= q <= 100.0 for q in percentiles):
        ap.error(f"--percentiles must lie in 0..100, got {percentiles}")
    try:
        completers = {s: completer_for(s, args.weights_dir, args.backend) for s in args.depth}
        summary = measure(sim_cell_factory(), completers, args.scenes, args.seed, percentiles)
        write_json(args.out, summary)
    except (ValueError, DistillGraspError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for source, by_q in summary["sources"].items():
        for q, s in by_q.items():
            g = s["glass"]
            if g.get("clusters"):
                print(f"{source:8s} {q:>4s} glass: {g['clusters']} clusters, median {g['median_mm']:+.1f} mm, "
                      f"held {g['held']:.1%}, low {g['low']:.1%}, high {g['high']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
