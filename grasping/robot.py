"""Robot and gripper interfaces, and the pose type they exchange.

Poses are 4x4 transforms of the tool centre point (TCP) in the robot ``base`` frame (UR's controller frame),
metres. ``pose_to_ur`` / ``pose_from_ur`` convert to and from UR's [x, y, z, rx, ry, rz] (rotation vector).
Limits are enforced with exceptions (``LimitError``), never with ``assert``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.errors import DistillGraspError


class LimitError(DistillGraspError):
    """A motion target is outside the workspace box, the joint limits or the speed limits."""


class RobotError(DistillGraspError):
    """The robot stopped, faulted or lost its connection."""


class StopActiveError(RobotError):
    """A protective or emergency stop is active: the session ends; a new run asks the operator again."""


@dataclass(frozen=True)
class WorkspaceBox:
    """Axis-aligned box (base frame, metres) that every TCP target must lie in."""

    lo: tuple[float, float, float] = (0.35, -0.5, 0.005)
    hi: tuple[float, float, float] = (1.15, 0.5, 0.7)

    def check(self, T: np.ndarray) -> None:
        p = np.asarray(T, dtype=np.float64)[:3, 3]
        if not np.isfinite(p).all() or np.any(p < self.lo) or np.any(p > self.hi):
            raise LimitError(f"target {np.round(p, 3).tolist()} m is outside the workspace box "
                             f"{list(self.lo)} - {list(self.hi)}")


def pose_to_ur(T: np.ndarray) -> list[float]:
    T = np.asarray(T)
    return [*T[:3, 3].tolist(), *Rotation.from_matrix(T[:3, :3]).as_rotvec().tolist()]


def pose_from_ur(pose) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = pose[:3]
    T[:3, :3] = Rotation.from_rotvec(pose[3:6]).as_matrix()
    return T


def top_down_pose(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    """TCP pose pointing straight down (tool z = -base z) with the jaws closing along ``yaw`` (radians)."""
    T = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    # tool x = closing direction in the table plane, tool z = down, tool y = z cross x
    x_axis = np.array([c, s, 0.0])
    z_axis = np.array([0.0, 0.0, -1.0])
    T[:3, 0], T[:3, 1], T[:3, 2] = x_axis, np.cross(z_axis, x_axis), z_axis
    T[:3, 3] = (x, y, z)
    return T


def backed_off(start: np.ndarray, here: np.ndarray, distance: float) -> np.ndarray:
    """Pose ``here`` moved ``distance`` back towards ``start`` along the line between them (no further than
    ``start``), orientation kept: where a guarded move that stopped on a contact backs off to."""
    way_back = np.asarray(start, dtype=np.float64)[:3, 3] - here[:3, 3]
    length = float(np.linalg.norm(way_back))
    back = np.array(here, dtype=np.float64)
    if length > 0:
        back[:3, 3] += way_back / length * min(distance, length)
    return back


class Robot(abc.ABC):
    """An arm driven by TCP poses (base frame) or joint angles. ``connect``/``disconnect`` do nothing for an arm
    that needs no connection (a simulated one)."""

    def connect(self) -> None:
        """Open the connection to the controller."""

    def enable(self) -> None:
        """Take control of the arm so that it can move (after the operator has confirmed)."""

    def check_linear(self, pose: np.ndarray, speed: float) -> None:
        """Raise ``LimitError`` if ``move_linear(pose, speed)`` would be refused; moves nothing. (Both arms
        here answer with their safety gate; an arm without one accepts.)"""

    def disconnect(self) -> None:
        """Stop and close the connection; safe to call twice, never raises."""

    @abc.abstractmethod
    def move_linear(self, pose: np.ndarray, speed: float) -> np.ndarray:
        """Move the TCP in a straight line to ``pose`` at ``speed`` m/s; returns the pose reached."""

    def descend(self, pose: np.ndarray, speed: float) -> bool:
        """A guarded straight-line move to ``pose``: the arm stops at the first contact it senses and backs off
        a little; True when it stopped on contact, False when it reached ``pose``. This default, for an arm
        that senses no contact, is a plain ``move_linear``."""
        self.move_linear(pose, speed)
        return False

    @abc.abstractmethod
    def move_joints(self, q, speed: float) -> np.ndarray:
        """Move to joint angles ``q`` (radians) at ``speed`` rad/s; returns the joints reached."""

    @abc.abstractmethod
    def tcp_pose(self) -> np.ndarray: ...

    @abc.abstractmethod
    def joints(self) -> np.ndarray: ...

    @abc.abstractmethod
    def stop(self) -> None: ...


class Gripper(abc.ABC):
    """A parallel-jaw gripper. ``connect``, ``activate`` and ``disconnect`` do nothing for a gripper that needs
    no connection or activation."""

    def connect(self) -> None:
        """Open the connection to the gripper."""

    def activate(self) -> None:
        """Make the gripper ready to move (a Robotiq resets and calibrates its stroke); it may move the fingers."""

    def disconnect(self) -> None:
        """Close the connection; safe to call twice."""

    def holding(self) -> bool:
        """Whether an object is between the jaws now (default: the jaws stopped short of closing)."""
        return self.width() > 0.004

    @abc.abstractmethod
    def open(self, width: float | None = None) -> None:
        """Open to ``width`` metres (the full stroke when None)."""

    @abc.abstractmethod
    def close(self, force: float) -> bool:
        """Close with ``force`` newtons; True when the gripper reports an object between the jaws."""

    @abc.abstractmethod
    def width(self) -> float:
        """Current opening in metres."""
