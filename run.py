"""DistillGrasp: see glass, repair its depth, pick it.

    python run.py --sim [--depth SOURCE] [--trials N] [--seed S] [--gui] [--out DIR]

``--sim`` runs a short session in the simulated cell (UR10e, parallel-jaw gripper, RealSense-like camera
over a table of glassware): for each scene it captures a frame, completes the depth with ``--depth``
(default: the shipped student network), finds top-down grasps, picks the best one, and prints the attempt.
Every attempt is appended to ``OUT/attempts.jsonl``; ``OUT/summary.json`` holds the success rate, and
``OUT/scene-*.png`` shows what the camera saw (RGB, raw depth, ground truth, mask).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

from grasping.detect import GraspDetector
from grasping.report import TrialLog, summarise
from grasping.trials import attempt
from pipeline.completion import COMPLETERS, make_completer
from pipeline.errors import DistillGraspError


def run_sim(args: argparse.Namespace) -> int:
    from sim.preview import preview_image
    from sim.world import SimWorld

    try:
        completer = make_completer(args.depth)
    except DistillGraspError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = TrialLog(out / "attempts.jsonl")
    records = []
    for i in range(args.trials):
        seed = args.seed + i
        with SimWorld(seed, gui=args.gui) as world:
            record, frame = attempt(world, completer, GraspDetector(),
                                    wait=lambda s: world.robot._step(int(s * 240)))
            record.update({"scene_seed": seed, "depth": args.depth,
                           "objects": [o.model.kind for o in world.scene.objects]})
            cv2.imwrite(str(out / f"scene-{seed}.png"), preview_image(frame)[..., ::-1])
        log.append(record)
        records.append(record)
        g = record["grasp"]
        where = f"grasp at ({g['center'][0]:.3f}, {g['center'][1]:.3f}, {g['center'][2]:.3f}) m, " \
                f"width {g['width'] * 1000:.0f} mm" if g else "no grasp"
        verdict = "picked" if record["success"] else f"failed ({record['reason']})"
        print(f"scene {seed}: {len(record['objects'])} objects ({', '.join(record['objects'])}); {where}; "
              f"perception {record['perception_ms']:.0f} ms; {verdict}")
    summary = summarise(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    s = summary[args.depth]
    print(f"{args.depth}: {s['successes']}/{s['trials']} picks succeeded "
          f"(95% CI {s['ci95'][0]:.0%}-{s['ci95'][1]:.0%}); log in {out / 'attempts.jsonl'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python run.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim", action="store_true", help="run in the PyBullet simulator")
    ap.add_argument("--depth", default="student", choices=COMPLETERS, help="depth source (default student)")
    ap.add_argument("--trials", type=int, default=3, help="number of scenes (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="first scene seed (default 0)")
    ap.add_argument("--gui", action="store_true", help="open the PyBullet window (needs a display)")
    ap.add_argument("--out", default="out", help="output folder (default out/)")
    args = ap.parse_args(argv)
    if not args.sim:
        ap.error("choose a mode: --sim")
    if args.trials < 1:
        ap.error(f"--trials must be at least 1, got {args.trials}")
    return run_sim(args)


if __name__ == "__main__":
    sys.exit(main())
