"""Grasp-success trials: every depth source on the same seeded scenes of the simulated cell.

    distillgrasp trials --sim --depth raw,fill,student,teacher,gt --trials N --seed S --out DIR [--workers K]
                        [--sensor d435|l515|d415|d455|d405] [--renderer fast|mitsuba] [--weights-dir DIR]
                        [--save-images] [--detector KEY=VALUE[,KEY=VALUE...]]

(also ``python -m grasping.trials``.) Per scene seed and depth source, one attempt: capture, complete the depth,
segment, detect, pick the best grasp, judge from physics. Writes ``DIR/attempts.jsonl`` (one flushed line per
attempt), ``DIR/summary.json`` (success rate with a 95% Wilson interval per source) and ``DIR/success.png``;
with ``--save-images``, ``DIR/images/SCENE-SOURCE.png`` per attempt (RGB with the chosen grasp, raw and
repaired depth). Rerunning with the same ``--out`` skips attempts already logged. ``--sensor l515`` gives the
simulated camera the lidar's failures (the networks then use their ``-l515`` weights where the folder holds
them); ``--renderer mitsuba`` photographs the cell with the path tracer (same scenes, same physics).

    distillgrasp trials --sim --protocol clutter --scene pile|packed --objects 5 --rounds N --seed S
                        --depth raw,student,gt --out DIR [--workers K]

The clutter-removal protocol (``grasping.clutter``): per round (world seed S * 100000 + r, the same for every
depth source) OBJECTS objects, mostly glass, dropped in a heap (pile) or stood upright side by side (packed),
are picked until the table is empty, two picks in a row fail, or 10 picks were made. The summary gives the
pick success rate and the share of objects cleared per source; a folder holds one protocol, scene kind and
object count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distillgrasp.cells import sim_cell_factory
from grasping.clutter import run_clutter
from grasping.detect import detector_config
from grasping.report import clutter_markdown_table, markdown_table
from grasping.trials import completer_for, run_trials
from pipeline.cli import HelpFormatter, list_argument
from pipeline.completion import COMPLETERS
from pipeline.errors import DistillGraspError
from pipeline.types import RENDERERS, SIM_SENSORS, sensor_family


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp trials", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--sim", action="store_true", help="run in the PyBullet cell (the only mode of this command)")
    list_argument(ap, "--depth", default="raw,fill,student,teacher,gt", choices=COMPLETERS,
                  help="depth sources to compare")
    ap.add_argument("--trials", type=int, default=100, help="scenes per source")
    ap.add_argument("--protocol", default="single", choices=("single", "clutter"),
                    help="single: one pick per scene; clutter: clear a heap or a row of objects pick by pick")
    ap.add_argument("--scene", default=None, choices=("pile", "packed"),
                    help="clutter: objects dropped in a heap (pile, the default) or upright side by side (packed)")
    ap.add_argument("--objects", type=int, default=None, help="clutter: objects per round (default 5)")
    ap.add_argument("--rounds", type=int, default=None, help="clutter: rounds per source (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="scene set: scene t has seed SEED * 100000 + t")
    ap.add_argument("--tries", type=int, default=3,
                    help="closed loop: a pick that failed after the arm moved is retried on the re-perceived scene, "
                         "up to this many attempts per scene (the success rate is the first try's; the rate within "
                         "TRIES is reported beside it)")
    ap.add_argument("--out", required=True, help="output folder (resumed if it exists)")
    ap.add_argument("--workers", type=int, default=1,
                    help="parallel simulations (each then gets one thread; perception times are for 2 threads "
                         "only with --workers 1)")
    ap.add_argument("--backend", default="auto", choices=("torch", "onnx", "auto"),
                    help="how networks run (auto: onnxruntime where the export works)")
    ap.add_argument("--weights-dir", default=None,
                    help="folder holding student/teacher .safetensors to use instead of the shipped ones")
    ap.add_argument("--sensor", default="d435", choices=SIM_SENSORS,
                    help="the simulated camera: a D400 stereo model (holes on glass) or the l515 lidar (reads behind "
                         "glass)")
    ap.add_argument("--renderer", default="fast", choices=RENDERERS,
                    help="how the camera image is made: fast (rasterised) or mitsuba (path traced, ~1 s more)")
    ap.add_argument("--allow-fallback", action="store_true",
                    help="complete a camera's frames with weights trained for another camera when its own are missing")
    ap.add_argument("--detector", default=None, metavar="KEY=VALUE[,KEY=VALUE...]",
                    help="development runs: change numbers of the grasp detector (grasping.detect.DetectorConfig), "
                         "e.g. palm_headroom=0.03; the log records them and a folder holds one detector")
    ap.add_argument("--save-images", action="store_true",
                    help="write a picture per attempt to OUT/images/ (RGB with the grasp, raw and repaired depth)")
    args = ap.parse_args(argv)
    if not args.sim:
        ap.error("only --sim trials run from this command; the real cell runs from `distillgrasp run --robot`")
    if args.trials < 1 or args.workers < 1 or args.tries < 1:
        ap.error("--trials, --workers and --tries must be at least 1")
    if args.seed < 0:
        ap.error(f"--seed must be 0 or more, got {args.seed}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        ap.error(f"--out {args.out} is a file; give a folder")
    clutter = args.protocol == "clutter"
    if not clutter and (args.scene, args.objects, args.rounds) != (None, None, None):
        ap.error("--scene, --objects and --rounds belong to --protocol clutter")
    if clutter:
        args.scene = args.scene or "pile"
        args.objects = 5 if args.objects is None else args.objects
        args.rounds = 20 if args.rounds is None else args.rounds
        if args.objects < 1 or args.rounds < 1:
            ap.error("--objects and --rounds must be at least 1")
    try:
        detector = detector_config(args.detector)
    except ValueError as exc:
        ap.error(f"--detector: {exc}")
    for source in args.depth:  # fail before any work when weights are missing
        try:
            completer_for(source, args.weights_dir, args.backend)
        except DistillGraspError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if clutter:
        try:
            summary = run_clutter(sim_cell_factory(args.sensor, args.renderer, layout=args.scene,
                                                   objects=args.objects),
                                  args.depth, args.rounds, args.seed, Path(args.out), args.scene, args.objects,
                                  args.workers, backend=args.backend, weights_dir=args.weights_dir,
                                  provenance={"sensor": sensor_family(args.sensor), "camera": args.sensor,
                                              "renderer": args.renderer},
                                  save_images=args.save_images, allow_fallback=args.allow_fallback,
                                  detector=detector)
        except (ValueError, DistillGraspError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(clutter_markdown_table(summary))
        return 0
    make_cell = sim_cell_factory(args.sensor, args.renderer)
    try:
        summary = run_trials(make_cell, args.depth, args.trials, args.seed, Path(args.out), args.workers,
                             backend=args.backend, weights_dir=args.weights_dir,
                             provenance={"sensor": sensor_family(args.sensor), "camera": args.sensor,
                                         "renderer": args.renderer},
                             save_images=args.save_images, allow_fallback=args.allow_fallback, tries=args.tries,
                             detector=detector)
    except (ValueError, DistillGraspError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
