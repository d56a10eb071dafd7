"""Grasp-success trials: every depth source on the same seeded scenes.

    python -m grasping.trials --sim --depth raw,fill,student,teacher,gt --trials N --seed S --out DIR [--workers K]
                              [--sensor d435|l515] [--renderer fast|mitsuba] [--weights-dir DIR]

Per scene seed and depth source, one attempt: capture, complete the depth, segment, detect, pick the best
grasp, judge from physics. Writes ``DIR/attempts.jsonl`` (one flushed line per attempt), ``DIR/summary.json``
(success rate with a 95% Wilson interval per source) and ``DIR/success.png``. Rerunning with the same
``--out`` skips attempts already logged. ``--sensor l515`` gives the simulated camera the lidar's failures
(the networks then use their ``-l515`` weights where the folder holds them); ``--renderer mitsuba``
photographs the cell with the path tracer instead of the fast renderer (same scenes, same physics).

The loop itself (``attempt``) only needs a cell with ``capture()``, ``mark()``, ``verify()``, ``robot``,
``gripper`` and ``close()``; ``--sim`` builds the PyBullet cell (the only place this module reaches into
``sim/``, at the command line).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from grasping.cloud import CloudConfig, PerceptionError, frame_points, segment
from grasping.detect import GraspDetector
from grasping.execute import PickExecutor
from grasping.report import TrialLog, markdown_table, plot_success, summarise
from pipeline.completion import COMPLETERS, DepthCompleter, make_completer
from pipeline.errors import DistillGraspError
from pipeline.types import RENDERERS, SENSOR_FAMILIES


def perceive(frame, completer: DepthCompleter, detector: GraspDetector):
    """Completion + cloud + detection; returns (grasps, milliseconds, failure reason or None)."""
    t0 = time.perf_counter()
    try:
        completed = completer.complete(frame)
        points, repaired = frame_points(completed, raw_depth=frame.depth)
        scene = segment(points, CloudConfig(), repaired=repaired)
        grasps = detector.detect(scene)
        reason = None if grasps else "no grasp found"
    except PerceptionError as exc:
        grasps, reason = [], f"perception: {exc}"
    except DistillGraspError as exc:
        grasps, reason = [], f"completion: {exc}"
    return grasps, (time.perf_counter() - t0) * 1000.0, reason


def attempt(cell, completer: DepthCompleter, detector: GraspDetector):
    """One capture-perceive-pick attempt. Returns (log record, the captured frame). The cell's ``wait``
    (simulated time in simulation, a sleep on a real cell) paces the hold after the lift."""
    frame = cell.capture()
    grasps, ms, reason = perceive(frame, completer, detector)
    cell.mark()
    executor = PickExecutor(cell.robot, cell.gripper, wait=getattr(cell, "wait", None))
    best = grasps[0] if grasps else None
    result = executor.pick(best, verify=cell.verify, check_approach=getattr(cell, "check_approach", None))
    if reason and not best:
        result.reason = reason
    record = {"grasp": asdict(best) if best else None, "success": result.success, "reason": result.reason,
              "gripper_holding": result.gripper_holding, "perception_ms": ms, "timings": result.timings,
              "candidates": len(grasps)}
    return record, frame


_COMPLETERS: dict[str, DepthCompleter] = {}


def _sim_attempt(job) -> dict:
    from sim.world import SimWorld, WorldConfig  # the command line's --sim wiring

    scene_seed, source, threads, backend, weights_dir, sensor, renderer = job
    import torch

    torch.set_num_threads(threads)
    if source not in _COMPLETERS:
        _COMPLETERS[source] = make_completer(source, _weights(source, weights_dir), backend=backend)
    t0 = time.perf_counter()
    with SimWorld(scene_seed, WorldConfig().with_sensor(sensor).with_renderer(renderer)) as world:
        record, _ = attempt(world, _COMPLETERS[source], GraspDetector())
        record["objects"] = [o.model.kind for o in world.scene.objects]
    record.update({"scene_seed": scene_seed, "depth": source, "sensor": sensor, "renderer": renderer,
                   "wall_s": time.perf_counter() - t0})
    return record


def _weights(source: str, weights_dir: str | None) -> Path | None:
    """The networks' weights folder when one is given (``NAME.safetensors`` and any per-sensor variants), else
    None: the shipped weights."""
    return Path(weights_dir) if weights_dir and source in ("student", "teacher") else None


def run_trials(sources: list[str], trials: int, seed: int, out: Path, workers: int = 1,
               progress: bool = True, backend: str = "auto", weights_dir: str | None = None,
               sensor: str = "d435", renderer: str = "fast") -> dict:
    log = TrialLog(out / "attempts.jsonl")
    # (the default: what logs from before the key was recorded were made with)
    for key, value, default, what in (("sensor", sensor, "d435", "camera"), ("renderer", renderer, "fast", "renderer")):
        other = {r.get(key, default) for r in log.records()} - {value}
        if other:
            raise ValueError(f"{out} holds trials with the {', '.join(sorted(other))} {what}; use another --out "
                             f"for {value}")
    done = log.done()
    jobs = [(seed * 100_000 + t, s, 1 if workers > 1 else 2, backend, weights_dir, sensor, renderer)
            for t in range(trials) for s in sources
            if (seed * 100_000 + t, s) not in done]
    bar = tqdm(total=trials * len(sources), initial=trials * len(sources) - len(jobs), desc="trials",
               unit="attempt", disable=not progress)
    if workers <= 1:
        for job in jobs:
            log.append(_sim_attempt(job))
            bar.update(1)
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            for record in pool.imap_unordered(_sim_attempt, jobs):
                log.append(record)
                bar.update(1)
    bar.close()
    wanted = {(seed * 100_000 + t, s) for t in range(trials) for s in sources}
    records = sorted((r for r in log.records() if (r["scene_seed"], r["depth"]) in wanted),
                     key=lambda r: sources.index(r["depth"]))  # the summary lists sources as asked
    summary = summarise(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_success(summary, out / "success.png")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grasping.trials", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim", action="store_true", help="run in the PyBullet cell (the only mode here)")
    ap.add_argument("--depth", default="raw,fill,student,teacher,gt", help=f"from {', '.join(COMPLETERS)}")
    ap.add_argument("--trials", type=int, default=100, help="scenes per source")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=1,
                    help="parallel simulations (each then gets one thread; perception times are for 2 threads "
                         "only with --workers 1)")
    ap.add_argument("--backend", default="auto", choices=("torch", "onnx", "auto"),
                    help="how networks run (auto: onnxruntime where the export works)")
    ap.add_argument("--weights-dir", default=None,
                    help="folder holding student/teacher .safetensors to try instead of the shipped ones")
    ap.add_argument("--sensor", default="d435", choices=SENSOR_FAMILIES,
                    help="the simulated camera: d435 (stereo, holes on glass) or l515 (lidar, reads behind glass)")
    ap.add_argument("--renderer", default="fast", choices=RENDERERS,
                    help="how the camera image is made: fast (rasterised) or mitsuba (path traced, ~1 s more)")
    args = ap.parse_args(argv)
    if not args.sim:
        ap.error("only --sim trials run from this command; the real cell runs from run.py --robot")
    sources = [s.strip() for s in args.depth.split(",") if s.strip()]
    bad = [s for s in sources if s not in COMPLETERS]
    if bad or not sources:
        ap.error(f"unknown depth source(s) {bad}; choose from {', '.join(COMPLETERS)}")
    if args.trials < 1 or args.workers < 1:
        ap.error("--trials and --workers must be at least 1")
    for s in sources:  # fail before any work when weights are missing
        try:
            make_completer(s, _weights(s, args.weights_dir), backend=args.backend)
        except DistillGraspError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        summary = run_trials(sources, args.trials, args.seed, Path(args.out), args.workers, backend=args.backend,
                             weights_dir=args.weights_dir, sensor=args.sensor, renderer=args.renderer)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
