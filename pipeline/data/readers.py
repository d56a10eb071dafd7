"""Readers for the dataset layouts the project trains and evaluates on.

Every reader yields ``RGBDFrame`` objects with ``depth`` = the raw sensor depth, ``depth_gt`` = ground truth,
``mask`` = transparent pixels, all in metres with 0 = no depth; ``depth_gt`` and ``mask`` are None for captures
that come without them (a folder of your own).

Layouts
-------
``cleargrasp`` (real-data layout, also written by ``sim.generate``)::

    NNNNNNNNN-transparent-rgb-img.{jpg,png}   the scene
    NNNNNNNNN-transparent-depth-img.exr       raw sensor depth (metres, R=G=B)
    NNNNNNNNN-opaque-depth-img.exr            ground truth depth
    NNNNNNNNN-mask.png                        0/255 transparent-object mask
    camera_intrinsics.yaml                    fx, fy, cx, cy at xres x yres

``cleargrasp-synthetic``::

    rgb-imgs/NNNNNNNNN-rgb.jpg, depth-imgs-rectified/NNNNNNNNN-depth-rectified.exr,
    segmentation-masks/NNNNNNNNN-segmentation-mask.png, json-files/NNNNNNNNN-masks.json (field of view)

  The synthetic set has no sensor depth: as in ClearGrasp's own training, the raw depth is the ground truth
  with the transparent pixels removed.

``clearpose``::

    NNNNNN-color.png, NNNNNN-depth.png (raw, uint16 mm), NNNNNN-depth_true.png (uint16 mm),
    NNNNNN-label.png (instance ids, 0 = background; every labelled object is taken as transparent)

  Intrinsics default to ClearPose's L515 colour camera; a ``camera_intrinsics.yaml`` in the folder overrides.

``transcg`` (one folder per captured view, two cameras)::

    rgb1.png, depth1.png (raw, uint16 mm), depth1-gt.png (uint16 mm), depth1-gt-mask.png (0/255 transparent)
    rgb2.png, ...                              the same for the second camera
    camera_intrinsics/camera1-intrinsics.npy   3x3 camera matrix, in the folder or one of the three above it

  Camera 1 is a RealSense D435 (the stereo family), camera 2 an L515.

``shards`` (``pipeline.data.shards``, written by ``distillgrasp shard``)::

    NNNNN.dgshard                              many frames per file, for moving training data between machines
"""

from __future__ import annotations

import abc
import json
import math
from pathlib import Path

import numpy as np
import yaml

from pipeline.data.io import check_same_size, read_exr_depth, read_gray, read_png_depth_mm, read_rgb
from pipeline.data.shards import Shard, shard_paths
from pipeline.errors import DataFormatError
from pipeline.types import CameraIntrinsics, RGBDFrame, sensor_family

FORMATS = ("cleargrasp", "clearpose", "transcg", "shards")

# ClearPose's RealSense L515 colour intrinsics at 640x480.
CLEARPOSE_INTRINSICS = CameraIntrinsics(640, 480, 601.33, 601.33, 334.67, 248.0)


def _read_camera_yaml(path: Path) -> dict:
    if not path.is_file():
        raise DataFormatError(f"missing file: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataFormatError(f"{path}: not YAML ({exc})") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: not a camera_intrinsics.yaml (expected keys xres, yres, fx, fy, cx, cy)")
    return data


def read_camera_yaml(path: str | Path) -> tuple[CameraIntrinsics, str]:
    """Intrinsics (keys xres, yres, fx, fy, cx, cy) and the sensor family its ``camera_name`` names ("" when
    absent or unknown) from a ClearGrasp ``camera_intrinsics.yaml``."""
    path = Path(path)
    data = _read_camera_yaml(path)
    try:
        K = CameraIntrinsics(
            int(data["xres"]), int(data["yres"]),
            float(data["fx"]), float(data["fy"]), float(data["cx"]), float(data["cy"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"{path}: not a camera_intrinsics.yaml with xres, yres, fx, fy, cx, cy ({exc})") from None
    return K, sensor_family(str(data.get("camera_name", "")))


def read_intrinsics_yaml(path: str | Path) -> CameraIntrinsics:
    """Intrinsics from a ClearGrasp ``camera_intrinsics.yaml`` (keys xres, yres, fx, fy, cx, cy)."""
    return read_camera_yaml(path)[0]


def write_intrinsics_yaml(path: str | Path, K: CameraIntrinsics, camera_name: str = "sim-d435") -> None:
    text = (
        "# Camera Intrinsic Parameters\n"
        f"camera_name: '{camera_name}'\n"
        f"xres: {K.width}\nyres: {K.height}\n"
        f"fx: {K.fx:.6f}\nfy: {K.fy:.6f}\ncx: {K.cx:.6f}\ncy: {K.cy:.6f}\n"
    )
    Path(path).write_text(text)


def _optional(path: str, read) -> dict:
    """{path: read(path)} when the file exists, else {}: ground truth and masks are optional (own captures)."""
    return {path: read(path)} if Path(path).is_file() else {}


def _fit_intrinsics(K: CameraIntrinsics, width: int, height: int) -> CameraIntrinsics:
    return K if (K.width, K.height) == (width, height) else K.scaled(width, height)


class FrameFolder(abc.ABC):
    """One folder of frames in one layout. ``len(folder)``, ``folder.names``, ``folder.load(i)``."""

    layout: str = ""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.names: list[str] = self._list()
        if not self.names:
            raise DataFormatError(f"{self.root}: no {self.layout} frames found")

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return (self.load(i) for i in range(len(self)))

    @abc.abstractmethod
    def _list(self) -> list[str]: ...

    @abc.abstractmethod
    def load(self, index: int) -> RGBDFrame: ...

    @classmethod
    @abc.abstractmethod
    def matches(cls, root: Path) -> bool: ...


class ClearGraspRealFolder(FrameFolder):
    layout = "cleargrasp"
    RGB_SUFFIXES = ("-transparent-rgb-img.png", "-transparent-rgb-img.jpg")

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any(root.glob("*-transparent-rgb-img.*"))

    def _list(self) -> list[str]:
        names = {p.name.split("-transparent-rgb-img.")[0] for p in self.root.glob("*-transparent-rgb-img.*")}
        self._K, self._sensor = read_camera_yaml(self.root / "camera_intrinsics.yaml") if names else (None, "")
        return sorted(names)

    def _rgb_path(self, name: str) -> Path:
        for suffix in self.RGB_SUFFIXES:
            if (self.root / (name + suffix)).is_file():
                return self.root / (name + suffix)
        raise DataFormatError(f"missing file: {self.root / (name + self.RGB_SUFFIXES[0])} (or .jpg)")

    def load(self, index: int) -> RGBDFrame:
        name = self.names[index]
        p = self.root / name
        files = {
            str(self._rgb_path(name)): read_rgb(self._rgb_path(name)),
            f"{p}-transparent-depth-img.exr": read_exr_depth(f"{p}-transparent-depth-img.exr"),
            **_optional(f"{p}-opaque-depth-img.exr", read_exr_depth),
            **_optional(f"{p}-mask.png", read_gray),
        }
        check_same_size(files, next(iter(files)))
        rgb, raw = list(files.values())[:2]
        gt, mask = files.get(f"{p}-opaque-depth-img.exr"), files.get(f"{p}-mask.png")
        h, w = raw.shape
        return RGBDFrame(rgb=rgb, depth=raw, depth_gt=gt, mask=None if mask is None else mask > 0,
                         intrinsics=_fit_intrinsics(self._K, w, h), name=str(p), sensor=self._sensor)


class ClearGraspSyntheticFolder(FrameFolder):
    layout = "cleargrasp-synthetic"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return (root / "rgb-imgs").is_dir() and (root / "depth-imgs-rectified").is_dir()

    def _list(self) -> list[str]:
        return sorted(p.name[: -len("-rgb.jpg")] for p in (self.root / "rgb-imgs").glob("*-rgb.jpg"))

    def load(self, index: int) -> RGBDFrame:
        name = self.names[index]
        r = self.root
        rgb_path = r / "rgb-imgs" / f"{name}-rgb.jpg"
        depth_path = r / "depth-imgs-rectified" / f"{name}-depth-rectified.exr"
        mask_path = r / "segmentation-masks" / f"{name}-segmentation-mask.png"
        json_path = r / "json-files" / f"{name}-masks.json"
        files = {str(rgb_path): read_rgb(rgb_path), str(depth_path): read_exr_depth(depth_path),
                 str(mask_path): read_gray(mask_path)}
        check_same_size(files, str(rgb_path))
        rgb, gt, seg = files.values()
        mask = seg > 0
        h, w = gt.shape
        if not json_path.is_file():
            raise DataFormatError(f"missing file: {json_path}")
        try:
            fov = json.loads(json_path.read_text())["camera"]["field_of_view"]
            fx = (w / 2.0) / math.tan(float(fov["x_axis_rads"]) / 2.0)
            fy = (h / 2.0) / math.tan(float(fov["y_axis_rads"]) / 2.0)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataFormatError(f"{json_path}: no camera.field_of_view ({exc})") from None
        K = CameraIntrinsics(w, h, fx, fy, (w - 1) / 2.0, (h - 1) / 2.0)
        raw = np.where(mask, 0.0, gt).astype(np.float32)
        return RGBDFrame(rgb=rgb, depth=raw, depth_gt=gt, mask=mask, intrinsics=K, name=str(r / name))


class ClearPoseFolder(FrameFolder):
    layout = "clearpose"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any(root.glob("*-depth_true.png"))

    def _list(self) -> list[str]:
        override = self.root / "camera_intrinsics.yaml"
        self._K = read_intrinsics_yaml(override) if override.is_file() else CLEARPOSE_INTRINSICS
        return sorted(p.name[: -len("-color.png")] for p in self.root.glob("*-color.png"))

    def load(self, index: int) -> RGBDFrame:
        p = self.root / self.names[index]
        files = {
            f"{p}-color.png": read_rgb(f"{p}-color.png"),
            f"{p}-depth.png": read_png_depth_mm(f"{p}-depth.png"),
            **_optional(f"{p}-depth_true.png", read_png_depth_mm),
            **_optional(f"{p}-label.png", read_gray),
        }
        check_same_size(files, f"{p}-color.png")
        rgb, raw = list(files.values())[:2]
        gt, label = files.get(f"{p}-depth_true.png"), files.get(f"{p}-label.png")
        h, w = raw.shape
        return RGBDFrame(rgb=rgb, depth=raw, depth_gt=gt, mask=None if label is None else label > 0,
                         intrinsics=_fit_intrinsics(self._K, w, h), name=str(p), sensor="l515")


class TransCGFolder(FrameFolder):
    layout = "transcg"
    CAMERAS = {"1": "d435", "2": "l515"}

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any((root / f"rgb{c}.png").is_file() for c in cls.CAMERAS)

    def _list(self) -> list[str]:
        return [c for c in self.CAMERAS if (self.root / f"rgb{c}.png").is_file()]

    def _intrinsics(self, camera: str, width: int, height: int) -> CameraIntrinsics:
        name = f"camera{camera}-intrinsics.npy"
        for folder in (self.root, *list(self.root.parents)[:3]):
            path = folder / "camera_intrinsics" / name
            if path.is_file():
                try:
                    K = np.load(path)
                except (OSError, ValueError) as exc:
                    raise DataFormatError(f"{path}: not a 3x3 camera matrix ({exc})") from None
                if np.shape(K) != (3, 3):
                    raise DataFormatError(f"{path}: expected a 3x3 camera matrix, got shape {np.shape(K)}")
                return CameraIntrinsics(width, height, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]),
                                        float(K[1, 2]))
        raise DataFormatError(f"{self.root}: no camera_intrinsics/{name} in it or the three folders above it")

    def load(self, index: int) -> RGBDFrame:
        c = self.names[index]
        p = self.root
        files = {
            str(p / f"rgb{c}.png"): read_rgb(p / f"rgb{c}.png"),
            str(p / f"depth{c}.png"): read_png_depth_mm(p / f"depth{c}.png"),
            **_optional(str(p / f"depth{c}-gt.png"), read_png_depth_mm),
            **_optional(str(p / f"depth{c}-gt-mask.png"), read_gray),
        }
        check_same_size(files, str(p / f"rgb{c}.png"))
        rgb, raw = list(files.values())[:2]
        gt, mask = files.get(str(p / f"depth{c}-gt.png")), files.get(str(p / f"depth{c}-gt-mask.png"))
        h, w = raw.shape
        return RGBDFrame(rgb=rgb, depth=raw, depth_gt=gt, mask=None if mask is None else mask > 0,
                         intrinsics=self._intrinsics(c, w, h),
                         name=f"{p}/camera{c}", sensor=self.CAMERAS[c])


class ShardFolder(FrameFolder):
    """A folder of shards (``pipeline.data.shards``): many frames per file."""

    layout = "shards"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any(root.glob("*.dgshard"))

    def _list(self) -> list[str]:
        self._shards = [Shard(p) for p in shard_paths(self.root)]
        self._index = [(s, i) for s in self._shards for i in range(len(s))]
        return [name for s in self._shards for name in s.names]

    def load(self, index: int) -> RGBDFrame:
        shard, i = self._index[index]
        return shard.load(i)


LAYOUTS: dict[str, tuple[type[FrameFolder], ...]] = {
    "cleargrasp": (ClearGraspRealFolder, ClearGraspSyntheticFolder),
    "clearpose": (ClearPoseFolder,),
    "transcg": (TransCGFolder,),
    "shards": (ShardFolder,),
}


def discover(path: str | Path, fmt: str | None = None) -> list[FrameFolder]:
    """Every folder at or below ``path`` that holds frames of a known layout (or of format ``fmt``)."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"no such folder: {path}")
    if not path.is_dir():
        raise DataFormatError(f"not a folder: {path}")
    if fmt is not None and fmt not in LAYOUTS:
        raise DataFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    classes = LAYOUTS[fmt] if fmt else tuple(c for cs in LAYOUTS.values() for c in cs)
    folders: list[FrameFolder] = []
    for d in sorted([path, *(p for p in path.rglob("*") if p.is_dir())]):
        for cls in classes:
            if cls.matches(d):
                folders.append(cls(d))
                break
    if not folders:
        wanted = f"{fmt} " if fmt else ""
        raise DataFormatError(f"{path}: no {wanted}frames found (formats: {', '.join(FORMATS)})")
    return folders
