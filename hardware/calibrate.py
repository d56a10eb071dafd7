"""Hand-eye calibration of the RealSense against the UR10e with a ChArUco board.

    distillgrasp calibrate --ip IP [--eye-to-hand | --eye-in-hand] --calibration FILE
                           [--serial S] [--views N] [--centre X Y Z] [--yes]

Eye-to-hand (default): the camera is fixed over the table and the board is mounted on the gripper; the
result is ``T_base_cam``, which ``distillgrasp run --calibration FILE`` loads. Eye-in-hand: the camera is on the flange,
the board lies on the table; the result is ``T_flange_cam``. The robot visits ``--views`` poses around
``--centre`` (tool pointing down, tilted up to 20 deg); at each one the board is detected and its pose paired
with the flange pose. The report gives how consistent the views are (residuals in mm and degrees).
"""

from __future__ import annotations

import argparse
import logging
import sys

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from grasping.robot import RobotError, top_down_pose
from hardware.calibration import BoardConfig, CalibrationError, board_pose, save_calibration, solve_hand_eye
from pipeline.cli import HelpFormatter, setup_logging
from pipeline.config import DEFAULT_GRIPPER
from pipeline.errors import DistillGraspError

logger = logging.getLogger(__name__)


def calibration_poses(centre, n: int, seed: int = 0, tilt_deg: float = 20.0, spread: float = 0.08) -> list[np.ndarray]:
    """``n`` TCP poses around ``centre``: tool down, random tilt and yaw, a few cm apart."""
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(n):
        T = top_down_pose(centre[0] + rng.uniform(-spread, spread), centre[1] + rng.uniform(-spread, spread),
                          centre[2] + rng.uniform(-spread / 2, spread / 2), rng.uniform(-0.8, 0.8))
        tilt = Rotation.from_rotvec(np.r_[rng.uniform(-1, 1, 2), 0.0] * np.radians(tilt_deg)).as_matrix()
        T[:3, :3] = T[:3, :3] @ tilt
        poses.append(T)
    return poses


def collect(robot, camera, poses, board: BoardConfig = BoardConfig(), confirm=None, speed: float = 0.1,
            tcp_offset: float = DEFAULT_GRIPPER.tcp_offset, log=print):
    """Visit TCP ``poses``; returns (flange poses, board poses) of the views where the board was found."""
    T_tcp_flange = np.eye(4)
    T_tcp_flange[2, 3] = -tcp_offset
    flanges, views = [], []
    for i, T in enumerate(poses):
        if confirm is not None and not confirm(i):
            break
        robot.move_linear(T, speed)
        frame = camera.read()
        gray = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY)
        T_cb = board_pose(gray, frame.intrinsics, board)
        if T_cb is None:
            log(f"view {i + 1}/{len(poses)}: board not found, skipped")
            continue
        flanges.append(robot.tcp_pose() @ T_tcp_flange)
        views.append(T_cb)
        log(f"view {i + 1}/{len(poses)}: board at {np.round(T_cb[:3, 3], 3).tolist()} m from the camera")
    return flanges, views


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp calibrate", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--ip", metavar="IP", required=True, help="the UR10e controller's address")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--eye-to-hand", action="store_true", help="camera fixed, board on the gripper (default)")
    mode.add_argument("--eye-in-hand", action="store_true", help="camera on the flange, board on the table")
    ap.add_argument("--calibration", metavar="FILE", required=True, help="calibration JSON to write")
    ap.add_argument("--serial", metavar="S", default=None,
                    help="RealSense serial number (default: the first camera found)")
    ap.add_argument("--views", metavar="N", type=int, default=15, help="poses to visit")
    ap.add_argument("--centre", type=float, nargs=3, default=(0.7, 0.0, 0.35), metavar=("X", "Y", "Z"),
                    help="centre of the poses in the robot's base frame, metres")
    ap.add_argument("--yes", action="store_true", help="do not ask before each move")
    args = ap.parse_args(argv)
    from hardware.realsense import RealSenseCamera, RealSenseConfig
    from hardware.ur10e import UR10eRTDE

    eye_in_hand = args.eye_in_hand
    confirm = None if args.yes else (lambda i: input(f"move to view {i + 1}? [Enter = yes, q = stop] ").strip() != "q")
    try:
        with UR10eRTDE(args.ip) as robot, RealSenseCamera(RealSenseConfig(serial=args.serial)) as camera:
            flanges, views = collect(robot, camera, calibration_poses(args.centre, args.views), confirm=confirm,
                                     log=logger.info)
        T, report = solve_hand_eye(flanges, views, eye_in_hand)
    except (DistillGraspError, RobotError, CalibrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save_calibration(args.calibration, T, eye_in_hand, report)
    key = "T_flange_cam" if eye_in_hand else "T_base_cam"
    print(f"{key} written to {args.calibration}; {report['views']} views, position residual rms "
          f"{report['position_residual_mm']['rms']:.1f} mm, rotation residual max "
          f"{report['rotation_residual_deg']['max']:.2f} deg")
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(main())
