"""DistillGrasp: see glass, repair its depth, pick it.

    distillgrasp run --sim [--depth SOURCE] [--sensor d435|l515|d415|d455|d405] [--renderer fast|mitsuba]
                     [--trials N] [--seed S] [--weights-dir DIR] [--view] [--gui] [--out DIR]
    distillgrasp run --robot ur10e --ip IP --calibration FILE [--config cell.yaml] [--serial S] [--depth SOURCE]
                     [--trials N] [--dry-run] [--yes] [--view] [--out DIR]
    distillgrasp run --playback FILE.db3|FILE.bag [--calibration FILE] [--trials N] [--view] [--out DIR]

(``python run.py`` is the same command.) ``--sim`` runs a short session in the simulated cell (UR10e, parallel-jaw
gripper, RealSense-like camera over a table of glassware): for each scene it captures a frame, completes the
depth with ``--depth`` (default: the shipped student network), finds top-down grasps, picks the best one and
prints the attempt. ``--renderer mitsuba`` photographs the cell with the path tracer (about a second more per
capture).

``--robot ur10e`` runs the same loop on a real cell: a RealSense looking at the table (pose from the hand-eye
``--calibration`` file), a UR10e over ur_rtde and a Robotiq 2F-85 on the URCap. ``--config cell.yaml`` holds
what describes the cell (address, camera serial, calibration, workspace box, gripper force, place position;
see ``distillgrasp/config.py``); flags override it. ``--dry-run`` connects the camera and the arm (its control
interface only for the controller's check of every target), leaves the gripper alone, plans, and prints the
moves it would make; it sends no motion. Nothing moves, the gripper included, before the operator confirms
(``--yes`` confirms in advance).

``--playback FILE`` runs a RealSense recording (``.db3``, or ``.bag`` from older librealsense) through the whole
perception with no robot: it writes the grasps it would make, per frame. Without ``--calibration`` the table in
view stands in for the robot's base frame.

Every attempt is appended to ``OUT/attempts.jsonl`` and drawn in ``OUT/images/`` (RGB with the chosen grasp,
raw and repaired depth with a colour bar); ``OUT/summary.json`` holds the success rate. ``--view`` opens a 3D
view of the cloud and the grasps after each perception (needs a display).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from grasping.cell import Cell
from grasping.detect import GraspDetector
from grasping.pictures import perception_picture, save_attempt_picture, show_3d
from grasping.report import TrialLog, summarise
from grasping.robot import StopActiveError
from grasping.trials import Attempt, attempt, check_resume, check_sensor, completer_for, perceive, remember
from pipeline.cli import HelpFormatter, write_json
from pipeline.completion import COMPLETERS
from pipeline.errors import DistillGraspError
from pipeline.pictures import save_png
from pipeline.types import RENDERERS, SIM_SENSORS, sensor_family

log = logging.getLogger("distillgrasp.run")


def _report(attempt_: Attempt, label: str) -> None:
    g = attempt_.grasp
    where = (f"grasp at ({g.center[0]:.3f}, {g.center[1]:.3f}, {g.center[2]:.3f}) m, width {g.width * 1000:.0f} mm"
             if g else "no grasp")
    verdict = "picked" if attempt_.success else f"failed ({attempt_.reason})"
    print(f"{label}: {where}; perception {attempt_.perception.ms:.0f} ms; {verdict}")


def _finish(records: list[dict], out: Path, source: str) -> None:
    summary = summarise(records)
    write_json(out / "summary.json", summary)
    if source in summary:
        s = summary[source]
        print(f"{source}: {s['successes']}/{s['trials']} picks succeeded "
              f"(95% CI {s['ci95'][0]:.0%}-{s['ci95'][1]:.0%}); log in {out / 'attempts.jsonl'}")


def _view(args: argparse.Namespace, result: Attempt, title: str) -> None:
    if args.view and result.perception.completed is not None:
        show_3d(result.perception.completed, result.perception.grasps, result.grasp, title)


def run_sim(args: argparse.Namespace) -> int:
    from distillgrasp.cells import sim_cell_factory

    completer = completer_for(args.depth, args.weights_dir, args.backend)
    out = Path(args.out)
    make_cell = sim_cell_factory(args.sensor, args.renderer, gui=args.gui)
    with TrialLog(out / "attempts.jsonl") as trial_log:
        existing = trial_log.records()
        check_resume(existing, out, {args.depth: completer},
                     {"sensor": sensor_family(args.sensor), "camera": args.sensor, "renderer": args.renderer},
                     args.allow_fallback)
        done = trial_log.done(existing)
        records = [r for r in existing if r["depth"] == args.depth
                   and args.seed <= r["scene_seed"] < args.seed + args.trials]
        for seed in range(args.seed, args.seed + args.trials):
            if (seed, args.depth) in done:
                continue
            with make_cell(seed) as cell:
                result = attempt(cell, completer, GraspDetector())
            record = {**result.record(), "scene_seed": seed, "depth": args.depth}
            trial_log.append(record)
            records.append(record)
            save_attempt_picture(result, out / "images" / f"scene-{seed}.png", title=f"scene {seed}, {args.depth}")
            objects = record.get("objects", [])
            _report(result, f"scene {seed}: {len(objects)} objects ({', '.join(objects)})")
            _view(args, result, f"scene {seed}")
        _finish(records, out, args.depth)
    return 0


def run_playback(args: argparse.Namespace) -> int:
    """A recording through perception: per frame, the grasps the robot would be given; nothing moves."""
    from grasping.cloud import table_aligned_pose
    from hardware.realsense import CameraError, RealSenseCamera, RealSenseConfig

    calibration = _calibration(args) if args.calibration else None
    if calibration is not None and calibration[0] != "T_base_cam":
        raise DistillGraspError(f"{args.calibration}: an eye-in-hand calibration needs the arm's pose; a recording "
                                "is played with a fixed camera's T_base_cam, or with none")
    completer = completer_for(args.depth, args.weights_dir, args.backend)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    with RealSenseCamera(RealSenseConfig(frame_timeout_ms=2000), playback=args.playback) as camera:
        for i in range(args.trials):
            try:
                frame = camera.read()
            except CameraError:
                if i == 0:
                    raise
                break  # the recording ended
            frame.T_base_cam = calibration[1] if calibration is not None else table_aligned_pose(frame)
            seen = perceive(frame, completer, GraspDetector())
            best = seen.grasps[0] if seen.grasps else None
            title = f"{Path(args.playback).name} frame {i}, {args.depth}"
            save_png(perception_picture(frame, seen.completed, seen.grasps, best, title),
                     out / "images" / f"frame-{i}.png")
            lines.append({"frame": i, "depth": args.depth, "sensor": frame.sensor, "perception_ms": seen.ms,
                          "reason": seen.reason, "grasps": [asdict(g) for g in seen.grasps[:10]],
                          "calibrated": calibration is not None})
            where = (f"best grasp at ({best.center[0]:.3f}, {best.center[1]:.3f}, {best.center[2]:.3f}) m, width "
                     f"{best.width * 1000:.0f} mm of {len(seen.grasps)}" if best else seen.reason)
            print(f"frame {i}: {where}; perception {seen.ms:.0f} ms")
            if args.view and seen.completed is not None:
                show_3d(seen.completed, seen.grasps, best, title)
    (out / "grasps.json").write_text(json.dumps(lines, indent=2) + "\n")
    print(f"{len(lines)} frames of {args.playback}; grasps in {out / 'grasps.json'}, pictures in {out / 'images'}")
    return 0


def _calibration(args: argparse.Namespace):
    from hardware.calibration import load_calibration

    return load_calibration(args.calibration)


def run_robot(args: argparse.Namespace, devices=None) -> int:
    """The real cell. ``devices`` = (camera, robot, gripper) replaces the hardware (tests).

    Order: check the configuration (calibration, weights), connect read-only, ask, then take control of the arm
    and activate the gripper. Every fault ends the same way: the arm stopped (a held object stays held), every
    device disconnected on its own, the attempt logged as aborted, the summary written, one line, non-zero exit.
    """
    from hardware.cell import DryRunGripper, RealCell
    from hardware.ur10e import URConfig

    if args.camera != "realsense":
        raise DistillGraspError(f"supported camera: realsense (got {args.camera})")
    if not args.ip:
        raise DistillGraspError("--robot needs --ip (the UR10e's address), on the command line or in --config")
    if not args.calibration:
        raise DistillGraspError("no --calibration file; make one with `distillgrasp calibrate`")
    key, T_calib = _calibration(args)
    completer = completer_for(args.depth, args.weights_dir, args.backend)
    out = Path(args.out)
    trial_log = TrialLog(out / "attempts.jsonl").lock()  # one run per folder
    try:
        existing = trial_log.records()
        check_resume(existing, out, {args.depth: completer}, {}, True)  # the camera's family is known later
    except BaseException:
        trial_log.unlock()
        raise
    first = len(existing)  # a rerun with the same --out goes on from there
    records: list[dict] = []
    opened: list = []
    robot = None
    code = 0
    index = None  # the attempt under way, if any
    try:
        if devices is None:
            from hardware.realsense import RealSenseCamera, RealSenseConfig
            from hardware.robotiq import RobotiqGripper
            from hardware.ur10e import UR10eRTDE

            cc = args.cell
            camera = RealSenseCamera(RealSenseConfig(width=cc.width, height=cc.height, fps=cc.fps, serial=cc.serial))
            robot = UR10eRTDE(args.ip, URConfig(workspace=cc.workspace), dry_run=args.dry_run, log=print)
            gripper = DryRunGripper() if args.dry_run else RobotiqGripper(args.ip)
        else:
            camera, robot, gripper = devices
        for device in (camera, robot, gripper):  # read-only: nothing moves
            device.connect()
            opened.append(device)
        check_sensor(args.depth, completer, camera.sensor or "d435", args.allow_fallback)
        if not args.dry_run and not args.yes:
            answer = input(f"The UR10e at {args.ip} and its gripper are about to move. Workspace clear? [y/N] ")
            if answer.strip().lower() != "y":
                print("nothing moved")
                trial_log.unlock()
                return 1
        robot.enable()
        gripper.activate()
        cell: Cell = RealCell(camera, robot, gripper, key, T_calib, dry_run=args.dry_run, pick=args.cell.pick)
        failed = []  # grasps that failed since the last success: the next attempt avoids them
        for index in range(first, first + args.trials):
            result = attempt(cell, completer, GraspDetector(), failed)
            remember(failed, result)
            record = {**result.record(), "scene_seed": index, "depth": args.depth, "robot": args.ip,
                      "dry_run": args.dry_run}
            trial_log.append(record)
            records.append(record)
            save_attempt_picture(result, out / "images" / f"attempt-{index}.png", title=f"attempt {index + 1}")
            _report(result, f"attempt {index + 1}")
            _view(args, result, f"attempt {index + 1}")
            if result.stop_active:
                raise StopActiveError(f"{result.reason}; the session ends: clear the stop, then run again")
        index = None
    except KeyboardInterrupt:
        code, message = 130, "interrupted; rerun the same command to resume"
    except DistillGraspError as exc:
        code, message = 2, f"error: {exc}"
    except Exception as exc:  # noqa: BLE001  a lost connection, a library's error: the same clean end
        code, message = 1, f"error: unexpected {type(exc).__name__}: {exc}"
    finally:
        if robot is not None and code:
            robot.stop()  # never raises; the gripper keeps what it holds
        for device in reversed(opened):
            try:
                device.disconnect()
            except Exception as exc:  # noqa: BLE001  one device's failure must not keep the others connected
                log.warning("could not disconnect %s: %s", type(device).__name__, exc)
    if code:
        if index is not None and not any(r["scene_seed"] == index for r in records):
            aborted = {"grasp": None, "success": False, "reason": f"aborted: {message.removeprefix('error: ')}",
                       "scene_seed": index, "depth": args.depth, "robot": args.ip, "dry_run": args.dry_run}
            trial_log.append(aborted)
            records.append(aborted)
        print(message, file=sys.stderr)
    if records:
        _finish(records, out, args.depth)
    trial_log.unlock()
    return code


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="distillgrasp run", description=__doc__, formatter_class=HelpFormatter)
    mode = ap.add_argument_group("mode (one of)")
    mode.add_argument("--sim", action="store_true", help="run in the PyBullet simulator")
    mode.add_argument("--robot", choices=("ur10e",), help="run on a real robot")
    mode.add_argument("--playback", metavar="FILE",
                      help="run perception on a RealSense recording (.db3 or .bag), no robot")
    real = ap.add_argument_group("real cell")
    real.add_argument("--config", metavar="cell.yaml", help="cell config file; flags override it")
    real.add_argument("--ip", help="robot controller address")
    real.add_argument("--camera", default="realsense", choices=("realsense",))
    real.add_argument("--serial", default=None, help="RealSense serial number (any camera when not given)")
    real.add_argument("--calibration", metavar="FILE", default=None, help="hand-eye calibration JSON")
    real.add_argument("--dry-run", action="store_true", help="plan and print moves without moving")
    real.add_argument("--yes", action="store_true", help="no confirmation before moving")
    ap.add_argument("--allow-fallback", action="store_true",
                    help="complete a camera's frames with weights trained for another camera when its own are missing")
    ap.add_argument("--depth", default="student", choices=COMPLETERS, help="depth source")
    ap.add_argument("--weights-dir", metavar="DIR", default=None,
                    help="folder with student/teacher .safetensors to use instead of the shipped weights")
    ap.add_argument("--backend", default="auto", choices=("torch", "onnx", "auto"),
                    help="how networks run (auto: onnxruntime where the export works, else torch)")
    ap.add_argument("--trials", type=int, default=3, help="scenes, attempts or recorded frames")
    ap.add_argument("--seed", type=int, default=0, help="--sim: first scene seed")
    ap.add_argument("--sensor", default="d435", choices=SIM_SENSORS,
                    help="--sim: the simulated camera, a D400 stereo model or the l515 lidar (a real RealSense "
                         "names its own)")
    ap.add_argument("--renderer", default="fast", choices=RENDERERS,
                    help="--sim: how the camera image is made, fast (rasterised) or mitsuba (path traced)")
    ap.add_argument("--gui", action="store_true", help="--sim: open the PyBullet window (needs a display)")
    ap.add_argument("--view", action="store_true", help="3D view of the cloud and grasps after each perception")
    ap.add_argument("--out", metavar="DIR", default="out", help="output folder")
    return ap


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the cell config file read and the flags laid over it (``args.cell``)."""
    from distillgrasp.config import CellConfig, load_cell_config

    ap = parser()
    args = ap.parse_args(argv)
    if sum((args.sim, bool(args.robot), bool(args.playback))) != 1:
        ap.error("choose one mode: --sim, --robot ur10e or --playback FILE")
    if args.trials < 1:
        ap.error(f"--trials must be at least 1, got {args.trials}")
    if args.seed < 0:
        ap.error(f"--seed must be 0 or more, got {args.seed}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        ap.error(f"--out {args.out} is a file; give a folder")
    cell = load_cell_config(args.config) if args.config else CellConfig()
    args.cell = cell.with_overrides(ip=args.ip, serial=args.serial, calibration=args.calibration)
    args.ip, args.calibration = args.cell.ip, args.cell.calibration
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.sim:
            return run_sim(args)
        if args.playback:
            return run_playback(args)
        return run_robot(args)
    except DistillGraspError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
