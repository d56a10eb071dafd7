"""``SimCamera``: a RealSense-like RGB-D camera in a PyBullet scene."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pybullet as p

from pipeline.cli import parse_size
from pipeline.errors import DeviceNotConnectedError
from pipeline.types import RENDERERS, Camera, CameraIntrinsics, RGBDFrame
from sim.render import Appearance, RenderOutput, render_frame
from sim.scene import TabletopScene
from sim.sensor import SENSORS, SensorModel

# RealSense D435 colour stream at 640x480 (the project's default camera).
D435_COLOR_640 = CameraIntrinsics(640, 480, 615.0, 615.0, 319.5, 239.5)


@dataclass(frozen=True)
class SimCameraConfig:
    """Resolution, base intrinsics (scaled to the resolution), sensor mode and renderer.

    ``renderer``: "fast" (PyBullet's rasteriser with see-through glass composited in screen space) or
    "mitsuba" (path traced, ``sim.photoreal``: refracting glass, ``spp`` samples per pixel, a bright room
    with ``room``, raw depth from a rendered stereo pair with ``stereo`` instead of the sensor model).
    """

    width: int = 640
    height: int = 480
    base_intrinsics: CameraIntrinsics | None = None  # default: the sensor model's colour camera
    sensor: str = "d435"  # a camera model (sim.sensor.SENSORS)
    renderer: str = "fast"
    spp: int = 8
    room: bool = False
    stereo: bool = False

    def __post_init__(self) -> None:
        if self.sensor not in SENSORS:
            raise ValueError(f"unknown sensor {self.sensor!r}; choose one of {', '.join(SENSORS)}")
        if self.renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {self.renderer!r}; choose one of {', '.join(RENDERERS)}")
        if self.renderer == "fast" and (self.stereo or self.room):
            raise ValueError("stereo and room need the mitsuba renderer (the fast renderer has neither)")
        if self.spp < 1:
            raise ValueError(f"spp must be at least 1, got {self.spp}")
        parse_size(f"{self.width}x{self.height}")

    @property
    def intrinsics(self) -> CameraIntrinsics:
        base = self.base_intrinsics
        if base is None:
            fx = SENSORS[self.sensor].colour_fx_640
            base = CameraIntrinsics(640, 480, fx, fx, D435_COLOR_640.cx, D435_COLOR_640.cy)
        return base.scaled(self.width, self.height)


@dataclass
class SimCamera(Camera):
    """Renders ``scene`` from ``T_base_cam`` and applies the sensor model.

    ``read()`` returns an ``RGBDFrame`` whose ``depth`` is the simulated raw sensor depth, with ``depth_gt``
    (glass as if opaque) and ``mask`` (transparent pixels) filled in. The fast renderer keeps one
    ``appearance`` (lighting, textures, glass tint) for the camera's life; the path tracer draws materials
    and lights from ``rng`` at every read.
    """

    scene: TabletopScene
    T_base_cam: np.ndarray
    config: SimCameraConfig = field(default_factory=SimCameraConfig)
    appearance: Appearance | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    _connected: bool = False
    last_render: RenderOutput | None = None

    def __post_init__(self) -> None:
        self.T_base_cam = np.asarray(self.T_base_cam, dtype=np.float64)
        if self.T_base_cam.shape != (4, 4):
            raise ValueError(f"SimCamera: T_base_cam must be 4x4, got {self.T_base_cam.shape}")
        self.sensor = SensorModel(self.config.sensor)

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return self.config.intrinsics

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        if not p.isConnected(physicsClientId=self.scene.client):
            raise DeviceNotConnectedError(f"SimCamera: PyBullet client {self.scene.client} is not connected")
        if self.appearance is None and self.config.renderer == "fast":
            self.appearance = Appearance.sample(self.rng, self.scene.glass_ids)
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def read(self) -> RGBDFrame:
        if not self._connected:
            raise DeviceNotConnectedError("SimCamera.read() before connect()")
        K, cfg = self.intrinsics, self.config
        if cfg.renderer == "fast":
            out = render_frame(self.scene, K, self.T_base_cam, self.appearance, self.rng)
        else:
            from sim.photoreal import PhotorealConfig, shared_renderer  # Mitsuba loads only when asked for

            renderer = shared_renderer(PhotorealConfig(spp=cfg.spp, room=cfg.room))
            out = renderer.render(self.scene, K, self.T_base_cam, self.rng, stereo=cfg.stereo)
        if cfg.stereo:
            raw = out.stereo_depth
        else:
            raw = self.sensor(out.depth, out.depth_bg, out.mask, out.instance, K, self.rng)
        self.last_render = out
        return RGBDFrame(rgb=out.rgb, depth=raw, intrinsics=K, T_base_cam=self.T_base_cam.copy(),
                         mask=out.mask, depth_gt=out.depth, sensor=SENSORS[self.config.sensor].family)
