"""The safety gate every motion passes before anything is sent, on the real arm and the simulated one alike.

    gate = SafetyGate(MotionLimits(workspace=WorkspaceBox(...)))
    gate.check_linear(T_target, speed, acceleration)      # raises SafetyError, naming what is wrong
    gate.check_joints(q_target, speed, acceleration)

A linear target must be a finite 4x4 rigid transform (a proper rotation: orthonormal, determinant +1) whose
position lies in the workspace box; a joint target six finite angles within the UR10e's joint limits; speeds
and accelerations finite, positive and within the configured caps. The real driver adds the controller's own
``isPoseWithinSafetyLimits``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grasping.kinematics import UR10E, URParameters
from grasping.robot import LimitError, WorkspaceBox

ROTATION_TOLERANCE = 1e-6  # |R R^T - I| and |det R - 1|


class SafetyError(LimitError):
    """A motion target or its speed failed the safety gate; nothing was sent."""


@dataclass(frozen=True)
class MotionLimits:
    """Where the TCP may go and how fast (base frame, metres, seconds, radians)."""

    workspace: WorkspaceBox = field(default_factory=WorkspaceBox)
    max_linear_speed: float = 0.25  # m/s
    max_linear_acceleration: float = 1.2  # m/s^2
    max_joint_speed: float = 1.05  # rad/s
    max_joint_acceleration: float = 1.4  # rad/s^2


def _finite_positive(what: str, value: float, cap: float, unit: str) -> None:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value) and 0 < value <= cap):
        raise SafetyError(f"{what} {value!r} {unit} is outside (0, {cap}] {unit}")


def check_rotation(R: np.ndarray, what: str = "target orientation") -> None:
    """``R`` is a proper rotation: finite, orthonormal, determinant +1 (no mirror)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.isfinite(R).all():
        raise SafetyError(f"{what} is not a finite 3x3 rotation")
    if np.abs(R @ R.T - np.eye(3)).max() > ROTATION_TOLERANCE:
        raise SafetyError(f"{what} is not orthonormal (|R R^T - I| = {np.abs(R @ R.T - np.eye(3)).max():.2g})")
    if abs(np.linalg.det(R) - 1.0) > ROTATION_TOLERANCE:
        raise SafetyError(f"{what} is a mirror, not a rotation (det = {np.linalg.det(R):.3f})")


class SafetyGate:
    def __init__(self, limits: MotionLimits = MotionLimits(), params: URParameters = UR10E):
        self.limits, self.params = limits, params

    def check_pose(self, T) -> np.ndarray:
        """A TCP target as a checked float64 4x4 transform."""
        try:
            T = np.asarray(T, dtype=np.float64)
        except (TypeError, ValueError):
            raise SafetyError(f"TCP target {T!r} is not a 4x4 transform") from None
        if T.shape != (4, 4):
            raise SafetyError(f"TCP target has shape {T.shape}, not 4x4")
        if not np.isfinite(T).all():
            raise SafetyError(f"TCP target holds NaN or infinite values: {np.round(T[:3, 3], 3).tolist()}")
        if not np.allclose(T[3], (0, 0, 0, 1)):
            raise SafetyError(f"TCP target's last row is {T[3].tolist()}, not [0, 0, 0, 1]")
        check_rotation(T[:3, :3])
        try:
            self.limits.workspace.check(T)
        except LimitError as exc:
            raise SafetyError(str(exc)) from None
        return T

    def check_linear(self, T, speed: float, acceleration: float | None = None) -> np.ndarray:
        T = self.check_pose(T)
        lim = self.limits
        _finite_positive("linear speed", speed, lim.max_linear_speed, "m/s")
        if acceleration is not None:
            _finite_positive("linear acceleration", acceleration, lim.max_linear_acceleration, "m/s^2")
        return T

    def check_joints(self, q, speed: float, acceleration: float | None = None) -> np.ndarray:
        try:
            q = np.asarray(q, dtype=np.float64)
        except (TypeError, ValueError):
            raise SafetyError(f"joint target {q!r} is not six angles") from None
        if q.shape != (6,):
            raise SafetyError(f"joint target has shape {q.shape}, not six angles")
        if not np.isfinite(q).all():
            raise SafetyError(f"joint target holds NaN or infinite values: {q.tolist()}")
        lo, hi = self.params.joint_limits
        if np.any(q < lo) or np.any(q > hi):
            raise SafetyError(f"joint target {np.round(q, 3).tolist()} rad is outside the UR10e's joint limits "
                              f"[{lo:.3f}, {hi:.3f}]")
        lim = self.limits
        _finite_positive("joint speed", speed, lim.max_joint_speed, "rad/s")
        if acceleration is not None:
            _finite_positive("joint acceleration", acceleration, lim.max_joint_acceleration, "rad/s^2")
        return q
