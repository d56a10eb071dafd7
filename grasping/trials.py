"""One pick attempt on any cell, and campaigns of them: every depth source on the same seeded scenes.

    attempt(cell, completer, detector, failed=()) -> Attempt
    run_trials(make_cell, ["student", "gt"], trials=100, seed=0, out=Path("trials"))

An attempt captures a frame, completes its depth, segments the cloud, detects grasps, picks the best one and
asks the cell whether the pick held. ``run_trials`` runs one attempt per scene seed and depth source on cells
made by ``make_cell(scene_seed)`` (a picklable callable, so attempts can run in worker processes) and writes
``OUT/attempts.jsonl`` (one flushed line per attempt; a rerun skips what is logged), ``OUT/summary.json``
(success rate with a 95% Wilson interval per source) and ``OUT/success.png``. The command line, which decides
what cell to build, is ``distillgrasp trials`` (``distillgrasp/trials.py``).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tqdm import tqdm

from grasping.cell import Cell
from grasping.cloud import CloudConfig, PerceptionError, SceneCloud, frame_points, segment
from grasping.detect import DetectorConfig, Grasp, GraspDetector, detector_changes
from grasping.execute import PickExecutor
from grasping.report import TrialLog, plot_success, summarise
from pipeline.cli import write_json
from pipeline.completion import DepthCompleter, make_completer, other_family
from pipeline.errors import DistillGraspError
from pipeline.types import RGBDFrame


@dataclass
class Perception:
    """What perception made of one frame: the completed frame, the segmented cloud, the ranked grasps, how long
    it took (in all and per stage: ``complete``, ``cloud``, ``segment``, ``detect``, milliseconds; ``network``,
    the network's own share of ``complete``, where a network completed the frame; ``again``, the second look
    where the first found no grasp), and why nothing can be picked (None when there are grasps)."""

    completed: RGBDFrame | None
    scene: SceneCloud | None
    grasps: list[Grasp]
    ms: float
    reason: str | None
    stages_ms: dict[str, float] = field(default_factory=dict)



def perceive(frame: RGBDFrame, completer: DepthCompleter, detector: GraspDetector) -> Perception:
    """Completion + cloud + segmentation + detection. Where the detector finds no grasp, the cloud is made and
    segmented again without the holes the completer bridged between two surfaces the camera measured
    (``frame_points(drop_bridged=True)``: a stereo shadow along an opaque object's edge, filled with points in
    mid-air that widen the object and raise its top), and what that finds is kept. Perception failures become a
    reason, never an exception."""
    t0 = time.perf_counter()
    completed, scene, grasps, reason, stages = None, None, [], None, {}
    mark = t0

    def lap(stage: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        stages[stage] = (now - mark) * 1000.0
        mark = now

    try:
        completed = completer.complete(frame)
        lap("complete")
        network_ms = completer.network_ms()
        if network_ms is not None:  # inside "complete": the network's own share of it
            stages["network"] = network_ms
        points, repaired = frame_points(completed, raw_depth=frame.depth)
        lap("cloud")
        scene = segment(points, CloudConfig(), repaired=repaired)
        lap("segment")
        grasps = detector.detect(scene)
        lap("detect")
        if not grasps:  # look again without the holes the completer bridged between two measured surfaces
            points, repaired = frame_points(completed, raw_depth=frame.depth, drop_bridged=True)
            again = segment(points, CloudConfig(), repaired=repaired)
            grasps = detector.detect(again)
            scene = again if grasps else scene
            lap("again")
        reason = None if grasps else "no grasp found"
    except PerceptionError as exc:
        reason = f"perception: {exc}"
    except DistillGraspError as exc:
        reason = f"completion: {exc}"
    return Perception(completed, scene, grasps, (time.perf_counter() - t0) * 1000.0, reason, stages)


@dataclass
class Attempt:
    """One capture-perceive-pick attempt: the frame, what perception made of it, the grasp tried and how it
    ended, and where it was made (camera family, renderer, what the cell reports of itself)."""

    frame: RGBDFrame
    perception: Perception
    grasp: Grasp | None
    success: bool
    reason: str
    gripper_holding: bool | None
    timings: dict[str, float] = field(default_factory=dict)
    sensor: str = ""
    renderer: str = ""
    cell_info: dict = field(default_factory=dict)
    stop_active: bool = False  # a protective or emergency stop ended it: no further attempt may follow
    completer: dict = field(default_factory=dict)  # the weights (content hash) and backend that completed it
    contact: bool | None = None  # the guarded descent stopped on a contact before the grasp pose
    truth: dict = field(default_factory=dict)  # the grasp against the object it was meant for (``Cell.truth``)
    avoided: int = 0  # better-ranked grasps passed over as repeats of ones that failed (``choose``)
    lower_closes: int = 0  # closes made lower after the fingers met nothing (``PickExecutor``)

    def record(self) -> dict:
        """The attempt's line in ``attempts.jsonl`` (JSON types only)."""
        return {"grasp": asdict(self.grasp) if self.grasp else None, "success": self.success,
                "reason": self.reason, "gripper_holding": self.gripper_holding, "contact": self.contact,
                "perception_ms": self.perception.ms, "stages_ms": self.perception.stages_ms, "timings": self.timings,
                "candidates": len(self.perception.grasps), "avoided": self.avoided,
                "lower_closes": self.lower_closes, "sensor": self.sensor,
                "renderer": self.renderer,
                **self.completer, **self.cell_info, **({"truth": self.truth} if self.truth else {})}


AVOID_M = 0.01  # a grasp whose centre lies this close to one that failed ...
AVOID_DEG = 15.0  # ... closing within this angle of it repeats it


def repeats(grasp: Grasp, failed: Grasp) -> bool:
    """Whether ``grasp`` is in effect the grasp ``failed`` again: its centre within ``AVOID_M`` in plan and its
    closing direction within ``AVOID_DEG`` (yaws of a parallel jaw compared modulo 180 degrees)."""
    turn = abs((grasp.yaw - failed.yaw + np.pi / 2) % np.pi - np.pi / 2)
    return (float(np.hypot(grasp.center[0] - failed.center[0], grasp.center[1] - failed.center[1])) <= AVOID_M
            and np.degrees(turn) <= AVOID_DEG)


def remember(failed: list[Grasp], result: Attempt) -> None:
    """Keep ``failed`` the grasps that failed since the last success, once ``result`` is known."""
    if result.success:
        failed.clear()
    elif result.grasp is not None:
        failed.append(result.grasp)


def choose(grasps: list[Grasp], failed: Sequence[Grasp] = ()) -> Grasp | None:
    """The best-ranked grasp that repeats none of the ``failed`` ones (a pick that failed on a scene that barely
    moved fails again where it was made); the best of all where every one repeats a failure."""
    fresh = (g for g in grasps if not any(repeats(g, f) for f in failed))
    return next(fresh, grasps[0] if grasps else None)


def attempt(cell: Cell, completer: DepthCompleter, detector: GraspDetector, failed: Sequence[Grasp] = ()) -> Attempt:
    """Capture, perceive, pick the best grasp that repeats none of the ``failed`` ones (``choose``), and judge the
    pick by the cell's ``verify``."""
    frame = cell.capture()
    seen = perceive(frame, completer, detector)
    cell.mark()
    best = choose(seen.grasps, failed)
    avoided = next(i for i, g in enumerate(seen.grasps) if g is best) if best is not None else 0
    truth = cell.truth(best) if best is not None else {}
    result = PickExecutor(cell.robot, cell.gripper, cell.pick, wait=cell.wait).pick(
        best, verify=cell.verify, check_approach=cell.check_approach)
    reason = seen.reason if seen.reason and best is None else result.reason
    sensor = cell.sensor or frame.sensor
    return Attempt(frame, seen, best, result.success, reason, result.gripper_holding, result.timings, sensor,
                   cell.renderer, cell.describe(), result.stop_active, completer.provenance(sensor), result.contact,
                   truth, avoided, result.lower_closes)


def retry(cell: Cell, completer: DepthCompleter, detector: GraspDetector, first: Attempt, tries: int) -> list[dict]:
    """The closed loop: after a pick that failed once the arm had moved (a lift that did not hold, a slip, a
    knock on the way down), perceive the changed scene again and pick again, up to ``tries`` attempts in all.
    A scene where nothing could be picked is not retried (nothing moved, so the view is the same), nor one a
    protective stop ended; each try avoids the grasps that failed before it (``choose``). Returns the records of
    the further attempts (``first`` is the first try's)."""
    out: list[dict] = []
    last, failed = first, []
    while 1 + len(out) < tries and not last.success and not last.stop_active and last.grasp is not None:
        remember(failed, last)
        last = attempt(cell, completer, detector, failed)
        out.append({"success": last.success, "reason": last.reason,
                    "grasp": asdict(last.grasp) if last.grasp else None, "perception_ms": last.perception.ms,
                    **({"truth": last.truth} if last.truth else {})})
    return out


class FallbackError(DistillGraspError):
    """The weights that would complete a camera's frames were trained for another camera."""


def check_sensor(source: str, completer: DepthCompleter, sensor: str, allow_fallback: bool = False) -> None:
    """Refuse a network whose weights for ``sensor``'s frames were trained for another camera family (e.g. lidar
    frames and no ``-l515`` weights), unless ``allow_fallback``."""
    made = other_family(completer, sensor)
    if made is not None and not allow_fallback:
        raise FallbackError(f"{source}: no weights for {sensor} frames (only {made} ones, e.g. NAME-{sensor}"
                            ".safetensors is missing); add --allow-fallback to use them anyway")


@dataclass(frozen=True)
class _Job:
    make_cell: Callable[[int], Cell]
    scene_seed: int
    source: str
    threads: int
    backend: str
    weights_dir: str | None
    images: Path | None
    tries: int = 1
    detector: DetectorConfig = DetectorConfig()


_COMPLETERS: dict[tuple, DepthCompleter] = {}  # per worker process: networks load once


def completer_for(source: str, weights_dir: str | Path | None, backend: str) -> DepthCompleter:
    """The completer of ``source``, with a networks' weights folder when one is given (else the shipped one)."""
    weights = Path(weights_dir) if weights_dir and source in ("student", "teacher") else None
    return make_completer(source, weights, backend=backend)


def _run_job(job: _Job) -> dict:
    import torch

    torch.set_num_threads(job.threads)
    key = (job.source, job.weights_dir, job.backend)
    if key not in _COMPLETERS:
        _COMPLETERS[key] = completer_for(job.source, job.weights_dir, job.backend)
    t0 = time.perf_counter()
    with job.make_cell(job.scene_seed) as cell:
        detector = GraspDetector(job.detector)
        result = attempt(cell, _COMPLETERS[key], detector)
        retries = retry(cell, _COMPLETERS[key], detector, result, job.tries)
    record = {**result.record(), "scene_seed": job.scene_seed, "depth": job.source,
              "tries": 1 + len(retries), "success_within": result.success or any(r["success"] for r in retries),
              "retries": retries, "wall_s": time.perf_counter() - t0}
    changes = detector_changes(job.detector)
    if changes:  # (a shipped detector's lines carry no key, as they did before it could be changed)
        record["detector"] = changes
    if job.images is not None:
        from grasping.pictures import save_attempt_picture

        save_attempt_picture(result, job.images / f"{job.scene_seed}-{job.source}.png",
                             title=f"scene {job.scene_seed}, {job.source}")
    return record


def run_trials(make_cell: Callable[[int], Cell], sources: list[str], trials: int, seed: int, out: Path,
               workers: int = 1, progress: bool = True, backend: str = "auto", weights_dir: str | None = None,
               provenance: dict[str, str] | None = None, save_images: bool = False,
               allow_fallback: bool = False, tries: int = 3, detector: DetectorConfig = DetectorConfig()) -> dict:
    """``trials`` scenes (seeds ``seed * 100000 + t``) for every source; returns the summary. A failed pick is
    retried on the changed scene up to ``tries`` attempts in all (``retry``); the success rate is the first
    try's, the rate within ``tries`` is reported beside it. ``provenance``
    (e.g. ``{"sensor": "d435", "renderer": "fast"}``), ``detector`` and each network's weights must match what
    ``out`` already holds: one folder, one camera, one renderer, one detector, one set of weights per source. The
    folder is locked while the trials run."""
    out = Path(out)
    log = TrialLog(out / "attempts.jsonl")
    with log:
        existing = log.records()
        completers = {s: completer_for(s, weights_dir, backend) for s in sources}
        check_resume(existing, out, completers, {**(provenance or {}), "detector": detector_changes(detector)},
                     allow_fallback)
        check_scene_set(existing, out, seed)
        # a single-process run uses these; worker processes load their own
        _COMPLETERS.update({(s, weights_dir, backend): c for s, c in completers.items()})
        images = out / "images" if save_images else None
        if images is not None:
            images.mkdir(parents=True, exist_ok=True)
        done = log.done(existing)
        wanted = [(seed * 100_000 + t, s) for t in range(trials) for s in sources]
        jobs = [_Job(make_cell, scene, source, 1 if workers > 1 else 2, backend, weights_dir, images, tries, detector)
                for scene, source in wanted if (scene, source) not in done]
        bar = tqdm(total=len(wanted), initial=len(wanted) - len(jobs), desc="trials", unit="attempt",
                   disable=not progress)
        if workers <= 1:
            for job in jobs:
                log.append(_run_job(job))
                bar.update(1)
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for record in pool.imap_unordered(_run_job, jobs):
                    log.append(record)
                    bar.update(1)
        bar.close()
        asked = set(wanted)
        records = sorted((r for r in log.records() if (r.get("scene_seed"), r.get("depth")) in asked),
                         key=lambda r: sources.index(r["depth"]))  # the summary lists sources as asked
        summary = summarise(records)
        write_json(out / "summary.json", summary)
        plot_success(summary, out / "success.png")
    return summary


def check_scene_set(records: list[dict], out: Path, seed: int) -> None:
    """Refuse to add scene set ``seed`` (scenes ``seed * 100000 + t``) to a folder holding another set's trials:
    a report set's folder must hold that set alone."""
    other = sorted({int(r["scene_seed"]) // 100_000 for r in records if "scene_seed" in r} - {seed})
    if other:
        raise ValueError(f"{out} holds trials of scene set {', '.join(map(str, other))} (--seed); use another --out "
                         f"for --seed {seed}")


def check_resume(records: list[dict], out: Path, completers: dict[str, DepthCompleter],
                 provenance: dict[str, str], allow_fallback: bool) -> None:
    """Refuse to add attempts to ``out`` unless they match what it holds: the same ``provenance`` (camera family,
    camera model, renderer, detector changes: ``detector_changes``, "" for the shipped detector) and, per depth
    source in ``completers``, the same weights; and refuse a network with no weights for the camera's family unless
    ``allow_fallback``. The trial protocol is checked first: a
    ``provenance`` without ``protocol`` is a single-pick run ("single"; ``grasping.clutter`` runs are "clutter")."""
    # logs from before the keys were recorded; a shipped detector's lines carry none
    defaults = {"sensor": "d435", "renderer": "fast", "protocol": "single", "detector": ""}
    provenance = {"protocol": "single", **provenance}
    for key, value in provenance.items():
        # (a log from before the camera model was recorded: its model is its family's first, d435 or l515)
        other = {r.get(key, r.get("sensor", "d435") if key == "camera" else defaults.get(key, "")) for r in records}
        other -= {value}
        if other and key == "detector":
            def named(changes: str) -> str:
                return f"detector {changes}" if changes else "shipped detector"

            raise ValueError(f"{out} holds trials with the {', '.join(map(named, sorted(other)))}; use another --out "
                             f"for the {named(value)}")
        if other:
            raise ValueError(f"{out} holds trials with the {', '.join(sorted(other))} "
                             f"{'camera' if key == 'sensor' else key}; use another --out for {value}")
    sensor = provenance.get("sensor", "d435")
    for source, completer in completers.items():
        check_sensor(source, completer, sensor, allow_fallback)
        made = completer.provenance(sensor).get("weights")
        if made is None:
            continue
        other = {str(r.get("weights", "unrecorded weights")) for r in records if r.get("depth") == source} - {made}
        if other:
            raise ValueError(f"{out} holds {source} attempts made with other weights ({', '.join(sorted(other))}; "
                             f"these are {made}); use another --out")


if __name__ == "__main__":  # `python -m grasping.trials` is the trials command, which lives in the wiring layer
    import sys

    from distillgrasp.trials import main

    sys.exit(main())
