"""Configuration shared by simulation, grasping and hardware: each constant lives here once.

Frames: the robot base frame (UR ``base``), metres. The table top is the plane z = ``table_z``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkspaceConfig:
    """Where the table is and where objects lie, in the robot base frame (metres)."""

    table_z: float = 0.0
    # Table top extent (centre x, y and half sizes). The robot base stands at the origin, behind the table edge.
    table_center: tuple[float, float] = (0.75, 0.0)
    table_half_size: tuple[float, float] = (0.55, 0.7)
    # Region in which objects are dropped: centre and half sizes (x, y).
    object_center: tuple[float, float] = (0.75, 0.0)
    object_half_size: tuple[float, float] = (0.14, 0.18)

    def __post_init__(self) -> None:
        for name in ("table_half_size", "object_half_size"):
            if min(getattr(self, name)) <= 0:
                raise ValueError(f"WorkspaceConfig.{name} must be positive, got {getattr(self, name)}")
        for i, axis in enumerate("xy"):
            lo = self.object_center[i] - self.object_half_size[i]
            hi = self.object_center[i] + self.object_half_size[i]
            if lo < self.table_center[i] - self.table_half_size[i] or hi > self.table_center[i] + self.table_half_size[i]:
                raise ValueError(f"WorkspaceConfig: object region leaves the table along {axis}")


@dataclass(frozen=True)
class GripperConfig:
    """Parallel-jaw gripper (Robotiq 2F-85-like). The TCP is the centre between the finger pads."""

    stroke_m: float = 0.085
    finger_thickness: float = 0.012  # along the closing direction, metres
    finger_depth: float = 0.022  # across the closing direction
    finger_length: float = 0.04  # pad height along the approach; fingertips are half of it below the TCP
    tcp_offset: float = 0.16  # flange to TCP along tool z
    palm_width: float = 0.10  # the gripper body below the flange: along the closing direction
    palm_depth: float = 0.06  # across it
    palm_height: float = 0.06  # along tool z
    palm_offset: float = 0.06  # flange to the palm's centre along tool z

    @property
    def palm_above_tcp(self) -> float:
        """Height of the palm's underside above the TCP (what the fingers leave free below the body)."""
        return self.tcp_offset - self.palm_offset - self.palm_height / 2


DEFAULT_WORKSPACE = WorkspaceConfig()
DEFAULT_GRIPPER = GripperConfig()
