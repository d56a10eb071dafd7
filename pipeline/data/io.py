"""Reading and writing the image files of the supported datasets, with errors that name the file.

Depth returned by the readers is HxW float32 metres with 0 meaning "no depth" (NaN, inf and 0 in the
files are all mapped to 0).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import DataFormatError
from pipeline.types import MAX_PLAUSIBLE_DEPTH_M

cv2.setNumThreads(1)


def _require(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"missing file: {path}")
    return path


def read_exr_depth(path: str | Path) -> np.ndarray:
    """Depth in metres from an EXR file whose channels are R=G=B (ClearGrasp) or a single channel."""
    import OpenEXR  # here, not at the top: a machine that trains from shards needs no EXR library

    path = _require(path)
    try:
        channels = OpenEXR.File(str(path)).channels()
    except Exception as exc:  # OpenEXR raises a bare RuntimeError/IOError on truncated files
        raise DataFormatError(f"cannot read EXR {path}: {exc}") from None
    if "RGB" in channels:
        depth = channels["RGB"].pixels[..., 0]
    elif "RGBA" in channels:
        depth = channels["RGBA"].pixels[..., 0]
    else:
        for name in ("R", "Y", "Z", "depth"):
            if name in channels:
                depth = channels[name].pixels
                break
        else:
            raise DataFormatError(f"EXR {path} has no depth channel (channels: {sorted(channels)})")
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise DataFormatError(f"EXR {path}: expected a single-channel image, got shape {depth.shape}")
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    _check_metres(depth, path)
    return depth


def write_exr_depth(path: str | Path, depth: np.ndarray) -> None:
    """Write HxW metres as a float32 EXR with R=G=B (ClearGrasp layout), ZIP-compressed, no metadata."""
    import OpenEXR

    depth = np.ascontiguousarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"write_exr_depth: expected an HxW array, got shape {depth.shape}")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    rgb = np.ascontiguousarray(np.repeat(depth[..., None], 3, axis=2))
    OpenEXR.File(header, {"RGB": rgb}).write(str(path))


def _decode(path: Path) -> np.ndarray:
    """The image at ``path``; a file cut short (a JPEG without its end marker, a PNG without its IEND chunk,
    which OpenCV would decode in part without complaint) or not an image at all is refused."""
    data = path.read_bytes()
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise DataFormatError(f"truncated JPEG {path} ({len(data)} bytes, no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-12:]:
        raise DataFormatError(f"truncated PNG {path} ({len(data)} bytes, no IEND chunk)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataFormatError(f"cannot decode image {path} (truncated or not an image)")
    return img


def read_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB from a PNG or JPEG (alpha dropped, 16-bit scaled to 8-bit)."""
    img = _decode(_require(path))
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img[..., ::-1])


def read_gray(path: str | Path, dtype: type | None = None) -> np.ndarray:
    """Single-channel image as stored (uint8 or uint16). A colour image is reduced to its first channel."""
    path = _require(path)
    img = _decode(path)
    if img.ndim == 3:
        img = img[..., 0]
    if dtype is not None and img.dtype != dtype:
        raise DataFormatError(f"{path}: expected {np.dtype(dtype).name} pixels, got {img.dtype}")
    return img


def read_png_depth_mm(path: str | Path) -> np.ndarray:
    """uint16 millimetre depth PNG (ClearPose) -> float32 metres, 0 = no depth."""
    mm = read_gray(path, np.uint16)
    return (mm.astype(np.float32) / 1000.0).astype(np.float32)


def write_png(path: str | Path, img: np.ndarray) -> None:
    """Write a uint8 mask / RGB image (RGB order) or uint16 image losslessly."""
    if img.ndim == 3:
        img = img[..., ::-1]
    if not cv2.imwrite(str(path), np.ascontiguousarray(img)):
        raise OSError(f"cannot write {path}")


def write_jpg(path: str | Path, rgb: np.ndarray, quality: int = 95) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"cannot write {path}")


def _check_metres(depth: np.ndarray, path: Path) -> None:
    """The bulk of the readings must be metres; a few far codes or outliers are no-readings, not an error."""
    readings = depth[np.isfinite(depth) & (depth > 0)]
    if readings.size and np.median(readings) > MAX_PLAUSIBLE_DEPTH_M:
        raise DataFormatError(
            f"{path}: depth of median {np.median(readings):.1f} does not look like metres; "
            "this reader expects EXR depth in metres"
        )


def check_same_size(files: dict[str, np.ndarray], reference: str) -> None:
    """Raise naming the file whose image size differs from ``reference``'s."""
    h, w = files[reference].shape[:2]
    for name, arr in files.items():
        if arr.shape[:2] != (h, w):
            raise DataFormatError(f"{name}: size {arr.shape[1]}x{arr.shape[0]} differs from {reference} ({w}x{h})")
