"""An ``rs.software_device`` with a depth (z16) and a colour (rgb8) sensor, fed with numpy frames."""

from __future__ import annotations

import numpy as np


class SoftwareRealSense:
    def __init__(self, width=64, height=48, fx=50.0, depth_units=0.001, baseline=0.015, record_to=None,
                 name=None):
        import pyrealsense2 as rs

        self.rs, self.w, self.h = rs, width, height
        self.dev = rs.software_device()
        if name:
            self.dev.register_info(rs.camera_info.name, name)
        self.depth_sensor, self.color_sensor = self.dev.add_sensor("Depth"), self.dev.add_sensor("Color")
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy = width, height, fx, fx
        intr.ppx, intr.ppy, intr.model, intr.coeffs = width / 2 - 0.5, height / 2 - 0.5, rs.distortion.none, [0] * 5
        self.intr = intr
        self.depth_profile = self._stream(self.depth_sensor, rs.stream.depth, 0, 2, rs.format.z16)
        self.color_profile = self._stream(self.color_sensor, rs.stream.color, 1, 3, rs.format.rgb8)
        self.depth_sensor.add_read_only_option(rs.option.depth_units, depth_units)
        ex = rs.extrinsics()
        ex.rotation, ex.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [baseline, 0, 0]
        self.depth_profile.register_extrinsics_to(self.color_profile, ex)
        self.dev.create_matcher(rs.matchers.default)
        self.recorder = rs.recorder(str(record_to), self.dev) if record_to else None
        self.syncer = rs.syncer()
        self.depth_sensor.open(self.depth_profile)
        self.color_sensor.open(self.color_profile)
        self.depth_sensor.start(self.syncer)
        self.color_sensor.start(self.syncer)
        self.n = 0

    def _stream(self, sensor, kind, uid, bpp, fmt):
        vs = self.rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height = kind, 0, uid, self.w, self.h
        vs.fps, vs.bpp, vs.fmt, vs.intrinsics = 30, bpp, fmt, self.intr
        return sensor.add_video_stream(vs)

    def push(self, depth_mm: np.ndarray, rgb: np.ndarray) -> None:
        rs = self.rs
        for sensor, prof, arr, bpp in ((self.depth_sensor, self.depth_profile, depth_mm, 2),
                                       (self.color_sensor, self.color_profile, rgb, 3)):
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride = np.ascontiguousarray(arr), bpp, self.w * bpp
            f.timestamp, f.domain, f.frame_number = self.n * 33.3, rs.timestamp_domain.hardware_clock, self.n
            f.profile = prof.as_video_stream_profile()
            sensor.on_video_frame(f)
        self.n += 1

    def wait_for_frames(self, timeout_ms: int):
        return self.syncer.wait_for_frames(timeout_ms)

    def close(self) -> None:
        for s in (self.depth_sensor, self.color_sensor):
            s.stop()
            s.close()
        self.recorder = None
