"""The real cell: RealSense + UR10e + Robotiq as a ``grasping.cell.Cell``."""

from __future__ import annotations

import numpy as np

from grasping.cell import Cell
from grasping.execute import PickConfig
from grasping.robot import Gripper, Robot
from pipeline.types import Camera, RGBDFrame


class DryRunGripper(Gripper):
    """Stands in for the gripper in a dry run: says what it would do, moves nothing."""

    def __init__(self, log=print):
        self.log = log

    def open(self, width: float | None = None) -> None:
        self.log("would open the gripper" + (f" to {width * 1000:.0f} mm" if width is not None else ""))

    def close(self, force: float) -> bool:
        self.log(f"would close the gripper with {force:.0f} N")
        return False

    def width(self) -> float:
        return 0.0


class RealCell(Cell):
    """``calibration_key`` says what ``T_calib`` is: "T_base_cam" (a fixed camera) or "T_flange_cam" (a camera
    on the wrist, placed by the arm's current pose at every capture)."""

    def __init__(self, camera: Camera, robot: Robot, gripper: Gripper, calibration_key: str, T_calib: np.ndarray,
                 dry_run: bool = False, pick: PickConfig = PickConfig()):
        self.camera, self.robot, self.gripper, self.dry_run = camera, robot, gripper, dry_run
        self.calibration_key, self.T_calib, self.pick = calibration_key, T_calib, pick

    def capture(self) -> RGBDFrame:
        frame = self.camera.read()
        if self.calibration_key == "T_base_cam":
            frame.T_base_cam = self.T_calib
        else:  # eye-in-hand: camera pose = current flange pose @ T_flange_cam
            from grasping.kinematics import fk

            frame.T_base_cam = fk(self.robot.joints()) @ self.T_calib
        return frame

    def verify(self) -> tuple[bool, str]:
        """After the lift: the gripper still reports an object, or why not."""
        if self.dry_run:
            return False, "dry run: nothing executed"
        return (True, "ok") if self.gripper.holding() else (False, "empty gripper")
