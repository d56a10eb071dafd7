"""Core data types shared by every stage: camera intrinsics, RGB-D frames, the camera interface.

Conventions used throughout the project:

* Camera frame: OpenCV (x right, y down, z forward), metres.
* Depth images are z-depth (along the optical axis) in metres, float32, and 0 means "no reading".
* Transforms are named ``T_target_source``: ``T_base_cam @ p_cam = p_base`` (4x4 homogeneous).
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import FrameError

# Depth beyond this (metres) is not a tabletop reading; values this large almost always mean millimetres.
MAX_PLAUSIBLE_DEPTH_M = 20.0

# Depth-camera families, by how they fail on glass: "d435" (active stereo: D415, D435, D455, ... holes and
# the depth behind), "l515" (lidar: the depth of the surface behind the glass). "" = unknown.
SENSOR_FAMILIES = ("d435", "l515")

# The camera models the simulator can be (sim.sensor.SENSORS): each belongs to a family above ("d4xx" are stereo).
# Here so the command lines can offer the choice without importing the simulator. The order is part of the
# generator's random streams: new models go at the end.
SIM_SENSORS = ("d435", "l515", "d415", "d455", "d405")

# How the simulated camera (sim.camera) makes its image: "fast" (rasterised, glass composited) or "mitsuba"
# (path traced). Here so the command lines can offer the choice without importing the simulator.
RENDERERS = ("fast", "mitsuba")


def sensor_family(name: str) -> str:
    """The family of a camera model name ("Intel RealSense L515", "D435I", "sim-d435", "L515", ...): "d435",
    "l515", or "" for a camera none of them describes."""
    n = name.lower().replace("intel realsense", "").replace("sim-", "").strip()
    if n.startswith("l5"):
        return "l515"
    if n.startswith("d4"):
        return "d435"
    return ""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an image of ``width`` x ``height`` pixels (pixel centres at integer coordinates)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"CameraIntrinsics: image size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"CameraIntrinsics: focal lengths must be positive, got fx={self.fx}, fy={self.fy}")

    @property
    def K(self) -> np.ndarray:
        """3x3 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> "CameraIntrinsics":
        """Intrinsics of the same camera resized to ``width`` x ``height`` (pixel-centre convention kept)."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(
            width=int(width),
            height=int(height),
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
        )

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> "CameraIntrinsics":
        """Square-pixel intrinsics with the principal point at the image centre and a horizontal field of view."""
        fx = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
        return cls(width, height, fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Nx3 points in the camera frame (metres) -> Nx2 pixel coordinates (u, v)."""
        p = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
        z = p[:, 2]
        return np.stack([self.fx * p[:, 0] / z + self.cx, self.fy * p[:, 1] / z + self.cy], axis=1)

    def backproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Nx2 pixel coordinates and N z-depths (metres) -> Nx3 points in the camera frame."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        z = np.asarray(depth, dtype=np.float64).reshape(-1)
        x = (uv[:, 0] - self.cx) / self.fx * z
        y = (uv[:, 1] - self.cy) / self.fy * z
        return np.stack([x, y, z], axis=1)

    def depth_to_points(self, depth: np.ndarray) -> np.ndarray:
        """HxW z-depth image (metres) -> HxWx3 points in the camera frame (0 where there is no depth)."""
        check_depth(depth, "depth", (self.height, self.width))
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        x = (u - self.cx) / self.fx * depth
        y = (v - self.cy) / self.fy * depth
        return np.stack([x, y, depth], axis=-1).astype(np.float32)


def check_depth(depth: np.ndarray, name: str, shape: tuple[int, int] | None = None) -> None:
    """Raise ``FrameError`` unless ``depth`` is a finite-or-NaN HxW float image in metres (0/NaN = no reading)."""
    if not isinstance(depth, np.ndarray) or depth.ndim != 2:
        got = getattr(depth, "shape", type(depth).__name__)
        raise FrameError(f"{name}: expected an HxW depth image, got shape {got}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise FrameError(
            f"{name}: expected float depth in metres, got dtype {depth.dtype} "
            "(integer depth is usually millimetres: divide by 1000)"
        )
    if shape is not None and depth.shape != tuple(shape):
        raise FrameError(f"{name}: expected shape {tuple(shape)}, got {depth.shape}")
    sample = depth[::4, ::4]  # the bulk of the readings decides the unit; a sixteenth of them tells it
    readings = sample[np.isfinite(sample) & (sample > 0)]
    if readings.size and np.median(readings) > MAX_PLAUSIBLE_DEPTH_M:
        raise FrameError(
            f"{name}: depth of median {np.median(readings):.1f} does not look like metres "
            f"(> {MAX_PLAUSIBLE_DEPTH_M} m); millimetres must be divided by 1000"
        )
    if (depth < 0).any():
        raise FrameError(f"{name}: negative depth {np.nanmin(depth):.3f} m")


def no_readings(depth: np.ndarray) -> tuple[np.ndarray, int]:
    """``depth`` as float32 with every reading that is not one made 0: NaN, infinite, and readings beyond
    ``MAX_PLAUSIBLE_DEPTH_M`` (a RealSense's far code, 65.535 m, among them); and how many such readings there
    were (zeros already there not counted)."""
    depth = depth.astype(np.float32, copy=False)
    bad = ~(depth <= MAX_PLAUSIBLE_DEPTH_M)  # NaN compares False: caught with +inf and the far codes
    count = int(bad.sum())
    return (np.where(bad, np.float32(0), depth) if count else depth), count


@dataclass
class RGBDFrame:
    """One RGB-D observation.

    rgb:        HxWx3 uint8, RGB order.
    depth:      HxW float32 z-depth in metres, 0 = no reading.
    intrinsics: the camera's intrinsics at this resolution.
    T_base_cam: 4x4 pose of the camera in the robot base frame, or None when unknown (dataset frames).
    mask:       optional HxW bool, True on transparent-object pixels.
    depth_gt:   optional HxW float32 ground-truth depth in metres (simulation and datasets), 0 = unknown.
    sensor:     the depth camera's family (one of ``SENSOR_FAMILIES``), "" when unknown.
    dropped:    how many depth readings were not readings (NaN, infinite, beyond range such as a far code) and
                were made 0; set on construction.
    """

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: CameraIntrinsics
    T_base_cam: np.ndarray | None = None
    timestamp: float = field(default_factory=time.time)
    mask: np.ndarray | None = None
    depth_gt: np.ndarray | None = None
    name: str = ""
    sensor: str = ""
    dropped: int = 0

    def __post_init__(self) -> None:
        h, w = self.intrinsics.height, self.intrinsics.width
        where = f"frame {self.name}: " if self.name else ""
        if self.sensor not in ("", *SENSOR_FAMILIES):
            raise FrameError(f"{where}unknown sensor family {self.sensor!r}; use one of {', '.join(SENSOR_FAMILIES)} "
                             "or '' (see pipeline.types.sensor_family)")
        if not isinstance(self.rgb, np.ndarray) or self.rgb.shape != (h, w, 3) or self.rgb.dtype != np.uint8:
            got = (getattr(self.rgb, "shape", None), getattr(self.rgb, "dtype", None))
            raise FrameError(f"{where}rgb must be {h}x{w}x3 uint8 to match the intrinsics, got shape/dtype {got}")
        check_depth(self.depth, where + "depth", (h, w))
        self.depth, dropped = no_readings(self.depth)
        self.dropped += dropped
        if self.depth_gt is not None:
            check_depth(self.depth_gt, where + "depth_gt", (h, w))
            self.depth_gt, _ = no_readings(self.depth_gt)
        if self.mask is not None:
            if self.mask.shape != (h, w):
                raise FrameError(f"{where}mask must be {h}x{w}, got {self.mask.shape}")
            self.mask = self.mask.astype(bool, copy=False)
        if self.T_base_cam is not None:
            T = np.asarray(self.T_base_cam, dtype=np.float64)
            if T.shape != (4, 4) or not np.allclose(T[3], [0, 0, 0, 1]):
                raise FrameError(f"{where}T_base_cam must be a 4x4 homogeneous transform, got {T.shape}")
            self.T_base_cam = T

    @property
    def shape(self) -> tuple[int, int]:
        return self.intrinsics.height, self.intrinsics.width

    def resampled(self, rgb: np.ndarray, depth: np.ndarray, intrinsics: CameraIntrinsics) -> "RGBDFrame":
        """This frame brought to ``intrinsics``' size: ``rgb`` and ``depth`` are its own, resampled (depth by
        nearest neighbours, so every value is one of its readings), and are taken without the checks of a new
        frame. Mask, ground truth and pose are left behind."""
        if rgb.shape != (intrinsics.height, intrinsics.width, 3) or depth.shape != rgb.shape[:2]:
            raise FrameError(f"resampled frame: rgb {rgb.shape} and depth {depth.shape} do not match "
                             f"{intrinsics.width}x{intrinsics.height}")
        out = copy.copy(self)
        out.rgb, out.depth, out.intrinsics = rgb, depth, intrinsics
        out.mask = out.depth_gt = out.T_base_cam = None
        return out

    def with_depth(self, depth: np.ndarray) -> "RGBDFrame":
        """A copy of this frame with ``depth`` (HxW metres) in place of its own. Depth whose range is already
        plain metres (0 to ``MAX_PLAUSIBLE_DEPTH_M``, no NaN: one pass over it) is taken as it is; any other goes
        through every check of a new frame."""
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape == self.shape and depth.size:
            lo, hi = depth.min(), depth.max()
            if 0 <= lo and hi <= MAX_PLAUSIBLE_DEPTH_M:  # NaN fails both comparisons
                out = copy.copy(self)
                out.depth = depth
                return out
        return dataclasses.replace(self, depth=depth)


class Camera(abc.ABC):
    """An RGB-D camera. Use as a context manager or call ``connect()`` / ``disconnect()``. ``sensor`` is its
    family (``SENSOR_FAMILIES``), known once connected ("" when unknown)."""

    sensor: str = ""

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> RGBDFrame:
        """Capture one frame (depth aligned to colour)."""

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @property
    @abc.abstractmethod
    def intrinsics(self) -> CameraIntrinsics: ...

    def __enter__(self) -> "Camera":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()
