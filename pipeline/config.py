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
    """Parallel-jaw gripper shaped like a Robotiq 2F-85 on the UR coupling. The TCP is the centre between the
    finger pads. Lengths in metres along the tool frame (z from the flange towards the fingertips).

    The 2F-85's published figures: 85 mm stroke, grip force 20-235 N, closing speed 20-150 mm/s, 0.925 kg.
    Its pads are 22 mm wide and about 37.5 mm long, 8 mm thick on a finger link. Its fingers move on a
    four-bar linkage, so the pads sit about 0.14 m below the flange (coupling included) fully open and 0.17 m
    fully closed; ``tcp_offset`` is the pad centre at a typical 50-70 mm opening."""

    stroke_m: float = 0.085
    finger_thickness: float = 0.018  # pad plus finger link, along the closing direction
    finger_depth: float = 0.022  # pad width, across the closing direction
    finger_length: float = 0.0375  # pad height along the approach; fingertips are half of it below the TCP
    tcp_offset: float = 0.155  # flange to TCP along tool z
    palm_width: float = 0.09  # the gripper body (coupling and housing) below the flange: along the closing direction
    palm_depth: float = 0.06  # across it
    palm_height: float = 0.08  # along tool z
    palm_offset: float = 0.04  # flange to the palm's centre along tool z
    pad_thickness: float = 0.008  # the rubber pad: the inner part of ``finger_thickness``, over ``finger_length``
    min_force_n: float = 20.0  # grip force range, newtons
    max_force_n: float = 235.0
    min_speed: float = 0.02  # closing/opening speed range of the jaws, m/s
    max_speed: float = 0.15
    closing_speed: float = 0.085  # the speed moves use unless told otherwise (a Robotiq's SPE 128 of 255)
    mass_kg: float = 0.925

    def __post_init__(self) -> None:
        if not 0 < self.pad_thickness <= self.finger_thickness:
            raise ValueError(f"GripperConfig: pad_thickness {self.pad_thickness} must lie in (0, finger_thickness "
                             f"{self.finger_thickness}]")
        if not 0 < self.min_force_n <= self.max_force_n:
            raise ValueError(f"GripperConfig: force range {self.min_force_n}-{self.max_force_n} N is not valid")
        if not 0 < self.min_speed <= self.closing_speed <= self.max_speed:
            raise ValueError(f"GripperConfig: closing_speed {self.closing_speed} m/s must lie in "
                             f"[{self.min_speed}, {self.max_speed}] m/s")
        if self.palm_above_tcp <= self.finger_length / 2:
            raise ValueError("GripperConfig: the palm reaches down past the finger pads")

    @property
    def palm_above_tcp(self) -> float:
        """Height of the palm's underside above the TCP (what the fingers leave free below the body)."""
        return self.tcp_offset - self.palm_offset - self.palm_height / 2


DEFAULT_WORKSPACE = WorkspaceConfig()
DEFAULT_GRIPPER = GripperConfig()
