"""The distillation ablation on one machine, inside a time budget: teachers, then students of the same data and
the same steps that differ only in what they learn from.

    python -m pipeline.train.ablation --data SHARDS --val SHARDS --out runs/ablation \\
        [--teacher-minutes 4] [--student-minutes 2] [--device auto] [--teacher WEIGHTS]

1. Teachers (unless ``--teacher`` names one), side by side, both continuing ``--teacher-init`` (the shipped
   teacher): one on whole frames, one on random 256x192 crops of them (more windows, more batches). The one
   with the lower validation transparent RMSE teaches.
2. Students, each from ``--student-init`` (the shipped student), side by side: ground truth only; + the
   scale-invariant term against the teacher; + structure (SSIM); + the edge term. Every row takes the same
   frames, crops, augmentation and number of steps.

Steps are set from the time budget: every run is first timed for a few steps as it will run (side by side
with the others of its stage; the first steps, which tune the GPU's kernels, and validation left out), then
given as many steps as fit, with ``--max-minutes`` as a backstop. Each
run is an ordinary ``pipeline.train`` command in ``OUT/NAME`` (its log, checkpoint and best weights), its
command line in ``OUT/summary.json`` with the steps and the best validation figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.cli import HelpFormatter
from pipeline.weights import WEIGHTS_DIR

CALIBRATION_STEPS = 30


@dataclass
class Run:
    name: str
    args: list[str]  # pipeline.train arguments without --out, --steps, --val-every, --max-minutes

    def command(self, out: Path, steps: int, val_every: int, minutes: float | None) -> list[str]:
        cmd = [sys.executable, "-m", "pipeline.train", *self.args, "--out", str(out), "--steps", str(steps),
               "--val-every", str(val_every), "--quiet"]
        return cmd + (["--max-minutes", f"{minutes:.2f}"] if minutes else [])


def teacher_runs(data: list[str], val: list[str], device: str, init: str, batch: int = 16) -> list[Run]:
    common = ["teacher", "--data", *data, "--val", *val, "--device", device, "--init", init, "--lr", "3e-4",
              "--warmup", "100", "--jpeg", "0.5", "--blur", "0.2", "--seed", "0"]
    return [Run("teacher-frames", [*common, "--crop", "320x240", "--batch", str(batch)]),
            Run("teacher-crops", [*common, "--crop", "256x192", "--batch", str(batch * 3 // 2)])]


ROWS = {  # name -> the weights of the terms against the teacher (None: ground truth only)
    "student-gt": None,
    "student-silog": (1.0, 0.0, 0.0),
    "student-silog-ssim": (1.0, 1.0, 0.0),
    "student-silog-ssim-edge": (1.0, 1.0, 1.0),
}


def student_runs(data: list[str], val: list[str], device: str, init: str, teacher: list[str],
                 batch: int = 16) -> list[Run]:
    common = ["--data", *data, "--val", *val, "--device", device, "--init", init, "--crop", "160x128",
              "--batch", str(batch), "--lr", "3e-4", "--warmup", "50", "--jpeg", "0.5", "--blur", "0.2",
              "--w-edges", "4", "--seed", "0"]
    runs = []
    for name, weights in ROWS.items():
        if weights is None:
            runs.append(Run(name, ["student", "--no-distill", *common]))
        else:
            silog, ssim, edge = weights
            runs.append(Run(name, ["student", *common, "--teacher", *teacher, "--teacher-flip", "--w-silog",
                                   str(silog), "--w-ssim", str(ssim), "--w-edge", str(edge)]))
    return runs


def _launch(cmds: dict[str, list[str]], logs: Path, threads: int) -> dict[str, subprocess.Popen]:
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    procs = {}
    for name, cmd in cmds.items():
        with open(logs / f"{name}.out", "w") as out, open(logs / f"{name}.log", "a") as err:
            err.write("$ " + shlex.join(cmd) + "\n")
            err.flush()
            procs[name] = subprocess.Popen(cmd + ["--threads", str(threads)], env=env, stdout=out, stderr=err)
    return procs


def _wait(procs: dict[str, subprocess.Popen], logs: Path) -> dict[str, dict]:
    results = {}
    for name, proc in procs.items():
        code = proc.wait()
        text = (logs / f"{name}.out").read_text().strip().splitlines()
        if code != 0 or not text:
            tail = (logs / f"{name}.log").read_text()[-1500:]
            raise RuntimeError(f"{name} failed with exit code {code}:\n{tail}")
        results[name] = json.loads(text[-1])
    return results


def _seconds_per_step(run_dir: Path) -> float:
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    half = CALIBRATION_STEPS // 2
    first = next(r for r in log if r["step"] == half)
    last = next(r for r in log if r["step"] == CALIBRATION_STEPS)
    training = [r["elapsed_s"] - r.get("val_s", 0.0) for r in (first, last)]  # validation left out
    return (training[1] - training[0]) / (CALIBRATION_STEPS - half)


def run_stage(runs: list[Run], out: Path, minutes: float, threads: int, equal_steps: bool = False) -> dict:
    """Time every run for a few steps side by side, then run them side by side for ``minutes``."""
    t0 = time.time()
    calib = out / "calibration"
    _wait(_launch({r.name: r.command(calib / r.name, CALIBRATION_STEPS, CALIBRATION_STEPS // 2, None)
                   + ["--restart"] for r in runs}, out / "logs", threads), out / "logs")
    pace = {r.name: _seconds_per_step(calib / r.name) for r in runs}
    if equal_steps:
        pace = dict.fromkeys(pace, max(pace.values()))
    steps = {name: max(int(0.9 * 60 * minutes / s), CALIBRATION_STEPS) for name, s in pace.items()}
    cmds = {r.name: r.command(out / r.name, steps[r.name], max(steps[r.name] // 8, 1), 1.5 * minutes) for r in runs}
    results = _wait(_launch(cmds, out / "logs", threads), out / "logs")
    return {name: {"command": shlex.join(cmds[name]), "seconds_per_step": round(pace[name], 4),
                   **results[name]} for name in cmds} | {"_wall_s": round(time.time() - t0)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.train.ablation", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--data", metavar="DIR", nargs="+", required=True, help="training folders (shards or frames)")
    ap.add_argument("--val", metavar="DIR", nargs="+", required=True, help="validation folders")
    ap.add_argument("--out", metavar="DIR", required=True)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda")
    ap.add_argument("--teacher", metavar="WEIGHTS", nargs="+", default=None,
                    help="teach with these weights (several: the mean of their depth maps); train none")
    ap.add_argument("--ensemble", action="store_true",
                    help="teach with every trained teacher and --teacher-init together, not the best one")
    ap.add_argument("--teacher-init", metavar="WEIGHTS", default=str(WEIGHTS_DIR / "teacher.safetensors"))
    ap.add_argument("--student-init", metavar="WEIGHTS", default=str(WEIGHTS_DIR / "student.safetensors"))
    ap.add_argument("--teacher-minutes", metavar="M", type=float, default=4.0)
    ap.add_argument("--student-minutes", metavar="M", type=float, default=2.0)
    ap.add_argument("--teacher-batch", metavar="N", type=int, default=16, help="whole frames per teacher step")
    ap.add_argument("--student-batch", metavar="N", type=int, default=16, help="crops per student step")
    ap.add_argument("--threads", metavar="K", type=int, default=max((os.cpu_count() or 2) // 4, 1),
                    help="CPU threads per training process")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"argv": sys.argv if argv is None else argv}
    teacher = args.teacher
    if teacher is None:
        runs = teacher_runs(args.data, args.val, args.device, args.teacher_init, args.teacher_batch)
        stage = run_stage(runs, out / "teachers", args.teacher_minutes, args.threads)
        summary["teachers"] = stage
        trained = sorted((k for k in stage if not k.startswith("_")), key=lambda k: stage[k]["best_val_rmse"])
        chosen = trained if args.ensemble else trained[:1]
        teacher = [str(out / "teachers" / name / "best.safetensors") for name in chosen]
        teacher += [args.teacher_init] if args.ensemble else []
        summary["teacher"] = {"chosen": chosen, "weights": teacher}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps({"teacher": teacher, "best_val_rmse": {k: stage[k]["best_val_rmse"] for k in trained}}),
              flush=True)
    summary["students"] = run_stage(student_runs(args.data, args.val, args.device, args.student_init, teacher,
                                                 args.student_batch),
                                    out / "students", args.student_minutes, args.threads, equal_steps=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v.get("best_val_rmse") for k, v in summary["students"].items() if not k.startswith("_")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
