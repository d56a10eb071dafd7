"""Readers on the real ClearGrasp and ClearPose frames, and clear errors for broken folders."""

import shutil

import cv2
import numpy as np
import pytest

from pipeline.data.io import read_exr_depth, write_exr_depth
from pipeline.data.readers import ClearGraspRealFolder, ClearGraspSyntheticFolder, ClearPoseFolder, discover
from pipeline.errors import DataFormatError, FrameError
from pipeline.types import CameraIntrinsics, RGBDFrame


def test_cleargrasp_real(shared_data):
    (folder,) = discover(shared_data / "cleargrasp" / "real-val")
    assert isinstance(folder, ClearGraspRealFolder) and len(folder) == 2
    f = folder.load(0)
    assert f.rgb.shape == (720, 1280, 3) and f.rgb.dtype == np.uint8
    assert f.intrinsics.fx == 921 and f.intrinsics.cx == 642
    assert f.sensor == "d435"  # camera_name 'D435' in camera_intrinsics.yaml
    for d in (f.depth, f.depth_gt):
        assert d.dtype == np.float32 and np.isfinite(d).all()
        valid = d[d > 0]
        assert 0.2 < np.median(valid) < 2.0  # metres
    assert 0.01 < f.mask.mean() < 0.5
    # the raw depth has holes on the glass; the ground truth mostly does not
    assert (f.depth[f.mask] == 0).mean() > (f.depth_gt[f.mask] == 0).mean()


def test_cleargrasp_synthetic(shared_data):
    (folder,) = discover(shared_data / "cleargrasp" / "synthetic-val")
    assert isinstance(folder, ClearGraspSyntheticFolder) and len(folder) == 3
    f = folder.load(1)
    assert f.rgb.shape == (1080, 1920, 3)
    assert f.sensor == ""  # rendered, no camera
    assert f.mask.any() and (f.depth[f.mask] == 0).all()  # raw depth = truth without the glass
    np.testing.assert_array_equal(f.depth[~f.mask], f.depth_gt[~f.mask])
    # 1.2113 rad horizontal field of view over 1920 px
    assert f.intrinsics.fx == pytest.approx(960 / np.tan(1.2112585306167603 / 2))


def test_clearpose(shared_data):
    (folder,) = discover(shared_data / "clearpose")
    assert isinstance(folder, ClearPoseFolder)
    f = folder.load(0)
    assert f.depth.shape == (480, 640) and f.intrinsics.fx == pytest.approx(601.33)
    assert f.sensor == "l515"
    assert 0.3 < np.median(f.depth_gt[f.depth_gt > 0]) < 2.0
    assert f.mask.mean() > 0.01


def test_discover_all_formats(shared_data):
    folders = discover(shared_data)
    assert {type(f) for f in folders} == {ClearGraspRealFolder, ClearGraspSyntheticFolder, ClearPoseFolder}
    assert {type(f) for f in discover(shared_data, "clearpose")} == {ClearPoseFolder}
    with pytest.raises(DataFormatError, match="unknown format"):
        discover(shared_data, "nyu")


@pytest.fixture
def real_copy(shared_data, tmp_path):
    dst = tmp_path / "d435"
    shutil.copytree(shared_data / "cleargrasp" / "real-val" / "d435", dst)
    return dst


def test_missing_file_is_named(real_copy):
    (real_copy / "000000123-transparent-depth-img.exr").unlink()
    folder = ClearGraspRealFolder(real_copy)
    with pytest.raises(DataFormatError, match="missing file: .*000000123-transparent-depth-img.exr"):
        folder.load(1)


def test_ground_truth_and_mask_are_optional(real_copy):
    """A folder of one's own captures has no ground truth: the frame comes without it."""
    (real_copy / "000000080-opaque-depth-img.exr").unlink()
    (real_copy / "000000080-mask.png").unlink()
    frame = ClearGraspRealFolder(real_copy).load(0)
    assert frame.depth_gt is None and frame.mask is None and (frame.depth > 0).any()


def test_truncated_file_is_named(real_copy):
    path = real_copy / "000000080-transparent-depth-img.exr"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataFormatError, match="000000080-transparent-depth-img.exr"):
        ClearGraspRealFolder(real_copy).load(0)
    img = real_copy / "000000123-mask.png"
    img.write_bytes(img.read_bytes()[:100])
    with pytest.raises(DataFormatError, match="000000123-mask.png"):
        ClearGraspRealFolder(real_copy).load(1)


def test_mis_sized_file_is_named(real_copy):
    mask = cv2.imread(str(real_copy / "000000080-mask.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(real_copy / "000000080-mask.png"), cv2.resize(mask, (640, 360)))
    with pytest.raises(DataFormatError, match=r"000000080-mask.png: size 640x360 differs"):
        ClearGraspRealFolder(real_copy).load(0)


def test_millimetre_exr_is_refused(real_copy):
    path = real_copy / "000000080-opaque-depth-img.exr"
    write_exr_depth(path, read_exr_depth(path) * 1000.0)
    with pytest.raises(DataFormatError, match="does not look like metres"):
        ClearGraspRealFolder(real_copy).load(0)


def test_exr_round_trip(tmp_path):
    d = np.random.default_rng(0).uniform(0.3, 1.2, (24, 32)).astype(np.float32)
    d[3, 4] = 0.0
    write_exr_depth(tmp_path / "d.exr", d)
    np.testing.assert_array_equal(read_exr_depth(tmp_path / "d.exr"), d)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(DataFormatError, match="no such folder"):
        discover(tmp_path / "nope")
    with pytest.raises(DataFormatError, match="no frames found"):
        discover(tmp_path)


def test_frame_validation():
    K = CameraIntrinsics(8, 6, 5.0, 5.0, 3.5, 2.5)
    rgb = np.zeros((6, 8, 3), np.uint8)
    RGBDFrame(rgb, np.ones((6, 8), np.float32), K)
    with pytest.raises(FrameError, match="rgb must be 6x8x3"):
        RGBDFrame(np.zeros((6, 8), np.uint8), np.ones((6, 8), np.float32), K)
    with pytest.raises(FrameError, match="expected shape"):
        RGBDFrame(rgb, np.ones((5, 8), np.float32), K)
    with pytest.raises(FrameError, match="millimetres"):
        RGBDFrame(rgb, np.full((6, 8), 700.0, np.float32), K)
    with pytest.raises(FrameError, match="dtype uint16"):
        RGBDFrame(rgb, np.full((6, 8), 700, np.uint16), K)
    f = RGBDFrame(rgb, np.full((6, 8), np.nan, np.float32), K)
    assert (f.depth == 0).all()  # NaN means no depth


def test_sensor_families():
    from pipeline.types import sensor_family

    assert [sensor_family(n) for n in ("Intel RealSense L515", "L515", "sim-l515", "D435", "Intel RealSense D435I",
                                       "D415", "sim-d435", "Kinect", "")] == \
        ["l515", "l515", "l515", "d435", "d435", "d435", "d435", "", ""]
    K = CameraIntrinsics(8, 6, 5.0, 5.0, 3.5, 2.5)
    assert RGBDFrame(np.zeros((6, 8, 3), np.uint8), np.ones((6, 8), np.float32), K, sensor="l515").sensor == "l515"
    with pytest.raises(FrameError, match="unknown sensor family 'L515'"):
        RGBDFrame(np.zeros((6, 8, 3), np.uint8), np.ones((6, 8), np.float32), K, sensor="L515")
