"""RealSenseCamera with an rs.software_device and with a recording made here."""

import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2")

from hardware.realsense import CameraError, RealSenseCamera, RealSenseConfig  # noqa: E402
from tests.fakes.realsense_software import SoftwareRealSense  # noqa: E402


def _scene(w=64, h=48):
    depth = np.full((h, w), 700, np.uint16)
    depth[10:20, 20:40] = 0  # a hole, as on glass
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = 200
    return depth, rgb


def test_software_device_frames_in_metres_with_intrinsics():
    dev = SoftwareRealSense()
    cam = RealSenseCamera(RealSenseConfig(), T_base_cam=np.eye(4), source=dev)
    with cam:
        depth, rgb = _scene()
        frame = None
        for _ in range(3):  # the syncer pairs depth and colour from the second push on
            dev.push(depth, rgb)
            try:
                frame = cam.read()
                if frame is not None:
                    break
            except CameraError:
                continue
    dev.close()
    assert frame.rgb.shape == (48, 64, 3) and (frame.rgb[..., 0] == 200).all()
    valid = frame.depth[frame.depth > 0]
    assert valid.size > 0.5 * frame.depth.size
    assert np.allclose(valid, 0.7, atol=0.01)  # 700 units of 1 mm, aligned to colour
    assert frame.intrinsics.fx == 50.0 and frame.intrinsics.width == 64


def _play(path, config):
    """Every frame of a recording. (Played to its end: stopping a playback that is still streaming can hang
    in librealsense.)"""
    cam, frames = RealSenseCamera(config, playback=path), []
    with cam:
        try:
            while True:
                frames.append(cam.read())
        except CameraError as exc:
            assert "no frame" in str(exc)
    return cam, frames


def test_recorded_playback_reads_every_frame(tmp_path):
    path = tmp_path / "capture.db3"
    dev = SoftwareRealSense(record_to=path, name="Intel RealSense L515")
    depth, rgb = _scene()
    for i in range(6):
        dev.push(depth + i, rgb)
        dev.wait_for_frames(1000)
    dev.close()
    del dev
    cam, frames = _play(path, RealSenseConfig(filters=("spatial", "temporal"), frame_timeout_ms=1000))
    # frame by frame (the syncer may pair the first depth and colour frames late), values in metres
    assert len(frames) >= 4
    assert all(f.depth.dtype == np.float32 and 0.69 < f.depth.max() < 0.71 for f in frames)
    # the family comes from the recorded device's name (the completer picks its weights by it)
    assert cam.sensor == "l515" and all(f.sensor == "l515" for f in frames)
    forced, frames = _play(path, RealSenseConfig(sensor="d435", frame_timeout_ms=1000))
    assert forced.sensor == "d435" and frames and all(f.sensor == "d435" for f in frames)
    with pytest.raises(ValueError, match="sensor family"):
        RealSenseConfig(sensor="kinect")


def test_missing_camera_and_recording_give_clear_errors(tmp_path):
    with pytest.raises(CameraError, match="recording not found"):
        RealSenseCamera(playback=tmp_path / "none.db3").connect()
    with pytest.raises(CameraError, match="no RealSense"):
        RealSenseCamera(RealSenseConfig(serial="000000000000")).connect()
    with pytest.raises(ValueError, match="unknown RealSense filter"):
        RealSenseConfig(filters=("median",))
