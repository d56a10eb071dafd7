"""The clutter-removal protocol (as in VGN and GraspNeRF): clear a heap or a row of objects, pick after pick.

    run_clutter(make_cell, ["raw", "student", "gt"], rounds=20, seed=0, out=Path("clutter"), scene="pile",
                objects=5)

A round is one world, ``make_cell(seed * 100000 + r)`` for round r (the same world for every depth source), in
which the cell repeats ``grasping.trials.attempt`` until its workspace is empty, two picks in a row have
failed, or 10 picks were made (``RoundRules``). After each pick the cell's ``remove_picked`` takes away the
object a successful pick carried off and whatever left the workspace unpicked (knocked off the table). A pick
avoids the grasps that failed since the round's last success (``grasping.trials.choose``).

``OUT/attempts.jsonl`` holds one line per pick (``protocol: "clutter"``, ``scene``, ``scene_objects``,
``round``, ``pick``, ``objects_left`` before the pick and ``objects_after`` it, ``removed``: the kind the pick
carried off, ``gone``: kinds that left unpicked, beside ``Attempt.record()``, ``depth`` and ``scene_seed``),
and after a round's picks one line with ``round_end: true`` (``objects_placed``, ``objects_removed``,
``objects_gone``, ``objects_left``, ``picks``, ``successes``, ``end``: why the round stopped, ``objects``: the
kinds it began with, ``wall_s``). A round counts only once its end line is logged. Resume: a rerun skips
rounds whose end line is logged; the pick lines of a round without one (a run stopped mid-round) are moved
to ``OUT/interrupted.jsonl`` and the round is played again from its start, so an interrupted round neither
counts twice nor counts cut short. ``OUT/summary.json`` (``grasping.report.summarise_clutter``) and
``OUT/success.png`` hold the pick success rate and the share of objects cleared per depth source.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from grasping.cell import Cell
from grasping.detect import DetectorConfig, Grasp, GraspDetector, detector_changes
from grasping.report import TrialLog, plot_clutter, summarise_clutter
from grasping.trials import Attempt, attempt, check_resume, check_scene_set, completer_for, remember
from pipeline.cli import write_json
from pipeline.completion import DepthCompleter

logger = logging.getLogger(__name__)

SCENES = ("pile", "packed")


@dataclass(frozen=True)
class RoundRules:
    """When a round stops (besides an empty workspace)."""

    max_picks: int = 10
    max_failures: int = 2  # consecutive


def play_round(cell: Cell, pick: Callable[[Cell], Attempt], rules: RoundRules = RoundRules(),
               emit: Callable[[dict], None] | None = None) -> tuple[list[dict], dict]:
    """Pick from ``cell`` with ``pick(cell)`` until its workspace is empty, ``rules.max_failures`` picks in a
    row failed, ``rules.max_picks`` picks were made, or a protective stop ended a pick. Returns the picks'
    records (each also handed to ``emit`` as it is made) and the round's end record. A cell that cannot count
    its objects (``objects_left()`` None) stops by the other rules only."""
    placed = left = cell.objects_left()
    records: list[dict] = []
    failures, removed, gone = 0, 0, 0
    while True:
        if left == 0:
            end = "table empty"
            break
        if len(records) >= rules.max_picks:
            end = f"{rules.max_picks} attempts"
            break
        if failures >= rules.max_failures:
            end = f"{rules.max_failures} failures in a row"
            break
        result = pick(cell)
        went = cell.remove_picked()
        after = cell.objects_left()
        record = {**result.record(), "pick": len(records), "objects_left": left, "objects_after": after,
                  "removed": went.get("removed"), "gone": went.get("gone", [])}
        records.append(record)
        if emit is not None:
            emit(record)
        removed += bool(result.success)
        gone += len(record["gone"])
        failures = 0 if result.success else failures + 1
        left = after
        if result.stop_active:
            end = "stop"
            break
    return records, {"objects_placed": placed, "objects_removed": removed, "objects_gone": gone,
                     "objects_left": left, "picks": len(records), "successes": removed, "end": end}


@dataclass(frozen=True)
class _RoundJob:
    make_cell: Callable[[int], Cell]
    scene_seed: int
    round: int
    source: str
    tags: tuple[tuple[str, object], ...]  # protocol, scene, scene_objects: stamped on every line
    threads: int
    backend: str
    weights_dir: str | None
    images: Path | None
    rules: RoundRules = RoundRules()
    detector: DetectorConfig = DetectorConfig()


_COMPLETERS: dict[tuple, DepthCompleter] = {}  # per worker process: networks load once


def _run_round(job: _RoundJob, emit: Callable[[dict], None] | None = None) -> list[dict]:
    """One round of one depth source: its pick lines and its end line (the last)."""
    import torch

    torch.set_num_threads(job.threads)
    key = (job.source, job.weights_dir, job.backend)
    if key not in _COMPLETERS:
        _COMPLETERS[key] = completer_for(job.source, job.weights_dir, job.backend)
    completer, detector = _COMPLETERS[key], GraspDetector(job.detector)
    stamp = {**dict(job.tags), "round": job.round, "scene_seed": job.scene_seed, "depth": job.source}
    t0 = time.perf_counter()
    made = 0
    failed: list[Grasp] = []  # the grasps that failed since the round's last success: the next pick avoids them

    def pick(cell: Cell) -> Attempt:
        nonlocal made
        result = attempt(cell, completer, detector, failed)
        remember(failed, result)
        if job.images is not None:
            from grasping.pictures import save_attempt_picture

            save_attempt_picture(result, job.images / f"{job.scene_seed}-{job.source}-{made}.png",
                                 title=f"round {job.round} pick {made}, {job.source}")
        made += 1
        return result

    lines: list[dict] = []
    last = t0

    def note(record: dict) -> None:
        nonlocal last
        now = time.perf_counter()
        lines.append({**record, **stamp, "wall_s": now - last})  # a pick's time includes building the world
        last = now
        if emit is not None:
            emit(lines[-1])

    with job.make_cell(job.scene_seed) as cell:
        began = cell.describe()  # the kinds the round begins with, and the camera
        _, end = play_round(cell, pick, job.rules, emit=note)
        provenance = {"sensor": cell.sensor, "renderer": cell.renderer, **completer.provenance(cell.sensor),
                      **began}
    lines.append({**provenance, **end, **stamp, "round_end": True, "wall_s": time.perf_counter() - t0})
    if emit is not None:
        emit(lines[-1])
    return lines


def check_layout(records: list[dict], out: Path, scene: str, objects: int) -> None:
    """Refuse to add clutter rounds to ``out`` unless its rounds are of the same scene kind and object count."""
    for key, value, what in (("scene", scene, "{} scene"), ("scene_objects", objects, "{} objects")):
        other = {r[key] for r in records if key in r} - {value}
        if other:
            held = ", ".join(what.format(v) for v in sorted(other, key=str))
            raise ValueError(f"{out} holds clutter rounds of the {held}; use another --out for the "
                             f"{what.format(value)}")


def set_aside_interrupted(log: TrialLog, out: Path) -> list[dict]:
    """Move the pick lines of rounds without an end line (a run stopped mid-round) from the log to
    ``out/interrupted.jsonl``; returns the records that stay. Call with the log locked."""
    log.repair()
    records = log.records()
    ended = {(r["scene_seed"], r["depth"]) for r in records if r.get("round_end")}
    lines = [line for line in log.path.read_text().splitlines() if line.strip()] if log.path.is_file() else []
    keep, aside = [], []
    for line in lines:
        r = json.loads(line)
        partial = r.get("protocol") == "clutter" and not r.get("round_end") and \
            (r.get("scene_seed"), r.get("depth")) not in ended
        (aside if partial else keep).append(line)
    if not aside:
        return records
    rounds = sorted({(r["depth"], r["round"]) for r in map(json.loads, aside)})
    logger.warning("%s: %d pick line(s) of %d interrupted round(s) (%s) moved to interrupted.jsonl; those rounds "
                   "are played again from their start", log.path, len(aside), len(rounds),
                   ", ".join(f"{d} round {n}" for d, n in rounds))
    with open(out / "interrupted.jsonl", "a") as fh:
        fh.write("".join(line + "\n" for line in aside))
        fh.flush()
        os.fsync(fh.fileno())
    tmp = log.path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, log.path)
    return [json.loads(line) for line in keep]


def run_clutter(make_cell: Callable[[int], Cell], sources: list[str], rounds: int, seed: int, out: Path,
                scene: str = "pile", objects: int = 5, workers: int = 1, progress: bool = True,
                backend: str = "auto", weights_dir: str | None = None, provenance: dict[str, str] | None = None,
                save_images: bool = False, allow_fallback: bool = False, rules: RoundRules = RoundRules(),
                detector: DetectorConfig = DetectorConfig()) -> dict:
    """``rounds`` clutter-removal rounds (world seeds ``seed * 100000 + r``) for every source on cells made by
    ``make_cell`` (which builds the ``scene`` layout with ``objects`` objects); returns the summary. ``out``
    must hold clutter rounds of the same scene kind and object count, camera, renderer, detector and weights, or
    none.
    With ``workers`` > 1 whole rounds run in worker processes (``make_cell`` must then be picklable)."""
    if scene not in SCENES:
        raise ValueError(f"unknown clutter scene {scene!r}; choose one of {', '.join(SCENES)}")
    out = Path(out)
    log = TrialLog(out / "attempts.jsonl")
    with log:
        existing = log.records()
        completers = {s: completer_for(s, weights_dir, backend) for s in sources}
        changes = detector_changes(detector)
        check_resume(existing, out, completers, {"protocol": "clutter", **(provenance or {}), "detector": changes},
                     allow_fallback)
        check_layout(existing, out, scene, objects)
        check_scene_set(existing, out, seed)
        existing = set_aside_interrupted(log, out)
        _COMPLETERS.update({(s, weights_dir, backend): c for s, c in completers.items()})
        images = out / "images" if save_images else None
        if images is not None:
            images.mkdir(parents=True, exist_ok=True)
        done = {(r["scene_seed"], r["depth"]) for r in existing if r.get("round_end")}
        wanted = [(seed * 100_000 + r, r, s) for r in range(rounds) for s in sources]
        tags = (("protocol", "clutter"), ("scene", scene), ("scene_objects", objects),
                *((("detector", changes),) if changes else ()))  # (a shipped detector's lines carry no key)
        jobs = [_RoundJob(make_cell, world, r, source, tags, 1 if workers > 1 else 2, backend, weights_dir, images,
                          rules, detector) for world, r, source in wanted if (world, source) not in done]
        bar = tqdm(total=len(wanted), initial=len(wanted) - len(jobs), desc="clutter", unit="round",
                   disable=not progress)
        if workers <= 1:
            for job in jobs:
                _run_round(job, emit=log.append)  # each pick is logged as it is made
                bar.update(1)
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for lines in pool.imap_unordered(_run_round, jobs):
                    for record in lines:
                        log.append(record)
                    bar.update(1)
        bar.close()
        asked = {(world, s) for world, _, s in wanted}
        records = sorted((r for r in log.records() if (r.get("scene_seed"), r.get("depth")) in asked),
                         key=lambda r: sources.index(r["depth"]))
        summary = summarise_clutter(records)
        write_json(out / "summary.json", summary)
        plot_clutter(summary, out / "success.png")
    return summary
