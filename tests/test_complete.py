"""Completing your own captures: the TransCG layout, frames with and without ground truth, the command."""

import json

import cv2
import numpy as np
import pytest

from pipeline.complete import complete_folder, main
from pipeline.data.io import read_exr_depth, write_png
from pipeline.data.readers import discover
from pipeline.errors import DataFormatError


def _transcg(root, with_truth=True, h=72, w=128):
    """One TransCG view (``scene1/0``) with both cameras, intrinsics two levels up."""
    view = root / "scenes" / "scene1" / "0"
    view.mkdir(parents=True)
    (root / "scenes" / "camera_intrinsics").mkdir()
    rng = np.random.default_rng(0)
    for cam, fx in (("1", 92.1), ("2", 90.0)):
        np.save(root / "scenes" / "camera_intrinsics" / f"camera{cam}-intrinsics.npy",
                np.array([[fx, 0, w / 2], [0, fx, h / 2], [0, 0, 1]]))
        truth = np.full((h, w), 600, np.uint16)
        truth[20:50, 40:80] = 520  # a glass standing on the table
        raw = truth.copy()
        raw[20:50, 40:80] = 0  # the camera's hole on it
        write_png(view / f"rgb{cam}.png", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        write_png(view / f"depth{cam}.png", raw)
        if with_truth:
            write_png(view / f"depth{cam}-gt.png", truth)
            mask = np.zeros((h, w), np.uint8)
            mask[20:50, 40:80] = 255
            write_png(view / f"depth{cam}-gt-mask.png", mask)
    return root / "scenes"


def test_transcg_reader(tmp_path):
    (folder,) = discover(_transcg(tmp_path), "transcg")
    assert folder.names == ["1", "2"]
    d435, l515 = folder.load(0), folder.load(1)
    assert (d435.sensor, l515.sensor) == ("d435", "l515")
    assert d435.intrinsics.fx == pytest.approx(92.1) and d435.shape == (72, 128)
    assert d435.depth[30, 60] == 0 and d435.depth_gt[30, 60] == pytest.approx(0.52) and d435.mask[30, 60]
    (tmp_path / "scenes" / "camera_intrinsics" / "camera1-intrinsics.npy").unlink()
    with pytest.raises(DataFormatError, match="camera1-intrinsics.npy"):
        discover(tmp_path / "scenes", "transcg")[0].load(0)


@pytest.mark.parametrize("with_truth", [True, False])
def test_complete_writes_depth_and_pictures(tmp_path, with_truth):
    data = _transcg(tmp_path / "in", with_truth)
    out = tmp_path / "out"
    summary = complete_folder([str(data)], out, "student", progress=False)
    assert summary["frames"] == 2 and not summary["skipped"]
    for item in summary["written"]:
        stem = item["stem"]
        assert stem.startswith("scene1_0_camera")
        mm = cv2.imread(str(out / f"{stem}-depth.png"), cv2.IMREAD_UNCHANGED)
        metres = read_exr_depth(out / f"{stem}-depth.exr")
        assert mm.dtype == np.uint16 and mm.shape == (72, 128)
        assert np.abs(mm / 1000.0 - metres).max() <= 0.0006
        assert (metres > 0).all() and item["holes_before"] > 0 and item["holes_after"] == 0
        picture = cv2.imread(str(out / f"{stem}.png"))
        assert picture.shape[1] > (4 if with_truth else 3) * 128  # truth and error panels only with truth
    assert json.loads((out / "complete.json").read_text())["frames"] == 2


def test_complete_command_errors_are_one_line(tmp_path, capsys):
    data = _transcg(tmp_path / "in")
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(data), "--format", "kinect", "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2 and "invalid choice: 'kinect'" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: no such folder: {tmp_path / 'none'}"
    assert main(["--data", str(data), "--format", "clearpose", "--out", str(tmp_path / "o")]) == 2
    assert "no clearpose frames found" in capsys.readouterr().err


def test_complete_with_mirror_images_differs_and_says_so(tmp_path):
    data = _transcg(tmp_path / "in", True)
    plain = complete_folder([str(data)], tmp_path / "plain", "student", progress=False, limit=1)
    flipped = complete_folder([str(data)], tmp_path / "flip", "student", progress=False, limit=1, flip=True)
    assert flipped["flip"] and not plain["flip"]
    stem = plain["written"][0]["stem"]
    a = read_exr_depth(tmp_path / "plain" / f"{stem}-depth.exr")
    b = read_exr_depth(tmp_path / "flip" / f"{stem}-depth.exr")
    assert not np.array_equal(a, b) and np.abs(a - b).max() < 0.1  # the same network, both ways round
