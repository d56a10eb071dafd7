"""The workcell the trial loop runs on: a camera looking at a table, an arm and a gripper.

``Cell`` is all ``grasping.trials.attempt`` asks of a cell. ``sim.world.SimWorld`` (PyBullet) and
``hardware.cell.RealCell`` (RealSense, UR10e, Robotiq) implement it; which one runs is decided by the
commands in ``distillgrasp/``, never here.
"""

from __future__ import annotations

import abc
import time

from grasping.execute import PickConfig
from grasping.robot import Gripper, Robot
from pipeline.types import RGBDFrame


class Cell(abc.ABC):
    """A workcell. ``robot`` and ``gripper`` are what the executor drives; ``sensor`` names the camera family
    (``pipeline.types.SENSOR_FAMILIES``; "" = the frame says) and ``renderer`` how a simulated camera makes its
    image ("" on a real cell): both are recorded with every attempt."""

    robot: Robot
    gripper: Gripper
    pick: PickConfig = PickConfig()  # heights, speeds, force and where picked objects go
    sensor: str = ""
    renderer: str = ""

    @abc.abstractmethod
    def capture(self) -> RGBDFrame:
        """A frame with its camera pose in the robot base frame (``T_base_cam``)."""

    def mark(self) -> None:
        """A pick begins: remember what the cell's judges compare against (e.g. every object's pose)."""

    def check_approach(self) -> tuple[bool, str]:
        """After the descent, before the fingers close: did the open gripper reach the grasp cleanly?
        (True, "ok") where the cell cannot tell."""
        return True, "ok"

    @abc.abstractmethod
    def verify(self) -> tuple[bool, str]:
        """After the lift: (True, "ok") when the target is held, else (False, the reason)."""

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of the cell's time pass (simulated time in simulation)."""
        time.sleep(seconds)

    def describe(self) -> dict:
        """Extra fields for the attempt's log record (e.g. the objects a simulated scene holds)."""
        return {}

    def truth(self, grasp) -> dict:
        """Before a pick: where ``grasp`` (a ``grasping.detect.Grasp``) stands against the object it is meant for,
        from what the cell knows of its objects (a simulation knows them all; {} where the cell cannot tell)."""
        return {}

    def objects(self) -> list[dict]:
        """What the cell knows of its objects, one dict each: ``kind``, ``glass`` (bool), ``centre`` (x, y of the
        middle of its box, metres, base frame) and ``top`` (the box's highest z); a simulation knows them all,
        [] where the cell cannot tell."""
        return []

    def objects_left(self) -> int | None:
        """How many objects are left in the workspace to be cleared (None where the cell cannot count them)."""
        return None

    def remove_picked(self) -> dict:
        """After a pick of a clutter-removal round: take the object a successful pick carried off out of the
        cell, and whatever else left the workspace. Returns ``{"removed": kind or None, "gone": [kinds]}``
        ({} where the cell cannot tell: a real cell's picked objects are already set aside)."""
        return {}

    def close(self) -> None:
        """Release what the cell holds open (a simulation, device connections)."""

    def __enter__(self) -> Cell:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
