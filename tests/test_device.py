"""Training where a GPU is (and on the CPU where none is), and the shards that carry frames to it."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from pipeline.data.readers import discover
from pipeline.data.pack import pack
from pipeline.data.shards import Shard, ShardError, depth_unit, write_shard
from pipeline.device import DeviceError, resolve_device
from pipeline.train import TrainConfig, train
from pipeline.train.ablation import ROWS, student_runs
from pipeline.train.loop import batches
from pipeline.types import CameraIntrinsics, RGBDFrame

CUDA = torch.cuda.is_available()
TINY = json.dumps({"widths": [8, 16, 24, 32], "heads": [1, 1, 1, 1], "window": 4})


def _frame(i: int, h: int = 48, w: int = 64, far: float = 0.0) -> RGBDFrame:
    rng = np.random.default_rng(i)
    gt = rng.uniform(0.4, 1.2, (h, w)).astype(np.float32)
    raw = np.where(rng.random((h, w)) < 0.2, 0.0, gt + rng.normal(0, 0.003, (h, w))).astype(np.float32)
    raw[0, 0] = far or raw[0, 0]
    mask = np.zeros((h, w), bool)
    mask[10:30, 20:40] = True
    K = CameraIntrinsics(w, h, 60.0 + i, 61.0, (w - 1) / 2, (h - 1) / 2)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy + 40 * i) % 256], -1).astype(np.uint8)
    return RGBDFrame(rgb, raw, K, mask=mask, depth_gt=gt,
                     name=f"frame{i}", sensor="d435")


def test_device_switch():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    with pytest.raises(DeviceError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    if not CUDA:
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_shard_round_trip_keeps_depth_to_a_tenth_of_a_millimetre(tmp_path):
    frames = [_frame(i) for i in range(3)] + [_frame(3, far=9.0)]
    size = write_shard(tmp_path / "00000.dgshard", frames)
    assert size == (tmp_path / "00000.dgshard").stat().st_size
    shard = Shard(tmp_path / "00000.dgshard")
    assert len(shard) == 4 and shard.names == [f.name for f in frames]
    for i, frame in enumerate(frames):
        back = shard.load(i)
        unit = 1e-3 if i == 3 else 1e-4  # a reading past 6.5 m: millimetres
        assert np.abs(back.depth - frame.depth).max() <= unit / 2 + 1e-6
        assert np.abs(back.depth_gt - frame.depth_gt).max() <= unit / 2 + 1e-6
        assert (back.depth == 0).sum() == (frame.depth == 0).sum()  # holes stay holes
        assert (back.mask == frame.mask).all() and back.intrinsics == frame.intrinsics and back.sensor == "d435"
        assert np.abs(back.rgb.astype(int) - frame.rgb).mean() < 4  # JPEG colour
    png = write_shard(tmp_path / "png.dgshard", frames[:1], rgb_format="png")
    assert png > 0 and (Shard(tmp_path / "png.dgshard").load(0).rgb == frames[0].rgb).all()  # lossless colour


def test_millimetre_depth_comes_back_exactly(tmp_path):
    frame = _frame(0)
    mm = np.round(frame.depth * 1000) / 1000
    frame = RGBDFrame(frame.rgb, mm.astype(np.float32), frame.intrinsics, mask=frame.mask, name="mm")
    write_shard(tmp_path / "a.dgshard", [frame])
    back = Shard(tmp_path / "a.dgshard").load(0)
    assert np.array_equal(np.round(back.depth * 1000), np.round(mm * 1000)) and back.depth_gt is None


def test_depth_too_far_for_a_shard_is_refused():
    with pytest.raises(ShardError, match="70.0 m"):
        depth_unit(np.array([70.0]))


def test_truncated_or_damaged_shard_is_named(tmp_path):
    path = tmp_path / "00000.dgshard"
    write_shard(path, [_frame(0), _frame(1)])
    data = path.read_bytes()
    cut = tmp_path / "cut.dgshard"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match="cut.dgshard: truncated or damaged"):
        Shard(cut)
    with zipfile.ZipFile(path) as zf:  # flip bytes inside a member: its CRC no longer matches
        info = zf.getinfo("000001.depth.png")
    bad = bytearray(data)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 40
    bad[start : start + 8] = bytes(8)
    damaged = tmp_path / "damaged.dgshard"
    damaged.write_bytes(bytes(bad))
    shard = Shard(damaged)
    shard.load(0)
    with pytest.raises(ShardError, match="000001.depth.png"):
        shard.load(1)


def test_pack_reads_any_layout_resumes_and_trains(generated_d435, tmp_path):
    summary = pack([str(generated_d435)], tmp_path / "shards", per_shard=6, size=(160, 120), progress=False)
    assert summary["frames"] == 16 and summary["shards"] == 3 and summary["bytes_per_frame"] < 40_000
    assert summary["sources"][0]["generation"]["seed"] == 7
    first = (tmp_path / "shards" / "00000.dgshard").stat().st_mtime_ns
    pack([str(generated_d435)], tmp_path / "shards", per_shard=6, size=(160, 120), progress=False)
    assert (tmp_path / "shards" / "00000.dgshard").stat().st_mtime_ns == first  # complete shards are kept
    folders = discover(tmp_path / "shards")
    assert [f.layout for f in folders] == ["shards"] and len(folders[0]) == 16
    assert folders[0].load(15).shape == (120, 160)
    result = train(TrainConfig(arch="teacher", data=(str(tmp_path / "shards"),), out=str(tmp_path / "run"),
                               steps=2, batch=2, crop="64x48", size="160x120", val_every=2, device="cpu",
                               model_config=json.loads(TINY), quiet=True))
    assert result["steps"] == 2 and result["device"] == "cpu"


def _stream(frames, batch, rank, world, start, n):
    it = batches(frames, batch, rank, world, 0, start)
    return [int(i) for _ in range(n) for i in next(it)]


def test_batches_cover_every_frame_once_per_epoch_across_processes():
    ranks = [_stream(10, 1, rank, 2, 0, 5) for rank in range(2)]
    assert sorted(ranks[0] + ranks[1]) == list(range(10))  # one epoch: every frame once, split between ranks
    assert _stream(10, 1, 0, 2, 5, 5) != ranks[0]  # the next epoch is shuffled anew
    stream = _stream(10, 2, 0, 2, 0, 5)  # batches span epochs (5 frames a rank per epoch)
    assert stream[4:10] == _stream(10, 2, 0, 2, 4, 3)  # resuming at sample 4 continues the same stream
    assert sorted(_stream(10, 1, 0, 1, 0, 10)) == list(range(10))


def test_ablation_rows_differ_only_in_what_they_learn_from():
    runs = student_runs(["d"], ["v"], "cpu", "init.safetensors", ["teacher.safetensors"])
    assert [r.name for r in runs] == list(ROWS)
    assert "--no-distill" in runs[0].args and "--teacher" not in runs[0].args

    def common(args):
        drop = {"--no-distill", "--teacher", "teacher.safetensors", "--teacher-flip", "--w-silog", "--w-ssim",
                "--w-edge", "0.0", "1.0"}
        return [a for a in args if a not in drop]

    assert all(common(r.args) == common(runs[0].args) for r in runs)
    configs = [TrainConfig.from_args([*r.args[:1], "--out", "o", *r.args[1:]]) for r in runs[1:]]
    assert [(c.w_silog, c.w_ssim, c.w_edge) for c in configs] == [(1, 0, 0), (1, 1, 0), (1, 1, 1)]


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_one_training_step_on_the_gpu(tmp_path):
    (tmp_path / "shards").mkdir()
    write_shard(tmp_path / "shards" / "00000.dgshard", [_frame(i) for i in range(4)])
    result = train(TrainConfig(arch="teacher", data=(str(tmp_path / "shards"),), out=str(tmp_path / "run"),
                               steps=1, batch=2, crop="64x48", size="64x48", val_every=1, device="cuda",
                               model_config=json.loads(TINY), quiet=True))
    assert result["steps"] == 1 and result["device"].startswith("cuda")
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["step"] == 1
