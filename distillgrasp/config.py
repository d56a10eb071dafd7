"""The cell config file: what describes one real cell, kept in one YAML file instead of on the command line.

    robot:
      ip: 192.168.1.10            # the UR10e controller (the Robotiq URCap listens there too)
    camera:
      serial: "f1230456"          # the RealSense to use (any one when left out)
      width: 640
      height: 480
      fps: 30
    calibration: calib.json       # hand-eye calibration; relative paths are read from the YAML's folder
    workspace:                    # every TCP target must lie in this box (robot base frame, metres)
      lo: [0.35, -0.5, 0.005]
      hi: [1.15, 0.5, 0.7]
    gripper:
      force: 40                   # closing force, newtons (Robotiq 2F-85: 20-235)
    place: [0.45, -0.45, 0.25]    # where picked objects are put down (x, y, z)

Every key is optional; command-line flags (``--ip``, ``--serial``, ``--calibration``) override the file. A bad
value stops with one line naming the file and the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from grasping.execute import PickConfig
from grasping.robot import WorkspaceBox
from pipeline.errors import DistillGraspError

FORCE_RANGE_N = (20.0, 235.0)  # what a Robotiq 2F-85 can be set to


class CellConfigError(DistillGraspError):
    """A cell config file that cannot be read or holds a bad value."""


@dataclass(frozen=True)
class CellConfig:
    ip: str | None = None
    serial: str | None = None
    width: int = 640
    height: int = 480
    fps: int = 30
    calibration: str | None = None
    workspace: WorkspaceBox = field(default_factory=WorkspaceBox)
    pick: PickConfig = field(default_factory=PickConfig)

    def with_overrides(self, **flags) -> CellConfig:
        """The same config with every flag that was given (not None) taking the file's place."""
        from dataclasses import replace

        return replace(self, **{k: v for k, v in flags.items() if v is not None})


_KEYS = {"robot": {"ip"}, "camera": {"serial", "width", "height", "fps"}, "calibration": None,
         "workspace": {"lo", "hi"}, "gripper": {"force"}, "place": None}


def load_cell_config(path: str | Path) -> CellConfig:
    """Read and check a cell config file (format in this module's docstring)."""
    path = Path(path)
    if not path.is_file():
        raise CellConfigError(f"cell config not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CellConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise CellConfigError(f"{path}: expected a mapping of keys ({', '.join(_KEYS)}), got {type(doc).__name__}")

    def bad(key: str, why: str) -> CellConfigError:
        return CellConfigError(f"{path}: {key}: {why}")

    for key, value in doc.items():
        if key not in _KEYS:
            raise bad(key, f"unknown key; known: {', '.join(_KEYS)}")
        sub = _KEYS[key]
        if sub is not None:
            if not isinstance(value, dict):
                raise bad(key, f"expected a mapping with {', '.join(sorted(sub))}, got {value!r}")
            unknown = sorted(set(value) - sub)
            if unknown:
                raise bad(f"{key}.{unknown[0]}", f"unknown key; known: {', '.join(sorted(sub))}")

    def numbers(key: str, value, n: int) -> tuple[float, ...]:
        if not (isinstance(value, (list, tuple)) and len(value) == n
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
            raise bad(key, f"expected {n} finite numbers (metres), got {value!r}")
        return tuple(float(v) for v in value)

    def integer(key: str, value, lo: int, hi: int) -> int:
        if not (isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi):
            raise bad(key, f"expected a whole number in {lo}-{hi}, got {value!r}")
        return value

    def text(key: str, value) -> str:
        if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value).strip() == "":
            raise bad(key, f"expected a non-empty string, got {value!r}")
        return str(value)

    robot, camera = doc.get("robot", {}), doc.get("camera", {})
    cfg: dict = {}
    if "ip" in robot:
        cfg["ip"] = text("robot.ip", robot["ip"])
    if "serial" in camera:
        cfg["serial"] = text("camera.serial", camera["serial"])
    for key, (lo, hi) in (("width", (16, 4096)), ("height", (16, 4096)), ("fps", (1, 300))):
        if key in camera:
            cfg[key] = integer(f"camera.{key}", camera[key], lo, hi)
    if "calibration" in doc:
        name = Path(text("calibration", doc["calibration"])).expanduser()
        cfg["calibration"] = str(name if name.is_absolute() else path.parent / name)
    box = WorkspaceBox()
    if "workspace" in doc:
        ws = doc["workspace"]
        lo = numbers("workspace.lo", ws["lo"], 3) if "lo" in ws else box.lo
        hi = numbers("workspace.hi", ws["hi"], 3) if "hi" in ws else box.hi
        if any(a >= b for a, b in zip(lo, hi)):
            raise bad("workspace", f"lo {list(lo)} must be below hi {list(hi)} on every axis")
        box = WorkspaceBox(lo, hi)
    pick = PickConfig()
    if "force" in doc.get("gripper", {}):
        force = doc["gripper"]["force"]
        if not (isinstance(force, (int, float)) and not isinstance(force, bool)
                and FORCE_RANGE_N[0] <= force <= FORCE_RANGE_N[1]):
            raise bad("gripper.force", f"expected newtons in {FORCE_RANGE_N[0]:.0f}-{FORCE_RANGE_N[1]:.0f}, "
                                       f"got {force!r}")
        pick = PickConfig(**{**pick.__dict__, "grip_force": float(force)})
    if "place" in doc:
        x, y, z = numbers("place", doc["place"], 3)
        if not (all(a <= b for a, b in zip(box.lo, (x, y, z))) and all(a <= b for a, b in zip((x, y, z), box.hi))):
            raise bad("place", f"[{x}, {y}, {z}] lies outside the workspace box {list(box.lo)} - {list(box.hi)}")
        pick = PickConfig(**{**pick.__dict__, "place_xy": (x, y), "place_z": z})
    return CellConfig(workspace=box, pick=pick, **cfg)
