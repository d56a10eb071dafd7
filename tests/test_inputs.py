"""Bad input gets one clear line: truncated images, damaged or mismatched weights, NaN in JSON, frames that
cannot be used (skipped and counted, not fatal)."""

import json
import shutil

import numpy as np
import pytest
import torch

from pipeline.data.io import read_rgb, write_jpg, write_png
from pipeline.errors import DataFormatError, FrameError
from pipeline.types import CameraIntrinsics, RGBDFrame
from pipeline.weights import WEIGHTS_DIR, WeightsError, load, save


def test_truncated_images_are_refused_with_the_file_named(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for name, write in (("a.jpg", write_jpg), ("a.png", write_png)):
        path = tmp_path / name
        write(path, rgb)
        assert read_rgb(path).shape == (48, 64, 3)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(DataFormatError, match=f"truncated .* {path}"):
            read_rgb(path)


def _weights_copy(tmp_path, name="student"):
    for suffix in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path / f"{name}.safetensors"


def test_damaged_weights_and_cards(tmp_path):
    path = _weights_copy(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**card, "config": {**card.get("config", {}), "wings": 2}}))
    with pytest.raises(WeightsError, match="no option.s. wings"):
        load(path)
    path.with_suffix(".json").write_text(json.dumps(card))
    model, _ = load(path)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(WeightsError, match="NaN or infinite"):
        save(model, tmp_path / "nan.safetensors", {})
    assert not (tmp_path / "nan.safetensors").exists()  # nothing half-written


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_output_of_a_network_is_an_error(bad):
    from pipeline.completion import DepthCompleter

    class Broken(DepthCompleter):
        name = "broken"

        def _complete(self, frame):
            out = np.ones(frame.depth.shape, np.float32)
            out[3, 5] = bad
            return out

    K = CameraIntrinsics(32, 24, 30.0, 30.0, 16.0, 12.0)
    frame = RGBDFrame(rgb=np.zeros((24, 32, 3), np.uint8), depth=np.ones((24, 32), np.float32), intrinsics=K)
    with pytest.raises(FrameError, match="NaN or infinite depth"):
        Broken().complete(frame)


def test_ship_and_export_check_the_architecture(tmp_path, capsys):
    from pipeline import export
    from pipeline.ship import ship

    run = tmp_path / "run"
    run.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"student{suffix}", run / f"best{suffix}")
    with pytest.raises(WeightsError, match="is a student network; shipping it as 'teacher'"):
        ship(run, "teacher", [], False, out_dir=tmp_path / "w")
    assert export.main(["--model", "teacher", "--weights", str(run / "best.safetensors"),
                        "--onnx", str(tmp_path / "t.onnx")]) == 2
    assert "not the --model teacher" in capsys.readouterr().err


def test_json_is_strict(tmp_path):
    from pipeline.cli import write_json

    write_json(tmp_path / "a.json", {"x": float("nan"), "y": [np.float32(np.inf), 1.5], "z": np.int64(3)})
    assert json.loads((tmp_path / "a.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == \
        {"x": None, "y": [None, 1.5], "z": 3}


def test_an_empty_frame_is_skipped_and_counted_not_fatal():
    from pipeline.evaluate import evaluate_frames
    from pipeline.completion import make_completer

    K = CameraIntrinsics(32, 24, 30.0, 30.0, 16.0, 12.0)
    gt = np.full((24, 32), 0.8, np.float32)
    good = RGBDFrame(rgb=np.zeros((24, 32, 3), np.uint8), depth=gt.copy(), intrinsics=K, depth_gt=gt, name="good")
    empty = RGBDFrame(rgb=np.zeros((24, 32, 3), np.uint8), depth=np.zeros((24, 32), np.float32), intrinsics=K,
                      depth_gt=gt, name="empty")
    result = evaluate_frames([good, empty], {"raw": make_completer("raw")}, progress=False)
    assert result["frames"] == 1 and [s["frame"] for s in result["skipped"]] == ["empty"]
    assert result["results"]["raw"]["all"]["rmse"] == 0.0


def test_a_variance_overflowed_in_float16_storage_loads_as_the_same_layer(tmp_path):
    """The shipped teacher is stored in float16, where one batch norm's running variance overflowed to +inf:
    that layer outputs its bias. It loads as the same layer with finite numbers, computing exactly the same."""
    from pipeline.weights import _settle_overflowed_variances

    bn = torch.nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, 3.0, 4.0]))
        bn.bias.copy_(torch.tensor([0.5, -1.0, 0.25]))
        bn.running_var.copy_(torch.tensor([float("inf"), 2.0, float("inf")]))
    x = torch.randn(2, 3, 4, 4)
    before = bn(x)
    settled = _settle_overflowed_variances(bn.state_dict(), tmp_path)
    fixed = torch.nn.BatchNorm2d(3).eval()
    fixed.load_state_dict(settled)
    assert all(torch.isfinite(v).all() for v in settled.values() if v.is_floating_point())
    assert torch.equal(fixed(x), before)
    nan = {**bn.state_dict(), "running_mean": torch.tensor([float("nan"), 0, 0])}
    assert not torch.isfinite(_settle_overflowed_variances(nan, tmp_path)["running_mean"]).all()  # still refused


def test_float16_storage_keeps_tensors_beyond_its_range_in_float32():
    """A batch norm whose running variance exceeds float16's range (1.8e7 in a trained teacher) would become
    +inf in float16, a different layer; ``as_float16`` keeps that tensor float32 and halves the rest."""
    from pipeline.ship import as_float16

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    with torch.no_grad():
        net[1].running_var.copy_(torch.tensor([1.8e7, 2.0, 3.0, 4.0]))
        net[1].running_mean.copy_(torch.tensor([100.0, 0.0, 0.0, 0.0]))
    half, kept = as_float16(net)
    assert kept == ["1.running_var"]
    state = half.state_dict()
    assert state["1.running_var"].dtype == torch.float32 and state["0.weight"].dtype == torch.float16
    x = torch.randn(1, 3, 8, 8)
    assert torch.allclose(half.float()(x), net(x), atol=1e-2)
    assert not torch.isfinite(net[1].running_var.half()).all()  # plain float16 would have made it infinite
