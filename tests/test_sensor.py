"""Sensor model: geometry of the stereo shadow, and the glass-failure statistics of generated frames."""

import cv2
import numpy as np
import pytest

from pipeline.data.stats import folder_stats, glass_failure_stats
from pipeline.types import CameraIntrinsics
from sim.sensor import SensorModel, depth_edges, stereo_shadow


def test_stereo_shadow_width_matches_disparity_jump():
    """A box at 0.5 m over a floor at 1.0 m: the right imager (+x) cannot see a band left of the box whose
    width is the disparity difference f*b*(1/0.5 - 1/1.0)."""
    K = CameraIntrinsics(320, 40, 300.0, 300.0, 159.5, 19.5)
    depth = np.full((40, 320), 1.0, np.float32)
    depth[:, 200:260] = 0.5
    shadow = stereo_shadow(depth, K, 0.05)
    expected = 300.0 * 0.05 * (1 / 0.5 - 1 / 1.0)  # 15 px
    cols = np.nonzero(shadow[20])[0]
    assert cols.max() == 199 and abs(len(cols) - expected) <= 1
    assert not shadow[:, 200:].any()


def test_depth_edges_marks_jumps_only():
    d = np.full((10, 10), 1.0, np.float32)
    d[:, 5:] = 0.8
    e = depth_edges(d)
    assert e[:, 4:6].all() and not e[:, :4].any() and not e[:, 6:].any()


def test_glass_failure_stats_arithmetic():
    gt = np.full((2, 5), 0.5, np.float32)
    raw = np.array([[0, 0, 0.52, 0.56, 0.505], [0.5, 0, 0, 0, 0]], np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    s = glass_failure_stats(raw, gt, mask)
    assert s["pixels"] == 6 and s["missing"] == pytest.approx(2 / 6)
    assert s["behind"] == pytest.approx(2 / 4)  # 0.52 and 0.56 are > 1 cm behind
    assert s["median_error_mm"] == pytest.approx(12.5, abs=0.01)
    assert glass_failure_stats(raw, gt, np.zeros_like(mask)) is None


def test_sensor_rejects_bad_shapes():
    K = CameraIntrinsics(8, 6, 5.0, 5.0, 3.5, 2.5)
    z = np.ones((6, 8), np.float32)
    with pytest.raises(ValueError, match="depth_bg must be 6x8"):
        SensorModel("d435")(z, np.ones((5, 8), np.float32), z > 2, np.zeros((6, 8), np.int32), K,
                            np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown sensor mode"):
        SensorModel("kinect")


def test_opaque_surfaces_get_realistic_noise():
    """Off the glass, the D435 model keeps nearly every pixel and stays within a few mm of the truth."""
    K = CameraIntrinsics(160, 120, 150.0, 150.0, 79.5, 59.5)
    gt = np.full((120, 160), 0.7, np.float32)
    raw = SensorModel("d435")(gt, gt, np.zeros_like(gt, bool), np.full(gt.shape, -1, np.int32), K,
                              np.random.default_rng(3))
    valid = raw > 0
    assert valid.mean() > 0.98
    err = raw[valid] - 0.7
    assert 0.0003 < err.std() < 0.005 and abs(np.median(err)) < 0.002


# Realism targets: the ranges measured on real captures (FACTS.md), per frame then averaged.
def test_d435_statistics_match_real_captures(generated_d435):
    s = folder_stats(generated_d435, progress=False)
    assert s["frames"] >= 14
    assert 0.29 <= s["missing"] <= 0.77
    assert 0.53 <= s["behind"] <= 0.89
    assert 11 <= s["median_error_mm"] <= 49


def test_l515_statistics_match_real_captures(generated_l515):
    s = folder_stats(generated_l515, progress=False)
    assert s["missing"] <= 0.12
    assert s["behind"] >= 0.90
    assert s["median_error_mm"] >= 30  # real captures: +30 to +45 mm with mostly low glass; upright glass reads deeper


def test_l515_reads_what_lies_behind_the_glass():
    """As on the real ClearPose frame: the lidar's reading on glass is the surface behind it (within millimetres),
    whatever the height of the glass."""
    K = CameraIntrinsics(64, 48, 60.0, 60.0, 31.5, 23.5)
    bg = np.full((48, 64), 1.0, np.float32)
    gt = bg.copy()
    mask = np.zeros((48, 64), bool)
    gt[10:30, 10:25], mask[10:30, 10:25] = 0.97, True  # a glass lying down, 3 cm high
    gt[10:30, 35:50], mask[10:30, 35:50] = 0.85, True  # one standing, 15 cm high
    instance = np.where(mask, np.where(np.arange(64) < 30, 1, 2)[None, :], 0).astype(np.int32)
    raw = SensorModel("l515")(gt, bg, mask, instance, K, np.random.default_rng(0))
    for cols, height in ((slice(12, 23), 0.03), (slice(37, 48), 0.15)):
        patch = raw[12:28, cols]
        valid = patch > 0
        assert valid.mean() > 0.8
        # the reading lies at the table (1 m), whatever the glass's height
        assert 0.995 < np.median(patch[valid]) < 1.005
    # nothing marks the glass's outline: no more dropouts or flying pixels there than on the open table
    rim = (cv2.dilate(mask.astype(np.uint8), np.ones((3, 3))) > 0) & ~mask
    assert (raw[rim] > 0).all() and np.abs(raw[rim] - 1.0).max() < 0.01


def test_the_d400_family_in_the_simulator():
    """Every D400 model draws with the stereo family's failures and its own baseline, range and colour camera;
    a D415 leaves a few far codes, which the frame turns into counted no-readings."""
    from pipeline.types import SIM_SENSORS
    from sim.camera import SimCameraConfig
    from sim.sensor import FAR_CODE_M, SENSORS
    from sim.world import SimWorld, WorldConfig

    assert SIM_SENSORS[:2] == ("d435", "l515")  # the generator's random streams stay as they were
    assert {n: s.family for n, s in SENSORS.items()} == {"d435": "d435", "l515": "l515", "d415": "d435",
                                                         "d455": "d435", "d405": "d435"}
    assert SENSORS["d455"].stereo.baseline_m == 0.095 and SENSORS["d405"].stereo.baseline_m == 0.018
    assert SimCameraConfig(sensor="d455").intrinsics.fx < SimCameraConfig(sensor="d435").intrinsics.fx
    gt = np.full((48, 64), 0.8, np.float32)
    K = SimCameraConfig(width=64, height=48, sensor="d415").intrinsics
    none = np.zeros(gt.shape, bool)
    raws = [SensorModel("d415")(gt, gt, none, np.full(gt.shape, -1, np.int32), K, np.random.default_rng(s))
            for s in range(30)]
    assert any((r == np.float32(FAR_CODE_M)).any() for r in raws)
    close = SensorModel("d405")(gt * 2, gt * 2, none, np.full(gt.shape, -1, np.int32), K, np.random.default_rng(0))
    assert (close == 0).all()  # 1.6 m is beyond a D405's range
    with SimWorld(3, WorldConfig().with_sensor("d455")) as world:
        frame = world.capture()
        assert world.sensor == "d435" and world.describe()["camera"] == "d455" and frame.sensor == "d435"
