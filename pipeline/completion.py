"""Depth completers: one interface, numpy in and numpy out.

    completer = make_completer("student")          # shipped weights
    repaired = completer.complete(frame)           # RGBDFrame with the completed depth

A network's weights folder may hold a variant per depth-camera family (``student-l515.safetensors``): frames
whose ``sensor`` names that family are completed by it, all others by ``student.safetensors``.

Names: ``student`` and ``teacher`` (networks, shipped weights by default), ``raw`` (passthrough), ``fill``
(classical hole filling guided by the image), ``gt`` (oracle: the frame's ground truth, simulation only).

Networks run in torch, or with ``backend="onnx"`` through onnxruntime: the model is exported in memory for
each frame size it meets, checked against torch once, and used from then on (about 2.5x faster for the
student on two CPU cores). ``backend="auto"`` does that where the export works and keeps torch where not.
"""

from __future__ import annotations

import abc
import hashlib
import io
import math
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from pipeline.errors import DistillGraspError, FrameError
from pipeline.onnx_runtime import ONNX_TOLERANCE_M, check_session, export_onnx, onnx_session
from pipeline.types import SENSOR_FAMILIES, RGBDFrame

COMPLETERS = ("student", "teacher", "fill", "raw", "gt")


class DepthCompleter(abc.ABC):
    name: str = ""
    _network_ms: float | None = None  # set by completers that run a network, per completed frame

    def complete(self, frame: RGBDFrame) -> RGBDFrame:
        """A copy of ``frame`` whose ``depth`` is the completed depth (HxW float32 metres)."""
        if not cv2.hasNonZero(frame.depth):  # a frame's depth is never negative: nonzero is a reading
            which = f"frame {frame.name}" if frame.name else "the frame"
            raise FrameError(f"{self.name}: {which} has no valid depth at all; nothing to complete "
                             "(is the camera covered or out of range?)")
        depth = np.asarray(self._complete(frame), dtype=np.float32)
        if not np.isfinite(depth.min() + depth.max()):  # NaN and +-inf each make the sum so; one pass each
            which = f" on {frame.name}" if frame.name else ""
            raise FrameError(f"{self.name} returned NaN or infinite depth{which} "
                             f"({int((~np.isfinite(depth)).sum())} pixels); its weights may be damaged")
        return frame.with_depth(depth)

    @abc.abstractmethod
    def _complete(self, frame: RGBDFrame) -> np.ndarray: ...

    def provenance(self, sensor: str) -> dict:
        """What completes frames of ``sensor`` (a camera family), for the trial log: for a network, the content
        hash of its weights, the camera family they were trained for and the backend; {} for the others."""
        return {}

    def network_ms(self) -> float | None:
        """Milliseconds the last completed frame spent inside a network's forward passes (onnxruntime's or
        torch's run, nothing around it); None for completers without a network. Timed in the same call as the
        rest of perception, it is the yardstick for perception's cost (``grasping.trials``)."""
        return self._network_ms


class RawCompleter(DepthCompleter):
    name = "raw"

    def _complete(self, frame):
        return frame.depth.copy()


class OracleCompleter(DepthCompleter):
    name = "gt"

    def _complete(self, frame):
        if frame.depth_gt is None:
            raise FrameError("gt: the frame carries no ground-truth depth (oracle works in simulation only)")
        return np.where(frame.depth_gt > 0, frame.depth_gt, frame.depth)


class FillCompleter(DepthCompleter):
    """Classical baseline: holes filled by Navier-Stokes inpainting of inverse depth at half resolution, then a
    joint-bilateral-style smoothing guided by the image so fills stop at colour edges. Valid depth is kept."""

    name = "fill"

    def _complete(self, frame):
        depth = frame.depth
        holes = depth <= 0
        if not holes.any():
            return depth.copy()
        h, w = depth.shape
        dmax = float(depth.max())
        # inpaint on an 8-bit-free float image: scale to 16-bit for cv2.inpaint (supports 16U/32F single channel)
        small = cv2.resize(depth, (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
        small_holes = (small <= 0).astype(np.uint8)
        d16 = (small / dmax * 65535).astype(np.uint16)
        filled = cv2.inpaint(d16, small_holes, 5, cv2.INPAINT_NS).astype(np.float32) / 65535 * dmax
        filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
        out = np.where(holes, filled, depth).astype(np.float32)
        # guided smoothing inside the holes: average over neighbours of similar colour
        gray = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        guided = _joint_bilateral(out, gray, radius=4, sigma_color=12.0)
        return np.where(holes, guided, depth).astype(np.float32)


def _joint_bilateral(depth: np.ndarray, gray: np.ndarray, radius: int, sigma_color: float) -> np.ndarray:
    acc = np.zeros_like(depth)
    wsum = np.zeros_like(depth)
    pad_d = cv2.copyMakeBorder(depth, radius, radius, radius, radius, cv2.BORDER_REPLICATE)
    pad_g = cv2.copyMakeBorder(gray, radius, radius, radius, radius, cv2.BORDER_REPLICATE)
    h, w = depth.shape
    step = max(radius // 2, 1)
    for dy in range(-radius, radius + 1, step):
        for dx in range(-radius, radius + 1, step):
            d = pad_d[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            g = pad_g[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            wgt = np.exp(-((g - gray) ** 2) / (2 * sigma_color**2)) * (d > 0)
            acc += wgt * d
            wsum += wgt
    return np.where(wsum > 0, acc / np.maximum(wsum, 1e-9), depth)


# The focal length (pixels) of the frames every shipped network was trained on: the simulated D435 colour camera
# (615 px at 640x480) at the training size 320x240. A card's ``train_fx`` overrides it.
TRAINING_FOCAL_PX = 307.5
WORKING_SCALE_TOLERANCE = 0.05
# A working size within this of a multiple of the network's padding is rounded to it, down where that is close
# enough: the network pads up to that multiple anyway, so a side just above one costs the next multiple's
# pixels for nothing (848x480 and 1280x720 frames work at 416x240, not 427x242 padded to 432x256).
SNAP_TOLERANCE = 0.03
KEEP_RAW_M = 0.01  # a valid raw reading the network moved by no more than this is returned exactly


# Guided upsampling of the network's depth: window radius at the working scale, and eps (docs/experiments.md,
# "Upsampling guided by colour", has the settings tried on simulated 640x480 frames).
GUIDE_RADIUS, GUIDE_EPS = 1, 1e-4


def guided_upsample(pred_small: np.ndarray, guide_small: np.ndarray, guide: np.ndarray,
                    radius: int = GUIDE_RADIUS, eps: float = GUIDE_EPS) -> np.ndarray:
    """Upsample ``pred_small`` to the size of ``guide`` with the fast guided filter (He and Sun, 2015): fit
    ``pred = a * guide + b`` in every (2 ``radius`` + 1)-pixel window at the small scale, upsample the averaged
    ``a`` and ``b`` linearly, and apply them to the full-resolution guide (grey levels in 0-1, or 0-255 as
    uint8). Depth edges then follow the colour image's edges; ``eps`` (depth-metres x grey-level variance) keeps
    flat colour from imprinting texture on the depth. The result stays within the depths of the neighbouring
    small pixels."""
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide_small), box(pred_small)
    var_i = box(guide_small * guide_small) - mean_i * mean_i
    cov_ip = box(guide_small * pred_small) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    h, w = guide.shape
    unit = 1.0 / 255.0 if guide.dtype == np.uint8 else 1.0  # grey levels to 0-1, folded into the product
    out = cv2.multiply(cv2.resize(box(a), (w, h), interpolation=cv2.INTER_LINEAR), guide, scale=unit,
                       dtype=cv2.CV_32F)
    out = cv2.add(out, cv2.resize(box(b), (w, h), interpolation=cv2.INTER_LINEAR), dst=out)
    # never beyond the depths of the small pixels around: strong colour edges on smooth depth would overshoot
    # (pixel-centred nearest neighbours: OpenCV's INTER_NEAREST_EXACT is also the fast one for float images)
    kernel = np.ones((3, 3), np.uint8)
    cv2.max(out, cv2.resize(cv2.erode(pred_small, kernel), (w, h), interpolation=cv2.INTER_NEAREST_EXACT), dst=out)
    return cv2.min(out, cv2.resize(cv2.dilate(pred_small, kernel), (w, h), interpolation=cv2.INTER_NEAREST_EXACT),
                   dst=out)


def downscale(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` brought down to ``size`` (W, H): halved (an exact 2x2 mean, the fast case of OpenCV's area
    resize) while it stays at least twice the size, then linearly interpolated the rest of the way (less than
    2x, where a linear sample still spans each output pixel's footprint; OpenCV's area resize at such a
    fractional ratio costs several times the halvings)."""
    while img.shape[1] >= 2 * size[0] and img.shape[0] >= 2 * size[1]:
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return img if img.shape[1::-1] == tuple(size) else cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)


def at_working_scale(frame: RGBDFrame, run, size: tuple[int, int]) -> np.ndarray:
    """Complete ``frame`` with ``run`` (numpy depth out for a frame in) at ``size`` (W, H), and return depth at
    the frame's own resolution: the network's prediction upsampled, guided by the colour image
    (``guided_upsample``: continuous where it filled a hole, its edges where the colour's are), and every valid
    raw reading the network left within ``KEEP_RAW_M`` returned exactly. What counts as left alone is decided at
    the working scale, where the network saw it."""
    h, w = frame.shape
    shrink = size[0] * size[1] < w * h
    small = frame.resampled(rgb=downscale(frame.rgb, size) if shrink else cv2.resize(frame.rgb, size),
                            depth=cv2.resize(frame.depth, size, interpolation=cv2.INTER_NEAREST),
                            intrinsics=frame.intrinsics.scaled(*size))
    pred_small = run(small).astype(np.float32)
    changed_small = ~((small.depth > 0) & (np.abs(pred_small - small.depth) <= KEEP_RAW_M))
    if shrink:  # back up to the frame's resolution, depth edges following the colour image's
        gray_small = cv2.cvtColor(small.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        pred = guided_upsample(pred_small, gray_small, cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY))
    else:
        pred = cv2.resize(pred_small, (w, h), interpolation=cv2.INTER_LINEAR)
    # a raw reading is kept where no working-scale pixel it overlaps was changed
    kept_small = (cv2.dilate(changed_small.astype(np.uint8), np.ones((3, 3), np.uint8)) == 0).view(np.uint8)
    kept = cv2.resize(kept_small, (w, h), interpolation=cv2.INTER_NEAREST)
    cv2.bitwise_and(kept, (frame.depth > 0).view(np.uint8), dst=kept)
    return cv2.copyTo(frame.depth, kept, pred)


class NetworkCompleter(DepthCompleter):
    """A trained network (student or teacher) from a safetensors file with its card."""

    BACKENDS = ("torch", "onnx", "auto")

    def __init__(self, weights: str | Path, threads: int | None = None, backend: str = "torch",
                 device: str = "cpu", flip: bool = False):
        from pipeline.weights import load

        model, card = load(weights)
        self._setup(model, card, threads, backend, device, flip)
        self.sha256 = hashlib.sha256(Path(weights).with_suffix(".safetensors").read_bytes()).hexdigest()

    @classmethod
    def from_model(cls, model: torch.nn.Module, card: dict, threads: int | None = None,
                   backend: str = "torch", device: str = "cpu", flip: bool = False) -> "NetworkCompleter":
        self = cls.__new__(cls)
        self._setup(model.eval(), card, threads, backend, device, flip)
        self.sha256 = None
        return self

    def provenance(self, sensor: str) -> dict:
        return {"weights": f"sha256:{self.sha256[:16]}" if self.sha256 else "in memory",
                "trained_for": self.card.get("sensor", "d435"), "backend": self.backend, "device": str(self.device)}

    def _setup(self, model, card: dict, threads: int | None, backend: str, device: str = "cpu",
               flip: bool = False) -> None:
        from pipeline.device import resolve_device

        if backend not in self.BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(self.BACKENDS)}")
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            if backend == "onnx":
                raise ValueError("backend onnx runs on the CPU; use backend torch (or auto) with device cuda")
            backend = "torch"  # on a GPU the network runs in torch
        self.model, self.card, self.threads, self.backend = model.float().to(self.device), card, threads, backend
        self.flip = flip  # True: the mean of the frame's prediction and its mirror image's (offline use)
        self.name = card.get("arch", "network")
        self._sessions: dict[tuple[int, int], object] = {}  # onnxruntime session per (H, W); None = use torch

    @property
    def train_fx(self) -> float:
        """The focal length in pixels of the frames the network was trained on (its card's ``train_fx``)."""
        return float(self.card.get("train_fx", TRAINING_FOCAL_PX))

    def working_size(self, intrinsics) -> tuple[int, int]:
        """(W, H) at which a frame of ``intrinsics`` shows objects as many pixels across as the training frames
        did: each axis scaled by train_fx over its focal length, so the network sees square pixels at its
        training focal length even in a frame resized to another aspect (fx != fy). Frames already within 5% of
        that scale are left as they are; a side within 3% of a multiple of the network's padding is rounded to
        it, to the multiple below first."""
        sx, sy = self.train_fx / intrinsics.fx, self.train_fx / intrinsics.fy
        if max(abs(sx - 1.0), abs(sy - 1.0)) <= WORKING_SCALE_TOLERANCE:
            return intrinsics.width, intrinsics.height
        multiple = getattr(self.model, "multiple", 1)  # the network pads its input's sides to this

        def side(n: float) -> int:  # the padding multiple below, else above, within SNAP_TOLERANCE
            for snapped in (math.floor(n / multiple) * multiple, math.ceil(n / multiple) * multiple):
                if snapped >= multiple and abs(snapped / n - 1.0) <= SNAP_TOLERANCE:
                    return snapped
            return max(32, round(n))

        return side(intrinsics.width * sx), side(intrinsics.height * sy)

    def _complete(self, frame):
        w, h = self.working_size(frame.intrinsics)
        if (h, w) == frame.shape:
            return self._run(frame)
        return at_working_scale(frame, self._run, (w, h))

    def _run(self, frame):
        rgb = (frame.rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        depth = frame.depth.astype(np.float32)[None, None]
        if self.backend != "torch":
            self._session(frame.shape)  # a new size's export and check come first: set-up, not inference
        t0 = time.perf_counter()
        pred = self._predict(rgb, depth, frame.shape)
        if self.flip:
            mirrored = self._predict(np.ascontiguousarray(rgb[..., ::-1]), np.ascontiguousarray(depth[..., ::-1]),
                                     frame.shape)
            pred = 0.5 * (pred + mirrored[:, ::-1])
        self._network_ms = (time.perf_counter() - t0) * 1000.0
        return pred

    def _predict(self, rgb: np.ndarray, depth: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        session = self._session(hw) if self.backend != "torch" else None
        if session is not None:
            return session.run(None, {"rgb": rgb, "depth": depth})[0][0, 0]
        if self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            pred = self.model(torch.from_numpy(rgb).to(self.device), torch.from_numpy(depth).to(self.device))
            return pred[0, 0].cpu().numpy()

    def _session(self, hw: tuple[int, int]):
        if hw not in self._sessions:
            try:
                buf = io.BytesIO()
                export_onnx(self.model, buf, (hw[1], hw[0]))
                session = onnx_session(buf.getvalue(), self.threads or torch.get_num_threads())
                err = check_session(self.model, session, (hw[1], hw[0]))
                if err > ONNX_TOLERANCE_M:
                    raise RuntimeError(f"onnxruntime differs from torch by {err:.1e} m")
            except Exception as exc:  # noqa: BLE001  any export failure: say so, then keep torch or stop
                if self.backend == "onnx":
                    raise FrameError(f"{self.name}: ONNX export for {hw[1]}x{hw[0]} failed: {exc}") from None
                warnings.warn(f"{self.name}: ONNX export failed ({str(exc).splitlines()[0][:120]}); using torch",
                              stacklevel=3)
                session = None
            self._sessions[hw] = session
        return self._sessions[hw]


class OnnxCompleter(DepthCompleter):
    """A network exported to ONNX (``pipeline.export``), run with onnxruntime at the one size it was exported
    for."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int = 2):
        if not Path(path).is_file():
            raise DistillGraspError(f"ONNX file not found: {path}")
        self.session = onnx_session(path, threads)
        self.input_hw = tuple(self.session.get_inputs()[1].shape[2:])

    def _complete(self, frame):
        if frame.shape != self.input_hw:
            raise FrameError(f"ONNX model was exported for {self.input_hw[1]}x{self.input_hw[0]} frames, got "
                             f"{frame.shape[1]}x{frame.shape[0]}; resize the frame or export again with --size")
        rgb = (frame.rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        t0 = time.perf_counter()
        pred = self.session.run(None, {"rgb": rgb, "depth": frame.depth.astype(np.float32)[None, None]})[0][0, 0]
        self._network_ms = (time.perf_counter() - t0) * 1000.0
        return pred


class SensorRoutedCompleter(DepthCompleter):
    """One completer per depth-camera family: a frame goes to the one trained on its camera's failures
    (``frame.sensor``), frames of other or unknown cameras to ``default``. A stereo camera leaves holes on glass
    and a lidar reads the table behind it; one small network serves each better than one serves both."""

    def __init__(self, default: DepthCompleter, by_sensor: dict[str, DepthCompleter]):
        unknown = sorted(set(by_sensor) - set(SENSOR_FAMILIES))
        if unknown:
            raise ValueError(f"unknown sensor families {unknown}; choose from {', '.join(SENSOR_FAMILIES)}")
        self.default, self.by_sensor, self.name = default, dict(by_sensor), default.name
        self._last: DepthCompleter | None = None  # the completer of the last frame

    def provenance(self, sensor: str) -> dict:
        return self.for_sensor(sensor).provenance(sensor)

    def for_sensor(self, sensor: str) -> DepthCompleter:
        return self.by_sensor.get(sensor, self.default)

    def _complete(self, frame):
        self._last = self.for_sensor(frame.sensor)
        return self._last._complete(frame)

    def network_ms(self) -> float | None:
        return self._last.network_ms() if self._last is not None else None


def other_family(completer: DepthCompleter, sensor: str) -> str | None:
    """The camera family of the weights that complete ``sensor``'s frames where it is not ``sensor`` (lidar
    frames and only D435 weights: they were made for another camera's failures); None where it is, or where the
    completer has no weights."""
    made = completer.provenance(sensor).get("trained_for")
    return made if made is not None and made != sensor else None


def default_weights(name: str) -> Path:
    from pipeline.weights import WEIGHTS_DIR

    return WEIGHTS_DIR / f"{name}.safetensors"


def sensor_weights(folder: str | Path, name: str) -> dict[str, Path]:
    """The sensor-specific weights ``folder/NAME-FAMILY.safetensors`` present, by family."""
    found = {s: Path(folder) / f"{name}-{s}.safetensors" for s in SENSOR_FAMILIES}
    return {s: p for s, p in found.items() if p.is_file()}


class EnsembleCompleter(DepthCompleter):
    """The mean depth of several networks (each at its own working scale): a teacher for offline use, where
    cost is no concern."""

    name = "ensemble"

    def __init__(self, members: list[NetworkCompleter]):
        if not members:
            raise ValueError("an ensemble needs at least one network")
        self.members = members

    def _complete(self, frame):
        depths = []
        self._network_ms = 0.0
        for m in self.members:
            depths.append(m._complete(frame))
            self._network_ms += m.network_ms() or 0.0
        return np.mean(depths, axis=0)

    def provenance(self, sensor: str) -> dict:
        return {"members": [m.provenance(sensor) for m in self.members]}


def _network(name: str, folder: Path, backend: str, device: str, flip: bool) -> DepthCompleter:
    from pipeline.weights import WeightsError

    default = NetworkCompleter(folder / f"{name}.safetensors", backend=backend, device=device, flip=flip)
    by_sensor = {}
    for sensor, p in sensor_weights(folder, name).items():
        net = NetworkCompleter(p, backend=backend, device=device, flip=flip)
        if net.card.get("sensor", sensor) != sensor:
            raise WeightsError(f"{p}: its card says it was made for sensor {net.card['sensor']!r}, not {sensor!r}")
        by_sensor[sensor] = net
    return SensorRoutedCompleter(default, by_sensor) if by_sensor else default


def make_completer(name: str, weights: str | Path | None = None, backend: str = "torch",
                   device: str = "auto", flip: bool = False) -> DepthCompleter:
    """Completer by name. Networks load ``weights``: a ``.safetensors`` file (used for every frame), or a
    folder (default: the shipped ``weights/``) holding ``NAME.safetensors`` and optionally
    ``NAME-d435.safetensors`` / ``NAME-l515.safetensors``, used for frames of those camera families. They run on
    ``backend`` (torch, onnx or auto) on ``device`` (auto: the GPU when PyTorch sees one, where they run in
    torch; cpu; cuda). ``flip``: a network's depth is the mean of its answers for the frame and for its mirror
    image (better, at twice the time: for offline use)."""
    if name == "raw":
        return RawCompleter()
    if name == "fill":
        return FillCompleter()
    if name == "gt":
        return OracleCompleter()
    if name in ("student", "teacher"):
        weights = Path(weights) if weights is not None else default_weights(name).parent
        if weights.is_dir():
            return _network(name, weights, backend, device, flip)
        return NetworkCompleter(weights, backend=backend, device=device, flip=flip)
    raise ValueError(f"unknown depth completer {name!r}; choose one of {', '.join(COMPLETERS)}")
