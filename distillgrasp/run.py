"""DistillGrasp: see glass, repair its depth, pick it.

    python run.py --sim [--depth SOURCE] [--sensor d435|l515] [--renderer fast|mitsuba] [--trials N] [--seed S]
                  [--gui] [--out DIR]
    python run.py --robot ur10e --ip IP [--camera realsense] [--serial S] [--calibration FILE]
                  [--depth SOURCE] [--trials N] [--dry-run] [--yes] [--out DIR]

``--sim`` runs a short session in the simulated cell (UR10e, parallel-jaw gripper, RealSense-like camera
over a table of glassware): for each scene it captures a frame, completes the depth with ``--depth``
(default: the shipped student network), finds top-down grasps, picks the best one, and prints the attempt.
``--renderer mitsuba`` photographs the cell with the path tracer (glass that refracts, a bright room) instead
of the fast renderer: about a second more per capture.
Every attempt is appended to ``OUT/attempts.jsonl``; ``OUT/summary.json`` holds the success rate, and
``OUT/scene-*.png`` shows what the camera saw (RGB, raw depth, ground truth, mask).

``--robot ur10e`` runs the same loop on a real cell: a RealSense looking at the table (pose from the hand-eye
``--calibration`` file), a UR10e over ur_rtde and a Robotiq 2F-85 on the URCap. ``--dry-run`` connects only
the camera and the robot's receive interface, plans, and prints the moves it would make. Before the first
motion it asks for confirmation unless ``--yes``.
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
from pipeline.types import RENDERERS, SENSOR_FAMILIES


def run_sim(args: argparse.Namespace) -> int:
    from sim.preview import preview_image
    from sim.world import SimWorld, WorldConfig

    try:
        completer = make_completer(args.depth, backend=args.backend)
    except DistillGraspError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = TrialLog(out / "attempts.jsonl")
    records = []
    for i in range(args.trials):
        seed = args.seed + i
        config = WorldConfig().with_sensor(args.sensor).with_renderer(args.renderer)
        with SimWorld(seed, config, gui=args.gui) as world:
            record, frame = attempt(world, completer, GraspDetector())
            record.update({"scene_seed": seed, "depth": args.depth, "sensor": args.sensor, "renderer": args.renderer,
                           "objects": [o.model.kind for o in world.scene.objects]})
            cv2.imwrite(str(out / f"scene-{seed}.png"), preview_image(frame)[..., ::-1])
        records.append(record)
        _log_attempt(log, record, f"scene {seed}: {len(record['objects'])} objects ({', '.join(record['objects'])})")
    summary = summarise(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    s = summary[args.depth]
    print(f"{args.depth}: {s['successes']}/{s['trials']} picks succeeded "
          f"(95% CI {s['ci95'][0]:.0%}-{s['ci95'][1]:.0%}); log in {out / 'attempts.jsonl'}")
    return 0


def _log_attempt(log: TrialLog, record: dict, label: str) -> None:
    log.append(record)
    g = record["grasp"]
    where = f"grasp at ({g['center'][0]:.3f}, {g['center'][1]:.3f}, {g['center'][2]:.3f}) m, " \
            f"width {g['width'] * 1000:.0f} mm" if g else "no grasp"
    verdict = "picked" if record["success"] else f"failed ({record['reason']})"
    print(f"{label}: {where}; perception {record['perception_ms']:.0f} ms; {verdict}")


def run_robot(args: argparse.Namespace, devices=None) -> int:
    """The real cell. ``devices`` = (camera, robot, gripper) replaces the hardware (tests)."""
    from hardware.calibration import CalibrationError, load_calibration
    from hardware.cell import DryRunGripper, RealCell

    if args.robot != "ur10e" or args.camera != "realsense":
        print(f"error: supported: --robot ur10e --camera realsense (got {args.robot}, {args.camera})", file=sys.stderr)
        return 2
    if not args.ip:
        print("error: --robot needs --ip (the UR10e's address)", file=sys.stderr)
        return 2
    if not args.calibration:
        print("error: no --calibration file; make one with python -m hardware.calibrate", file=sys.stderr)
        return 2
    try:
        key, T_calib = load_calibration(args.calibration)
        completer = make_completer(args.depth, backend=args.backend)
    except (CalibrationError, DistillGraspError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    log = TrialLog(out / "attempts.jsonl")
    records: list[dict] = []
    opened = []
    try:
        if devices is None:
            from hardware.realsense import RealSenseCamera, RealSenseConfig
            from hardware.robotiq import RobotiqGripper
            from hardware.ur10e import UR10eRTDE

            camera = RealSenseCamera(RealSenseConfig(serial=args.serial))
            robot = UR10eRTDE(args.ip, dry_run=args.dry_run, log=print)
            gripper = DryRunGripper() if args.dry_run else RobotiqGripper(args.ip)
        else:
            camera, robot, gripper = devices
        for device in (camera, robot, gripper):
            if hasattr(device, "connect"):
                device.connect()
                opened.append(device)
        if hasattr(gripper, "activate"):
            gripper.activate()
        cell = RealCell(camera, robot, gripper, key, T_calib, dry_run=args.dry_run)
        if not args.dry_run and not args.yes:
            answer = input(f"The UR10e at {args.ip} is about to move. Workspace clear? [y/N] ").strip().lower()
            if answer != "y":
                print("nothing moved")
                return 1
        for i in range(args.trials):
            record, _ = attempt(cell, completer, GraspDetector())
            record.update({"scene_seed": i, "depth": args.depth, "robot": args.ip, "dry_run": args.dry_run})
            _log_attempt(log, record, f"attempt {i + 1}")
            records.append(record)
    except KeyboardInterrupt:
        print("interrupted: arm stopped", file=sys.stderr)
        return 130
    except DistillGraspError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        for device in reversed(opened):  # the arm itself is stopped by the driver on any error
            device.disconnect()
    summary = summarise(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    s = summary[args.depth]
    print(f"{args.depth}: {s['successes']}/{s['trials']} picks succeeded; log in {out / 'attempts.jsonl'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim", action="store_true", help="run in the PyBullet simulator")
    ap.add_argument("--robot", choices=("ur10e",), help="run on a real robot")
    ap.add_argument("--ip", help="robot controller address (--robot)")
    ap.add_argument("--camera", default="realsense", choices=("realsense",))
    ap.add_argument("--serial", default=None, help="RealSense serial number (--robot)")
    ap.add_argument("--calibration", default=None, help="hand-eye calibration JSON (--robot)")
    ap.add_argument("--dry-run", action="store_true", help="plan and print moves without moving (--robot)")
    ap.add_argument("--yes", action="store_true", help="no confirmation before moving (--robot)")
    ap.add_argument("--depth", default="student", choices=COMPLETERS, help="depth source (default student)")
    ap.add_argument("--backend", default="auto", choices=("torch", "onnx", "auto"),
                    help="how networks run (auto: onnxruntime where the export works, else torch)")
    ap.add_argument("--trials", type=int, default=3, help="number of scenes (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="first scene seed (default 0)")
    ap.add_argument("--sensor", default="d435", choices=SENSOR_FAMILIES,
                    help="--sim: the simulated camera, d435 (stereo) or l515 (lidar); a real RealSense names its own")
    ap.add_argument("--renderer", default="fast", choices=RENDERERS,
                    help="--sim: how the camera image is made, fast (rasterised) or mitsuba (path traced)")
    ap.add_argument("--gui", action="store_true", help="open the PyBullet window (needs a display)")
    ap.add_argument("--out", default="out", help="output folder (default out/)")
    args = ap.parse_args(argv)
    if args.sim == bool(args.robot):
        ap.error("choose one mode: --sim or --robot ur10e")
    if args.trials < 1:
        ap.error(f"--trials must be at least 1, got {args.trials}")
    return run_sim(args) if args.sim else run_robot(args)


if __name__ == "__main__":
    sys.exit(main())
