"""Shards: many frames per file, so that a machine with PyTorch but without the simulator (a GPU machine with
no network, which only tens of megabytes reach at a time) can train on frames generated elsewhere. They are
written by ``distillgrasp shard`` (``pipeline.data.pack``).

A shard is a ZIP archive named ``NNNNN.dgshard`` whose members are stored as they are (each is compressed
already), read by the standard library alone:

    meta.json          format version; per frame its name, camera family, intrinsics and depth unit
    000000.rgb.jpg     colour: JPEG at ``--quality`` (``--rgb png``: lossless PNG)
    000000.depth.png   raw depth, uint16 PNG in the frame's depth unit
    000000.gt.png      ground truth, the same (absent when the frame has none)
    000000.mask.png    glass mask, 0/1 PNG (absent when the frame has none)

Depth is kept to 0.1 mm, the finest unit a RealSense reports (1 mm for a frame whose depth reaches past
6.5535 m), and from there stored losslessly: a real camera's millimetre depth comes back exactly, simulated
depth to within 0.05 mm. A simulated 320x240 D435 frame takes about 65 kB with JPEG colour (the colour about
17 kB, the noisy raw depth about 35 kB, the truth about 12 kB). The shard folder's ``shards.json`` records
the frames, bytes and the ``generation.json`` of every source folder.

ZIP's central directory sits at the end of the file and every member carries a CRC-32, so a shard cut short
in transit or damaged is refused with an error naming it, never read as fewer or wrong frames. ``discover``
reads a folder of shards like any other layout, so ``--data SHARDS`` works wherever a folder of frames does.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import DataFormatError
from pipeline.types import CameraIntrinsics, RGBDFrame

SUFFIX = ".dgshard"
FORMAT_VERSION = 1
FINE_UNIT_M = 1e-4  # 0.1 mm
COARSE_UNIT_M = 1e-3  # 1 mm, for frames whose depth reaches beyond 65535 x 0.1 mm
MAX_CODE = 65535


class ShardError(DataFormatError):
    """A shard is truncated, damaged, of an unknown version, or a frame cannot be stored in one."""


def depth_unit(*maps: np.ndarray | None) -> float:
    """The unit a frame's depth maps are stored in: 0.1 mm, or 1 mm where any reading lies beyond 6.5535 m."""
    deepest = max((float(m.max()) for m in maps if m is not None and m.size), default=0.0)
    if deepest <= FINE_UNIT_M * MAX_CODE:
        return FINE_UNIT_M
    if deepest <= COARSE_UNIT_M * MAX_CODE:
        return COARSE_UNIT_M
    raise ShardError(f"depth of {deepest:.1f} m cannot be stored (at most {COARSE_UNIT_M * MAX_CODE:.3f} m)")


def _png(image: np.ndarray, what: str) -> bytes:
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ShardError(f"cannot encode {what} as PNG")
    return buf.tobytes()


def encode_frame(frame: RGBDFrame, rgb_format: str = "jpg", quality: int = 90) -> tuple[dict, dict[str, bytes]]:
    """A frame's entry in ``meta.json`` and its members (suffix -> bytes)."""
    unit = depth_unit(frame.depth, frame.depth_gt)
    bgr = np.ascontiguousarray(frame.rgb[..., ::-1])
    if rgb_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ShardError(f"frame {frame.name}: cannot encode the colour image as JPEG")
        members = {"rgb.jpg": buf.tobytes()}
    else:
        members = {"rgb.png": _png(bgr, f"frame {frame.name}'s colour")}
    members["depth.png"] = _png(np.round(frame.depth / unit).astype(np.uint16), f"frame {frame.name}'s depth")
    if frame.depth_gt is not None:
        members["gt.png"] = _png(np.round(frame.depth_gt / unit).astype(np.uint16), f"frame {frame.name}'s truth")
    if frame.mask is not None:
        members["mask.png"] = _png(frame.mask.astype(np.uint8), f"frame {frame.name}'s mask")
    K = frame.intrinsics
    meta = {"name": frame.name, "sensor": frame.sensor, "unit_m": unit,
            "intrinsics": [K.width, K.height, K.fx, K.fy, K.cx, K.cy]}
    return meta, members


def write_shard(path: str | Path, frames: list[RGBDFrame], rgb_format: str = "jpg", quality: int = 90,
                source: dict | None = None) -> int:
    """Write ``frames`` as one shard at ``path`` (written aside, then renamed: never half a shard under its
    name); returns its size in bytes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    metas = []
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for i, frame in enumerate(frames):
                meta, members = encode_frame(frame, rgb_format, quality)
                meta["members"] = sorted(members)
                metas.append(meta)
                for suffix, data in members.items():
                    zf.writestr(f"{i:06d}.{suffix}", data)
            zf.writestr("meta.json", json.dumps({"version": FORMAT_VERSION, "frames": metas, "source": source}))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


class Shard:
    """One shard, opened: ``len(shard)``, ``shard.names``, ``shard.load(i)``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
            meta = json.loads(self._zip.read("meta.json"))
        except FileNotFoundError:
            raise ShardError(f"missing shard: {self.path}") from None
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise ShardError(f"{self.path}: truncated or damaged shard ({exc}); copy it again") from None
        except (KeyError, json.JSONDecodeError) as exc:
            raise ShardError(f"{self.path}: not a shard (no readable meta.json: {exc})") from None
        if meta.get("version") != FORMAT_VERSION:
            raise ShardError(f"{self.path}: shard format version {meta.get('version')!r}; this reader reads "
                             f"version {FORMAT_VERSION}")
        self.frames: list[dict] = meta["frames"]
        self.source = meta.get("source")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def names(self) -> list[str]:
        return [f["name"] for f in self.frames]

    def _member(self, i: int, suffix: str) -> bytes:
        name = f"{i:06d}.{suffix}"
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
            raise ShardError(f"{self.path}: member {name} is damaged ({exc}); copy the shard again") from None

    def _image(self, i: int, suffix: str, flags: int) -> np.ndarray:
        image = cv2.imdecode(np.frombuffer(self._member(i, suffix), np.uint8), flags)
        if image is None:
            raise ShardError(f"{self.path}: member {i:06d}.{suffix} is not a readable image")
        return image

    def load(self, i: int) -> RGBDFrame:
        meta = self.frames[i]
        members = set(meta["members"])
        rgb_suffix = "rgb.jpg" if "rgb.jpg" in members else "rgb.png"
        rgb = np.ascontiguousarray(self._image(i, rgb_suffix, cv2.IMREAD_COLOR)[..., ::-1])
        unit = float(meta["unit_m"])

        def depth(suffix: str) -> np.ndarray | None:
            if suffix not in members:
                return None
            return (self._image(i, suffix, cv2.IMREAD_UNCHANGED).astype(np.float32) * np.float32(unit))

        mask = self._image(i, "mask.png", cv2.IMREAD_UNCHANGED) > 0 if "mask.png" in members else None
        w, h, fx, fy, cx, cy = meta["intrinsics"]
        try:
            return RGBDFrame(rgb=rgb, depth=depth("depth.png"), depth_gt=depth("gt.png"), mask=mask,
                             intrinsics=CameraIntrinsics(int(w), int(h), fx, fy, cx, cy), name=meta["name"],
                             sensor=meta["sensor"])
        except ValueError as exc:
            raise ShardError(f"{self.path}: frame {i} ({meta['name']}) is inconsistent: {exc}") from None


def shard_paths(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob(f"*{SUFFIX}"))
