"""Intel RealSense (D415/D435/L515) as a ``Camera``: depth aligned to colour, metres, optional filters.

    with RealSenseCamera(RealSenseConfig(serial="..."), T_base_cam=T) as cam:
        frame = cam.read()

The depth scale and the colour intrinsics are read from the device (or the recording). Frames come from a
live pipeline, a recorded file (``playback=``), or any object with ``wait_for_frames(timeout_ms)`` returning
framesets (``source=``, e.g. an ``rs.syncer`` fed by an ``rs.software_device``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import DeviceNotConnectedError, DistillGraspError
from pipeline.types import SENSOR_FAMILIES, Camera, CameraIntrinsics, RGBDFrame, sensor_family

FILTERS = ("spatial", "temporal", "hole_filling")


class CameraError(DistillGraspError, RuntimeError):
    """The camera is missing, stopped delivering frames, or its recording cannot be read."""


@dataclass(frozen=True)
class RealSenseConfig:
    width: int = 640
    height: int = 480
    fps: int = 30
    serial: str | None = None
    filters: tuple[str, ...] = ()
    frame_timeout_ms: int = 5000
    warmup_frames: int = 0  # frames dropped after start (auto-exposure settling on a live camera)
    sensor: str = "auto"  # sensor family for the depth completer: auto (from the device's name), d435, l515

    def __post_init__(self) -> None:
        unknown = [f for f in self.filters if f not in FILTERS]
        if unknown:
            raise ValueError(f"unknown RealSense filter(s) {unknown}; choose from {', '.join(FILTERS)}")
        if self.sensor not in ("auto", *SENSOR_FAMILIES):
            raise ValueError(f"unknown RealSense sensor family {self.sensor!r}; choose auto, "
                             f"{', '.join(SENSOR_FAMILIES)}")


def _rs():
    import pyrealsense2 as rs

    return rs


class RealSenseCamera(Camera):
    def __init__(self, config: RealSenseConfig = RealSenseConfig(), T_base_cam: np.ndarray | None = None,
                 playback: str | Path | None = None, source=None):
        self.config, self.playback, self.source = config, playback, source
        self.T_base_cam = None if T_base_cam is None else np.asarray(T_base_cam, dtype=np.float64)
        self._pipeline = None
        self._align = None
        self._filters: list = []
        self._intrinsics: CameraIntrinsics | None = None
        self._connected = False
        self.sensor = "" if config.sensor == "auto" else config.sensor  # the family, once connected
        self._playback_sensors: list = []

    # -------------------------------------------------------------------------------- connection
    def connect(self) -> None:
        rs = _rs()
        cfg = self.config
        if self.source is None and self.playback is not None:
            if not Path(self.playback).is_file():
                raise CameraError(f"RealSense recording not found: {self.playback}")
            # The recording's sensors stream into a syncer directly, switched to frame-by-frame reading
            # before anything streams (started through a pipeline, playback runs in real time from the
            # start, and librealsense then drops frames or, for a short file, all of them).
            try:
                device = rs.context().load_device(str(self.playback))
                device.set_real_time(False)
                syncer, sensors = rs.syncer(), device.query_sensors()
                for sensor in sensors:
                    sensor.open(sensor.get_stream_profiles())
                    sensor.start(syncer)
            except RuntimeError as exc:
                raise CameraError(f"cannot play the RealSense recording {self.playback} ({exc})") from None
            self._playback_sensors = sensors
            self.source = syncer
            self._detect_sensor(device)
        elif self.source is None:
            pipe, rc = rs.pipeline(), rs.config()
            if cfg.serial:
                rc.enable_device(cfg.serial)
            rc.enable_stream(rs.stream.depth, cfg.width, cfg.height, rs.format.z16, cfg.fps)
            rc.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
            try:
                pipe.start(rc)
            except RuntimeError as exc:
                which = f"with serial {cfg.serial} " if cfg.serial else ""
                raise CameraError(f"no RealSense {which}could be started ({exc}); is it plugged into USB 3?") from None
            self._pipeline = pipe
            self.source = pipe
            self._detect_sensor(pipe.get_active_profile().get_device())
        self._align = rs.align(rs.stream.color)
        makers = {"spatial": rs.spatial_filter, "temporal": rs.temporal_filter, "hole_filling": rs.hole_filling_filter}
        self._filters = [makers[name]() for name in cfg.filters]
        self._connected = True
        for _ in range(cfg.warmup_frames):
            self._frameset()

    def _detect_sensor(self, device) -> None:
        """With ``sensor="auto"``, the family from the device's name (D4xx: d435, L5xx: l515)."""
        if self.config.sensor != "auto":
            return
        try:
            name = device.get_info(_rs().camera_info.name)
        except RuntimeError:  # a device without the name field
            name = ""
        self.sensor = sensor_family(name)

    def disconnect(self) -> None:
        if self._playback_sensors and self.source is not None:
            # A recording stopped mid-stream hangs librealsense: read it to its end first (frame by frame, it
            # is decoded as fast as it is read).
            try:
                while True:
                    self.source.wait_for_frames(200)
            except RuntimeError:
                pass
        for sensor in self._playback_sensors:
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError:
                pass
        if self._playback_sensors:
            self._playback_sensors = []
            self.source = None
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass
            self._pipeline = None
            self.source = None
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def intrinsics(self) -> CameraIntrinsics:
        if self._intrinsics is None:
            raise DeviceNotConnectedError("RealSense intrinsics are known after the first read()")
        return self._intrinsics

    # -------------------------------------------------------------------------------- frames
    def _frameset(self):
        """The next frameset holding both depth and colour (a syncer's first sets can hold one of them)."""
        for _ in range(8):
            try:
                fs = self.source.wait_for_frames(self.config.frame_timeout_ms)
            except RuntimeError as exc:
                raise CameraError(f"no frame from the RealSense within {self.config.frame_timeout_ms} ms "
                                  f"({exc})") from None
            if fs.get_depth_frame() and fs.get_color_frame():
                return fs
        raise CameraError("the RealSense framesets lack a depth or a colour frame")

    def read(self) -> RGBDFrame:
        if not self._connected:
            raise DeviceNotConnectedError("RealSenseCamera.read() before connect()")
        fs = self._frameset()
        for f in self._filters:
            fs = f.process(fs).as_frameset()
        fs = self._align.process(fs)
        depth_frame, color_frame = fs.get_depth_frame(), fs.get_color_frame()
        if not depth_frame or not color_frame:
            raise CameraError("the RealSense frameset lacks a depth or a colour frame")
        units = depth_frame.get_units()
        depth = np.asanyarray(depth_frame.get_data()).astype(np.float32) * units
        rgb = np.ascontiguousarray(np.asanyarray(color_frame.get_data())[..., :3])
        i = color_frame.profile.as_video_stream_profile().get_intrinsics()
        self._intrinsics = CameraIntrinsics(i.width, i.height, i.fx, i.fy, i.ppx, i.ppy)
        return RGBDFrame(rgb=rgb, depth=depth, intrinsics=self._intrinsics, T_base_cam=self.T_base_cam,
                         sensor=self.sensor,
                         timestamp=color_frame.get_timestamp() / 1000.0 if color_frame.get_timestamp() else time.time())
