"""evaluate and bench commands on tiny inputs write the documented JSON."""

import json

import pytest

from pipeline import bench, evaluate
from pipeline.models.student import Student
from pipeline.weights import save


def test_evaluate_writes_schema(generated_d435, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate.main(["--data", str(generated_d435), "--models", "fill", "raw,gt", "--limit", "3",
                          "--size", "160x120", "--json", str(out), "--quiet",
                          "--save-images", str(tmp_path / "images")]) == 0
    result = json.loads(out.read_text())
    import cv2

    pictures = sorted((tmp_path / "images").glob("*.png"))
    assert len(pictures) == 9 and {p.stem.rsplit("-", 1)[1] for p in pictures} == {"fill", "raw", "gt"}
    picture = cv2.imread(str(pictures[0]))
    assert picture.shape[1] > 4 * 160 and picture.shape[0] > 2 * 120  # RGB, raw, prediction, truth; error below
    assert result["frames"] == 3
    for model in ("fill", "raw", "gt"):
        for region in ("transparent", "all"):
            assert set(result["results"][model][region]) == {"rmse", "rel", "mae", "d105", "d110", "d125"}
    assert result["results"]["gt"]["transparent"]["rmse"] == 0.0
    assert result["results"]["raw"]["moved_correct_raw"] == 0.0
    assert result["results"]["fill"]["transparent"]["rmse"] < result["results"]["raw"]["transparent"]["rmse"]
    assert "| fill | transparent |" in capsys.readouterr().out


def test_evaluate_scores_each_glass_piece():
    import numpy as np

    from pipeline.types import CameraIntrinsics, RGBDFrame

    gt = np.full((60, 80), 1.0, np.float32)
    mask = np.zeros((60, 80), bool)
    mask[10:20, 10:20] = True  # a piece 10 cm above the table, read at the table
    mask[30:50, 40:70] = True  # a second one, read right
    mask[55:57, 0:3] = True  # 6 pixels: too small to score
    gt[10:20, 10:20] = 0.9
    raw = np.where(mask, 1.0, gt).astype(np.float32)
    raw[30:50, 40:70] = gt[30:50, 40:70]
    K = CameraIntrinsics(80, 60, 70.0, 70.0, 40.0, 30.0)
    frame = RGBDFrame(rgb=np.zeros((60, 80, 3), np.uint8), depth=raw, intrinsics=K, depth_gt=gt, mask=mask, name="f")
    result = evaluate.evaluate_frames([frame], {"raw": evaluate.make_completer("raw")}, progress=False, pieces=True)
    first, second = result["pieces"]
    assert (first["pixels"], first["centre"], second["pixels"]) == (100, [14, 14], 600)
    assert first["truth_m"] == pytest.approx(0.9) and first["raw"]["median_error"] == pytest.approx(0.1)
    assert first["raw"]["rmse"] == pytest.approx(0.1) and second["raw"]["rmse"] == 0.0
    table = evaluate.pieces_table(result["pieces"], ["raw"])
    assert "| f | 14,14 | 100 | 0.900 | +0.100 / 0.100 |" in table
    assert "pieces" not in evaluate.evaluate_frames([frame], {"raw": evaluate.make_completer("raw")}, progress=False)


def test_evaluate_rejects_bad_input(tmp_path, capsys):
    assert evaluate.main(["--data", str(tmp_path), "--models", "raw"]) == 2
    assert "no frames found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        evaluate.main(["--data", str(tmp_path), "--models", "magic"])
    assert exit_.value.code == 2 and "--models: unknown magic" in capsys.readouterr().err


def test_bench_writes_schema(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(bench, "SIZES", ((64, 48),))
    save(Student(widths=(8, 8, 16, 16), depth_widths=(4, 4, 8, 8)), tmp_path / "student.safetensors", {})
    out = tmp_path / "bench.json"
    assert bench.main(["--models", "student", "--weights-dir", str(tmp_path), "--runs", "3", "--json", str(out),
                       "--inputs", "320x240,640x360"]) == 0
    result = json.loads(out.read_text())
    r = result["student"]
    assert r["params"] > 0 and r["64x48"]["torch_ms"] > 0 and r["64x48"]["onnx_ms"] > 0
    c = result["completer"]  # a camera frame end to end: brought to the working scale, completed, upsampled
    assert c["name"] == "student" and c["320x240"]["over_320x240"] == 1.0 and c["640x360"]["ms"] > 0
    assert c["640x360"]["working_size"] == "416x240"  # fx 460.5 at 640x360: 427x240 at 307.5, rounded down to 16s


def test_moved_share_counts_only_correct_raw_depth_outside_glass():
    import numpy as np

    from pipeline.types import CameraIntrinsics, RGBDFrame

    gt = np.full((4, 4), 1.0, np.float32)
    raw = gt.copy()
    raw[0, 0] = 0.0  # no reading: not counted
    raw[0, 1] = 1.05  # wrong reading: not counted
    mask = np.zeros((4, 4), bool)
    mask[3] = True  # glass row: not counted
    K = CameraIntrinsics(4, 4, 4, 4, 1.5, 1.5)
    frame = RGBDFrame(rgb=np.zeros((4, 4, 3), np.uint8), depth=raw, intrinsics=K, mask=mask, depth_gt=gt)
    pred = raw.copy()
    pred[1, :2] = 0.95  # two of the 10 correct readings moved by 5 cm
    pred[2, 0] = 1.005  # one moved by 5 mm: left alone
    pred[3] = 0.5  # glass changes do not count
    assert evaluate.moved_share(pred, frame) == pytest.approx(0.2)
    assert evaluate.moved_share(raw, frame) == 0.0


def test_evaluate_names_frames_completed_by_another_cameras_weights(tmp_path):
    """Lidar frames and a weights folder without lidar weights: the D435 student completes them, and the result
    says so (``other_family`` and a note under the table) instead of passing it off as the lidar student's."""
    import numpy as np

    from pipeline.types import CameraIntrinsics, RGBDFrame

    tiny = {"widths": (8, 8, 16, 16), "depth_widths": (4, 4, 8, 8)}
    save(Student(**tiny), tmp_path / "student.safetensors", {})
    K = CameraIntrinsics(64, 48, 60.0, 60.0, 31.5, 23.5)
    gt = np.full((48, 64), 0.8, np.float32)
    mask = np.zeros((48, 64), bool)
    mask[10:30, 20:40] = True
    frames = [RGBDFrame(rgb=np.zeros((48, 64, 3), np.uint8), depth=gt.copy(), intrinsics=K, depth_gt=gt, mask=mask,
                        sensor=s, name=s) for s in ("d435", "l515", "l515")]
    student = evaluate.make_completer("student", tmp_path)
    result = evaluate.evaluate_frames(frames, {"student": student}, progress=False)
    assert result["results"]["student"]["other_family"] == {"l515 frames, d435 weights": 2}
    assert "note: student completed 2 frame(s) with weights made for another camera" in evaluate.markdown_table(result)

    save(Student(**tiny), tmp_path / "student-l515.safetensors", {"sensor": "l515"})  # now the folder has them
    result = evaluate.evaluate_frames(frames, {"student": evaluate.make_completer("student", tmp_path)},
                                      progress=False)
    assert "other_family" not in result["results"]["student"]
    assert "note:" not in evaluate.markdown_table(result)
