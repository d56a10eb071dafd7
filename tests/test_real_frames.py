"""Real frames as they come: any resolution and aspect (the completer works at its training scale), far codes
and NaN as no-readings, every D400 model in the stereo family."""

import cv2
import numpy as np
import pytest

from pipeline.completion import KEEP_RAW_M, SNAP_TOLERANCE, NetworkCompleter, guided_upsample, make_completer
from pipeline.data.dataset import resize_frame
from pipeline.data.readers import discover
from pipeline.errors import FrameError
from pipeline.types import CameraIntrinsics, RGBDFrame, sensor_family


@pytest.fixture(scope="module")
def real_frame(shared_data):
    folder = discover(shared_data / "cleargrasp" / "real-val", None)[0]
    return folder.load(0)  # 1280x720, D435


@pytest.fixture(scope="module")
def student():
    return make_completer("student", backend="torch")


def test_the_network_works_at_its_training_scale(student, real_frame):
    net = student.for_sensor("d435") if hasattr(student, "for_sensor") else student
    assert isinstance(net, NetworkCompleter)
    K = real_frame.intrinsics
    w, h = net.working_size(K)
    tol = SNAP_TOLERANCE + 0.005  # sides are rounded to the network's padding multiple where that is close
    assert abs(np.sqrt(K.fx * K.fy) * w / K.width - net.train_fx) < tol * net.train_fx  # focal length matched
    assert abs(w / h - K.width / K.height) < 2 * tol  # aspect kept
    assert w % net.model.multiple == 0 and h % net.model.multiple == 0  # no padding wasted (416x240 here)
    small = K.scaled(320, 240)
    assert net.working_size(CameraIntrinsics(320, 240, net.train_fx, net.train_fx, 159.5, 119.5)) == (320, 240)
    assert net.working_size(small) != (320, 240)  # a squashed 1280x720 frame is not at the training scale
    w, h = net.working_size(small)  # ... and is unsquashed: square pixels at the training focal length
    assert abs(small.fx * w / small.width - net.train_fx) < tol * net.train_fx
    assert abs(small.fy * h / small.height - net.train_fx) < tol * net.train_fx


def test_working_sides_round_to_the_padding_multiple_below_first(student):
    net = student.for_sensor("d435") if hasattr(student, "for_sensor") else student
    assert net.model.multiple == 16

    def at(w: float, h: float) -> tuple[int, int]:  # the working size of a frame whose sides scale to w x h
        return net.working_size(CameraIntrinsics(1000, 1000, net.train_fx * 1000 / w, net.train_fx * 1000 / h,
                                                  499.5, 499.5))

    assert at(427.8, 240.6) == (416, 240)  # a 16:9 D435 frame: 2.8% down beats padding up to 432
    assert at(252.0, 300.0) == (256, 304)  # the multiple below is more than 3% away: the one above
    assert at(200.0, 200.0) == (200, 200)  # neither within 3%: as it is, padded inside the network


def test_upsampled_depth_edges_follow_the_colour_image():
    """A depth step at a colour edge, seen at quarter resolution: guided upsampling puts the step back where
    the full-resolution colour edge is; linear upsampling smears it over the coarse pixels."""
    w, h, edge = 160, 40, 83  # the edge falls inside a coarse pixel, not on its border
    gray = np.where(np.arange(w) < edge, 0.2, 0.8).astype(np.float32)[None].repeat(h, 0)
    depth = np.where(np.arange(w) < edge, 0.5, 0.8).astype(np.float32)[None].repeat(h, 0)
    small_gray = cv2.resize(gray, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    small_depth = cv2.resize(depth, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    guided = guided_upsample(small_depth, small_gray, gray)
    linear = cv2.resize(small_depth, (w, h), interpolation=cv2.INTER_LINEAR)
    near = slice(edge - 6, edge + 6)
    err_guided = np.abs(guided - depth)[:, near].mean()
    err_linear = np.abs(linear - depth)[:, near].mean()
    assert err_guided < 0.3 * err_linear
    assert np.abs(guided - depth)[:, :edge - 8].max() < 1e-3  # flat regions stay flat
    assert np.abs(guided - depth)[:, edge + 8:].max() < 1e-3
    # colour noise over a smooth ramp: no depth beyond what the small pixels around hold (never negative)
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 1, (h, w)).astype(np.float32)
    ramp = np.linspace(0.1, 0.2, w // 4, dtype=np.float32)[None].repeat(h // 4, 0)
    out = guided_upsample(ramp, cv2.resize(noise, (w // 4, h // 4), interpolation=cv2.INTER_AREA), noise)
    assert out.min() >= 0.1 - 1e-6 and out.max() <= 0.2 + 1e-6


@pytest.mark.parametrize("size", [(640, 360), (640, 480), (848, 480)])
def test_one_frame_from_two_input_sizes_agrees(student, real_frame, size):
    """The same view at 1280x720 and at 640x360, 640x480 (squashed) or 848x480: completed depth agrees within 1 cm
    (median over glass)."""
    d_big = student.complete(resize_frame(real_frame, 1280, 720)).depth
    small = resize_frame(real_frame, *size)
    d_small = student.complete(small).depth
    d_big_at_small = cv2.resize(d_big, size, interpolation=cv2.INTER_NEAREST)
    valid = small.mask & (d_small > 0) & (d_big_at_small > 0)
    assert valid.sum() > 100
    assert np.median(np.abs(d_big_at_small[valid] - d_small[valid])) < 0.01


def test_valid_raw_depth_outside_glass_survives_untouched(student, real_frame):
    completed = student.complete(real_frame)
    raw = real_frame.depth
    assert completed.depth.shape == raw.shape
    kept = (raw > 0) & ~real_frame.mask & (completed.depth == raw)
    moved = (raw > 0) & ~real_frame.mask & (np.abs(completed.depth - raw) > KEEP_RAW_M)
    assert kept.sum() > 0.5 * ((raw > 0) & ~real_frame.mask).sum()  # most of it returned exactly
    assert (completed.depth[real_frame.depth == 0] > 0).mean() > 0.99  # the holes are filled
    assert moved.sum() < kept.sum()


def test_far_codes_nan_and_zeros_are_no_readings(student):
    K = CameraIntrinsics(320, 240, 307.5, 307.5, 159.5, 119.5)
    depth = np.full((240, 320), 0.8, np.float32)
    depth[:5, :5] = 65.535  # a D415's far code
    depth[10:12, 10:12] = np.nan
    depth[50:60, 50:60] = 0.0
    depth[20, 20] = np.inf
    frame = RGBDFrame(np.full((240, 320, 3), 100, np.uint8), depth, K, sensor="d435")
    assert frame.dropped == 25 + 4 + 1 and frame.depth.max() <= 0.8 + 1e-6
    completed = student.complete(frame)
    assert np.isfinite(completed.depth).all() and completed.depth.max() < 2.0
    from pipeline.errors import FrameError

    with pytest.raises(FrameError, match="millimetres"):  # the bulk in millimetres is still an error
        RGBDFrame(frame.rgb, np.full((240, 320), 800.0, np.float32), K)


def test_a_resampled_frame_must_match_its_new_size():
    K = CameraIntrinsics(64, 48, 60.0, 60.0, 31.5, 23.5)
    frame = RGBDFrame(np.zeros((48, 64, 3), np.uint8), np.ones((48, 64), np.float32), K, name="f", sensor="d435",
                      mask=np.zeros((48, 64), bool))
    small = frame.resampled(np.zeros((24, 32, 3), np.uint8), np.ones((24, 32), np.float32), K.scaled(32, 24))
    assert small.shape == (24, 32) and small.name == "f" and small.sensor == "d435" and small.mask is None
    with pytest.raises(FrameError, match="do not match 32x24"):
        frame.resampled(np.zeros((24, 32, 3), np.uint8), np.ones((48, 64), np.float32), K.scaled(32, 24))


def test_a_frame_with_new_depth_keeps_the_rest_and_checks_what_is_not_plain_metres():
    K = CameraIntrinsics(64, 48, 60.0, 60.0, 31.5, 23.5)
    mask = np.zeros((48, 64), bool)
    mask[10:20, 10:20] = True
    frame = RGBDFrame(np.full((48, 64, 3), 100, np.uint8), np.full((48, 64), 0.8, np.float32), K, mask=mask,
                      name="f", sensor="d435")
    plain = frame.with_depth(np.full((48, 64), 0.7, np.float32))
    assert plain.depth.max() == np.float32(0.7) and plain.mask is frame.mask and plain.name == "f"
    assert frame.depth.max() == np.float32(0.8)  # the original is untouched
    far = np.full((48, 64), 0.7, np.float32)
    far[0, :3] = 65.535  # a far code: taken through every check of a new frame
    checked = frame.with_depth(far)
    assert checked.dropped == 3 and checked.depth.max() == np.float32(0.7)
    from pipeline.errors import FrameError

    with pytest.raises(FrameError, match="shape"):
        frame.with_depth(np.zeros((10, 10), np.float32))


@pytest.mark.parametrize("name", ["Intel RealSense D415", "Intel RealSense D435", "Intel RealSense D435I",
                                  "Intel RealSense D455", "Intel RealSense D405", "D435IF"])
def test_every_d400_model_is_in_the_stereo_family(name):
    assert sensor_family(name) == "d435"
    assert sensor_family("Intel RealSense L515") == "l515"
