"""What a RealSense returns where there is glass, made from ground truth, glass mask and background depth.

Two modes, calibrated against the real captures' statistics (see ``pipeline.data.stats``):

``d435`` (active stereo): the projector pattern passes through glass, so the matcher either fails (blob-shaped
  holes) or locks onto the texture behind, reading a depth between the glass surface and the background
  (smoothed by the matching window). Specular and textured patches read near the true surface. Depth edges
  drop out, surfaces hidden from the right imager are invalid (stereo shadow), and every reading carries
  disparity noise quantised to the matcher's sub-pixel step.

``l515`` (lidar): the pulse returns from the glass and from what lies behind; the peak detector reports the
  depth of what lies behind (within millimetres) on the glass, rarely with holes, so the depth alone shows no
  trace of the glass (as on the real ClearPose frame). Depth edges of what it sees get flying pixels
  (mixtures of foreground and background), and readings carry little noise.

Every glass object draws its own behaviour (hole share, how far it sees through, noise), so frames vary as
real ones do. Input and output depths are HxW float32 metres, 0 = no reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.types import SIM_SENSORS, CameraIntrinsics, sensor_family


@dataclass(frozen=True)
class StereoConfig:
    """The physical stereo pair (independent of the output resolution)."""

    baseline_m: float = 0.05
    focal_px: float = 425.0  # depth imager focal length at its native 848x480
    subpixel: float = 1.0 / 8.0  # disparity quantisation step, pixels
    disparity_noise_px: float = 0.06


@dataclass(frozen=True)
class SensorSpec:
    """One RealSense model as the simulator draws it: its family's failure model, its stereo pair, the range
    it reads, its colour camera (at 640x480), and how often a pixel reads the far code (65.535 m)."""

    family: str
    stereo: StereoConfig
    min_range_m: float
    max_range_m: float
    colour_fx_640: float
    far_code_share: float = 0.0


FAR_CODE_M = 65.535  # z16's largest code at the default depth units

# Datasheet figures (FACTS.md). focal_px is the depth imager's at 848x480: 425 px for the 87-degree models, 633 px
# for the D415's 65 degrees. Colour cameras: the D415's and D435's 69 degrees (615 px at 640), the D455's 90
# degrees (320 px), the D405's colour from its depth imagers (337 px).
SENSORS: dict[str, SensorSpec] = {
    "d435": SensorSpec("d435", StereoConfig(baseline_m=0.050), 0.28, 10.0, 615.0),
    "l515": SensorSpec("l515", StereoConfig(), 0.25, 9.0, 615.0),
    "d415": SensorSpec("d435", StereoConfig(baseline_m=0.055, focal_px=633.0), 0.16, 10.0, 615.0,
                       far_code_share=2e-4),
    "d455": SensorSpec("d435", StereoConfig(baseline_m=0.095), 0.52, 20.0, 320.0),
    "d405": SensorSpec("d435", StereoConfig(baseline_m=0.018), 0.07, 1.0, 337.0),
}
assert tuple(SENSORS) == SIM_SENSORS and all(sensor_family(n) == s.family for n, s in SENSORS.items())


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """Smooth random field with unit variance-ish values, ~``cells`` features across the image width."""
    h, w = shape
    gw = max(int(round(cells)), 2)
    gh = max(int(round(cells * h / w)), 2)
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _quantile_threshold(field: np.ndarray, sel: np.ndarray, share: float) -> np.ndarray:
    """Boolean image True on the ``share`` of ``sel`` pixels where ``field`` is highest."""
    if share <= 0 or not sel.any():
        return np.zeros_like(sel)
    t = np.quantile(field[sel], 1.0 - min(share, 1.0))
    return sel & (field >= t)


def depth_edges(depth: np.ndarray, rel_jump: float = 0.03) -> np.ndarray:
    """Pixels next to a depth discontinuity larger than ``rel_jump`` of the depth."""
    d = depth.copy()
    d[d <= 0] = np.nan
    jump = np.zeros(depth.shape, bool)
    for dy, dx in ((0, 1), (1, 0)):
        a = d[: d.shape[0] - dy, : d.shape[1] - dx]
        b = d[dy:, dx:]
        j = np.abs(a - b) > rel_jump * np.fmin(a, b)
        j |= np.isnan(a) != np.isnan(b)
        jump[: d.shape[0] - dy, : d.shape[1] - dx] |= j
        jump[dy:, dx:] |= j
    return jump


def stereo_shadow(depth: np.ndarray, K: CameraIntrinsics, baseline_m: float) -> np.ndarray:
    """Pixels of the left (reference) imager that the right imager, ``baseline_m`` along +x, cannot see."""
    h, w = depth.shape
    u = np.arange(w, dtype=np.float32)[None, :]
    disp = np.where(depth > 0, K.fx * baseline_m / np.maximum(depth, 1e-6), 0.0)
    xr = u - disp
    # minimum of xr over the pixels strictly to the right
    suffix = np.minimum.accumulate(xr[:, ::-1], axis=1)[:, ::-1]
    right_min = np.concatenate([suffix[:, 1:], np.full((h, 1), np.inf, np.float32)], axis=1)
    return (right_min < xr - 0.5) & (depth > 0)


def _disparity_noise(depth: np.ndarray, rng: np.random.Generator, st: StereoConfig, scale: float = 1.0) -> np.ndarray:
    valid = depth > 0
    disp = np.where(valid, st.focal_px * st.baseline_m / np.maximum(depth, 1e-6), 0.0)
    noise = rng.normal(0.0, st.disparity_noise_px * scale, depth.shape)
    noise += 0.05 * scale * _smooth_field(rng, depth.shape, 12)  # low-frequency ripple
    disp = np.round((disp + noise) / st.subpixel) * st.subpixel
    out = np.where(valid & (disp > 0), st.focal_px * st.baseline_m / np.maximum(disp, 1e-6), 0.0)
    return out.astype(np.float32)


@dataclass(frozen=True)
class SensorModel:
    """Turns (ground truth, background depth, glass mask, instance ids) into raw sensor depth."""

    mode: str = "d435"  # a camera model, one of SENSORS

    def __post_init__(self) -> None:
        if self.mode not in SENSORS:
            raise ValueError(f"unknown sensor model {self.mode!r}; choose one of {', '.join(SENSORS)}")

    @property
    def spec(self) -> SensorSpec:
        return SENSORS[self.mode]

    @property
    def stereo(self) -> StereoConfig:
        return self.spec.stereo

    def __call__(self, depth_gt: np.ndarray, depth_bg: np.ndarray, mask: np.ndarray, instance: np.ndarray,
                 K: CameraIntrinsics, rng: np.random.Generator) -> np.ndarray:
        for name, arr in (("depth_gt", depth_gt), ("depth_bg", depth_bg), ("mask", mask), ("instance", instance)):
            if arr.shape != (K.height, K.width):
                raise ValueError(f"sensor model: {name} must be {K.height}x{K.width}, got {arr.shape}")
        spec = self.spec
        if spec.family == "d435":
            raw = self._d435(depth_gt, depth_bg, mask, instance, K, rng)
        else:
            raw = self._l515(depth_gt, depth_bg, mask, instance, K, rng)
        if self.mode == "d435" or self.mode == "l515":  # the models the data sets were made with, unchanged
            return raw
        raw[(raw < spec.min_range_m) | (raw > spec.max_range_m)] = 0.0
        if spec.far_code_share:
            raw[rng.random(raw.shape) < spec.far_code_share] = FAR_CODE_M
        return raw

    # ----------------------------------------------------------------------------------------------------
    def _d435(self, gt, bg, mask, instance, K, rng) -> np.ndarray:
        shape = gt.shape
        st = self.stereo
        # What the matcher locks onto: the surface, or through the glass.
        target = gt.copy()
        holes = np.zeros(shape, bool)
        for body in np.unique(instance[mask]):
            sel = mask & (instance == body)
            n = sel.sum()
            if n == 0:
                continue
            behind = np.where(bg[sel] > 0, bg[sel], gt[sel] + 0.1)
            # See-through: a blend between surface and background, varying smoothly over the object.
            alpha = np.clip(rng.uniform(0.25, 0.9) + 0.15 * _smooth_field(rng, shape, 6)[sel], 0.05, 1.0)
            see = gt[sel] + alpha * (behind - gt[sel])
            obj = gt.copy()
            obj[sel] = see
            # Patches that read near the true surface (highlights, prints, edges of the pattern).
            surface = _quantile_threshold(_smooth_field(rng, shape, rng.uniform(10, 25)), sel,
                                          rng.uniform(0.03, 0.35))
            obj[surface] = gt[surface] + rng.normal(0, 0.003, surface.sum())
            target[sel] = obj[sel]
            # Blob-shaped matching failures.
            holes |= _quantile_threshold(_smooth_field(rng, shape, rng.uniform(8, 20)), sel,
                                         rng.uniform(0.15, 0.7))
        # The matching window smooths the see-through readings across the glass.
        if mask.any():
            blurred = cv2.blur(target, (5, 5))
            target = np.where(mask, blurred, target)
        raw = _disparity_noise(target, rng, st, scale=1.0)
        # Glass readings are noisier than matte surfaces.
        raw = np.where(mask & (raw > 0), raw + rng.normal(0, 0.004, shape).astype(np.float32) *
                       (1 + _smooth_field(rng, shape, 8) ** 2), raw)
        # Edge dropouts around depth jumps (in truth and at the glass border), stereo shadow, speckle.
        edges = depth_edges(gt) | (cv2.dilate(mask.astype(np.uint8), np.ones((3, 3))) > 0) & ~mask
        edges = cv2.dilate(edges.astype(np.uint8), np.ones((3, 3))) > 0
        drop = edges & (rng.random(shape) < rng.uniform(0.4, 0.8))
        drop |= stereo_shadow(gt, K, st.baseline_m)
        drop |= rng.random(shape) < 0.0005
        raw[holes | drop] = 0.0
        raw[gt <= 0] = 0.0
        return self._clean_specks(raw)

    def _l515(self, gt, bg, mask, instance, K, rng) -> np.ndarray:
        shape = gt.shape
        target = gt.copy()
        holes = np.zeros(shape, bool)
        for body in np.unique(instance[mask]):
            sel = mask & (instance == body)
            if not sel.any():
                continue
            behind = np.where(bg[sel] > 0, bg[sel], gt[sel] + 0.1)
            # The peak detector locks onto the return from the surface behind the glass: on the real ClearPose
            # frame the L515 reads the table behind the glass (raw minus table: 0 +- 5 mm, whatever the glass's
            # height; reading error over height, median 1.008), so the error is the height of the glass above
            # what lies behind it, and the depth alone shows no trace of the glass.
            w = rng.uniform(0.97, 1.02)
            offset = w * (behind - gt[sel]) + 0.003 * _smooth_field(rng, shape, 8)[sel]
            target[sel] = gt[sel] + np.maximum(offset, 0.0)
            if rng.random() < 0.2:  # the real frame has no holes on its glass; a few objects get some
                holes |= _quantile_threshold(_smooth_field(rng, shape, rng.uniform(8, 20)), sel,
                                             rng.uniform(0.0, 0.1))
        raw = target + rng.normal(0, 0.0015, shape).astype(np.float32)
        # Flying pixels: at the depth edges of what the lidar sees (not at glass outlines) the return mixes
        # foreground and background.
        edges = depth_edges(target)
        mix = cv2.blur(target, (5, 5))
        fly = edges & (rng.random(shape) < 0.5)
        raw[fly] = mix[fly]
        drop = edges & (rng.random(shape) < 0.1)
        drop |= rng.random(shape) < 0.002
        raw[holes | drop] = 0.0
        raw[gt <= 0] = 0.0
        return raw.astype(np.float32)

    @staticmethod
    def _clean_specks(raw: np.ndarray) -> np.ndarray:
        """Remove isolated single valid pixels, as the sensor's own speckle filter does."""
        valid = (raw > 0).astype(np.uint8)
        neighbours = cv2.filter2D(valid, -1, np.ones((3, 3), np.float32), borderType=cv2.BORDER_CONSTANT)
        raw = raw.copy()
        raw[(valid > 0) & (neighbours <= 1)] = 0.0
        return raw
