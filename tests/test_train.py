"""Training command: its options checked before anything loads, the shipped recipes, checkpoints, JSON log, resume,
distillation, augmentation, and DistributedDataParallel on CPU."""

import itertools
import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.train import ConfigError, TrainConfig, main, train

ROOT = Path(__file__).resolve().parents[1]
TINY = '{"widths": [8, 8, 16, 16], "depth_widths": [4, 4, 8, 8]}'
TINY_T = '{"widths": [8, 16, 16, 32], "heads": [1, 2, 2, 4], "window": 4, "blocks": 1}'
TEACHER = str(ROOT / "weights" / "teacher.safetensors")
STUDENT = str(ROOT / "weights" / "student.safetensors")


def _args(data, out, *extra):
    return ["--data", str(data), "--val", str(data), "--val-limit", "4", "--limit", "8", "--out", str(out),
            "--size", "160x120", "--crop", "64x64", "--batch", "2", "--threads", "1", "--quiet", *extra]


def _shipped_recipes() -> list[str]:
    """Every training command on record in the shipped cards: each card's recipe and those of its init chain."""
    recipes = []
    for card_path in sorted((ROOT / "weights").glob("*.json")):
        stage = json.loads(card_path.read_text())
        while stage:
            if stage.get("recipe") and stage["recipe"] not in recipes:
                recipes.append(stage["recipe"])
            stage = stage.get("init")
    return recipes


def _local(recipe: str, tmp_path: Path) -> list[str]:
    """The recipe's arguments with its folders replaced by empty ones under ``tmp_path``, its --init by the
    shipped weights of its architecture and its --out under ``tmp_path``."""
    words = shlex.split(recipe)
    assert words[:3] == ["python", "-m", "pipeline.train"]
    argv, flag = [], None
    for word in words[3:]:
        if word.startswith("--"):
            flag = word
        elif flag in ("--data", "--val"):
            word = str(tmp_path / "frames" / word)
            Path(word).mkdir(parents=True, exist_ok=True)
        elif flag == "--init":
            word = str(ROOT / "weights" / f"{argv[0]}.safetensors")
        elif flag == "--out":
            word = str(tmp_path / word)
        argv.append(word)
    return argv


def test_the_shipped_recipes_are_accepted(tmp_path):
    recipes = _shipped_recipes()
    outs = set()
    for recipe in recipes:
        config = TrainConfig.from_args(_local(recipe, tmp_path))
        config.validate()
        assert TrainConfig.from_args(config.to_args()) == config  # to_args gives the same run
        outs.add(Path(config.out).name)
    assert outs >= {"teacher", "teacher-ft", "student-nodistill", "student-prd", "student-edges4", "l515-n"}
    l515 = json.loads((ROOT / "weights" / "student-l515.json").read_text())["recipe"]
    config = TrainConfig.from_args(_local(l515, tmp_path))
    assert config.model_config == {"gate": True} and config.glint == 0.5 and config.w_edges == 4.0
    assert config.gate_weight == 0.05 and config.no_distill and not config.distils
    assert config.frame_size == (320, 240) and config.crop_size == (160, 128)


@pytest.mark.parametrize("argv, named", [
    (["student", "--no-distill", "--steps", "0"], "--steps must be a positive integer, got 0"),
    (["student", "--no-distill", "--batch", "-2"], "--batch"),
    (["student", "--no-distill", "--val-every", "0"], "--val-every"),
    (["student", "--no-distill", "--lr", "0"], "--lr must be a positive number, got 0.0"),
    (["student", "--no-distill", "--lr", "nan"], "--lr"),
    (["student", "--no-distill", "--warmup", "-1"], "--warmup"),
    (["student", "--no-distill", "--jpeg", "1.5"], "--jpeg is a share of the training frames, 0-1; got 1.5"),
    (["student", "--no-distill", "--blur", "-0.1"], "--blur"),
    (["student", "--no-distill", "--glint", "2"], "--glint"),
    (["student", "--no-distill", "--w-edges", "0.5"], "--w-edges must be at least 1"),
    (["student", "--no-distill", "--w-supervised", "-1"], "--w-supervised must not be negative, got -1.0"),
    (["student", "--no-distill", "--size", "320by240"], "--size: size must look like WIDTHxHEIGHT"),
    (["student", "--no-distill", "--crop", "400x300"], "--crop 400x300 is larger than --size 320x240"),
    (["student", "--no-distill", "--data", "{tmp}/nowhere"], "--data {tmp}/nowhere: no such folder"),
    (["student", "--no-distill", "--val", "{tmp}/nowhere"], "--val {tmp}/nowhere: no such folder"),
    (["student", "--no-distill", "--data", "{tmp}/file.txt"], "not a folder"),
    (["student"], "distilling the student needs --teacher"),
    (["student", "--no-distill", "--teacher", TEACHER], "--no-distill"),
    (["teacher", "--teacher", TEACHER], "--teacher"),
    (["student", "--teacher", "{tmp}/none.safetensors"], "--teacher {tmp}/none.safetensors: no such weights file"),
    (["student", "--no-distill", "--teacher-flip"], "--teacher-flip needs --teacher"),
    (["student", "--teacher", TEACHER, "--w-silog", "0", "--w-ssim", "0", "--w-edge", "0"], "teaches nothing"),
    (["student", "--no-distill", "--init", "{tmp}/none.safetensors"], "--init {tmp}/none.safetensors"),
    (["teacher", "--init", STUDENT], f"--init {STUDENT} holds a student, not a teacher"),
    (["student", "--no-distill", "--model-config", "{gate: true}"], "--model-config is not valid JSON"),
    (["student", "--no-distill", "--model-config", "[1, 2]"], "--model-config must be a JSON object"),
    (["student", "--no-distill", "--model-config", '{"context": true}'], "--model-config: the student has no option"),
    (["student", "--no-distill", "--model-config", '{"upsample": "convex"}'], "no option(s) upsample"),
    (["student", "--no-distill", "--w-gate", "0.1"], "--w-gate trains a student's trust gate"),
    (["student", "--no-distill", "--model-config", '{"gate": true}', "--w-gate", "-1"], "--w-gate must not be"),
    (["student", "--no-distill", "--out", "{tmp}/file.txt"], "is a file, not a run folder"),
])
def test_bad_options_are_named_before_anything_loads(argv, named, tmp_path, capsys):
    data = tmp_path / "frames"
    data.mkdir()
    (tmp_path / "file.txt").write_text("")
    run = tmp_path / "run"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in [*argv[:1], "--data", str(data), "--out", str(run), *argv[1:]]]
    named = named.replace("{tmp}", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_args(argv).validate()
    assert named in str(err.value) and "\n" not in str(err.value)
    assert main(argv) == 2
    assert capsys.readouterr().err == f"error: {err.value}\n"  # one line, no traceback
    assert not run.exists()  # stopped before it made the run folder or read a frame


@pytest.mark.parametrize("retired", [["--paste", "0.5"], ["--milky", "0.5"], ["--unlabeled", "."],
                                     ["--unlabeled-trust", "holes"], ["--teacher-fills-gaps"],
                                     ["--w-bounded", "1"], ["--w-feature", "0.01"]])
def test_retired_switches_are_refused(retired, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["student", "--no-distill", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *retired])
    assert exit_.value.code == 2 and f"unrecognized arguments: {retired[0]}" in capsys.readouterr().err


def test_train_teacher_then_distil_student_and_resume(generated_d435, tmp_path):
    t_out = tmp_path / "teacher"
    assert main(["teacher", *_args(generated_d435, t_out, "--steps", "4", "--val-every", "2",
                                   "--model-config", TINY_T)]) == 0
    log = [json.loads(line) for line in (t_out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and "rmse" in log[0]["val"]["transparent"]
    card = json.loads((t_out / "best.json").read_text())
    assert card["arch"] == "teacher" and "pipeline.train teacher" in card["recipe"]

    s_out = tmp_path / "student"
    args = _args(generated_d435, s_out, "--val-every", "2", "--model-config", TINY,
                 "--teacher", str(t_out / "best.safetensors"))
    assert main(["student", *args, "--steps", "2"]) == 0
    assert (s_out / "teacher-targets.pt").is_file()
    assert main(["student", *args, "--steps", "4"]) == 0  # resumes at step 2
    steps = [json.loads(line)["step"] for line in (s_out / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4]

    # shipped as the variant for one camera family: NAME-SENSOR.safetensors, the card says which
    from pipeline.ship import main as ship

    w = tmp_path / "w"
    assert ship(["--run", str(s_out), "--name", "student", "--test", str(generated_d435), "--out", str(w),
                 "--sensor", "l515"]) == 0
    card = json.loads((w / "student-l515.json").read_text())
    assert card["sensor"] == "l515" and card["test"]["frames"] == 16 and not (w / "student.safetensors").exists()

    # fine-tuning grows the student by a module (the trust gate); other changes are refused
    g_out = tmp_path / "grown"
    grow = ["--no-distill", "--init", str(s_out / "best.safetensors"), "--steps", "2", "--val-every", "2"]
    assert main(["student", *_args(generated_d435, g_out, *grow, "--model-config", '{"gate": true}')]) == 0
    card = json.loads((g_out / "best.json").read_text())
    assert card["config"]["gate"] is True and card["init"]["weights"].endswith("best.safetensors")
    wider = '{"widths": [8, 8, 16, 24]}'
    assert main(["student", *_args(generated_d435, tmp_path / "bad", *grow, "--model-config", wider)]) == 2


def test_train_from_a_config_records_its_command(generated_d435, tmp_path):
    config = TrainConfig(arch="student", data=(str(generated_d435),), out=str(tmp_path / "gated"), no_distill=True,
                         model_config={**json.loads(TINY), "gate": True}, steps=2, val_every=2, batch=2,
                         size="160x120", crop="64x64", limit=4, threads=1, quiet=True, glint=0.5)
    result = train(config)
    assert result["steps"] == 2 and result["params"] > 0
    card = json.loads((tmp_path / "gated" / "best.json").read_text())
    assert card["config"]["gate"] is True and card["data"] == {"train": [str(generated_d435)], "val": None}
    recipe = shlex.split(card["recipe"])
    assert recipe[:3] == ["python", "-m", "pipeline.train"] and TrainConfig.from_args(recipe[3:]) == config


def test_distributed_two_cpu_processes(generated_d435, tmp_path):
    out = tmp_path / "ddp"
    with socket.socket() as sock:  # a free port: a fixed one can be taken by another run on the machine
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           "-m", "pipeline.train", "student", "--no-distill",
           *_args(generated_d435, out, "--steps", "2", "--val-every", "2", "--model-config", TINY)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["step"] == 2  # only rank 0 writes


def _cache(n=4, h=40, w=50, teacher=True):
    from pipeline.train.data import FrameCache

    g = torch.Generator().manual_seed(0)
    depth = (0.5 + torch.rand(n, 1, h, w, generator=g)).half()
    mask = torch.zeros(n, 1, h, w, dtype=torch.bool)
    mask[..., 10:30, 15:35] = True
    rgb = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    return FrameCache(rgb, depth, depth.clone(), mask, ["synthetic"], teacher=depth.clone() if teacher else None)


def test_batches_are_named_and_every_map_is_cropped_and_mirrored_alike():
    from pipeline.train.augment import Augment
    from pipeline.train.batch import Batch

    cache = _cache()
    idx = torch.tensor([0, 2, 3])
    plain = cache.batch(idx)
    assert isinstance(plain, Batch) and len(plain) == 3
    assert torch.equal(plain.rgb, cache.rgb[idx].float() / 255) and torch.equal(plain.mask, cache.mask[idx].float())
    augment = Augment(blur=0.5, glint=0.5)
    batch = cache.batch(idx, torch.Generator().manual_seed(1), crop=(32, 24), augment=augment)
    assert batch.rgb.shape == (3, 3, 24, 32)
    for t in (batch.depth, batch.gt, batch.mask, batch.teacher):
        assert t.shape == (3, 1, 24, 32) and t.dtype == torch.float32
    assert torch.equal(batch.gt, batch.depth) and torch.equal(batch.teacher, batch.depth)  # the same geometry
    assert 0 <= batch.rgb.min() and batch.rgb.max() <= 1 and set(batch.mask.unique().tolist()) <= {0.0, 1.0}
    again = cache.batch(idx, torch.Generator().manual_seed(1), crop=(32, 24), augment=augment)
    assert all(torch.equal(a, b) for a, b in zip((batch.rgb, batch.teacher), (again.rgb, again.teacher)))
    assert _cache(teacher=False).batch(idx).teacher is None


def test_jpeg_and_blur_augmentation(generated_d435):
    import numpy as np

    from pipeline.train.augment import Augment
    from pipeline.train.data import FrameCache

    plain = FrameCache.load([str(generated_d435)], (160, 120), limit=6, progress=False)
    jpeg = FrameCache.load([str(generated_d435)], (160, 120), limit=6, progress=False, jpeg=1.0)
    again = FrameCache.load([str(generated_d435)], (160, 120), limit=6, progress=False, jpeg=1.0)
    assert torch.equal(jpeg.rgb, again.rgb)  # fixed per frame index
    diff = (jpeg.rgb.float() - plain.rgb.float()).abs().mean(dim=(1, 2, 3))
    assert (diff > 0.2).all() and (diff < 30).all()  # re-encoded, not replaced
    assert torch.equal(jpeg.depth, plain.depth)
    idx = torch.arange(6)
    sharp = plain.batch(idx, torch.Generator().manual_seed(0), augment=Augment()).rgb
    soft = plain.batch(idx, torch.Generator().manual_seed(0), augment=Augment(blur=1.0)).rgb
    grad = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean().item()
    assert grad(soft) < 0.9 * grad(sharp)
    assert np.isfinite(soft.numpy()).all()


def test_glint_lightens_the_glass_and_its_outline_only():
    from pipeline.train.augment import glint_glass

    rgb = torch.full((4, 3, 40, 50), 0.4)
    mask = torch.zeros(4, 1, 40, 50)
    mask[:, :, 10:30, 15:35] = 1.0
    out = glint_glass(rgb, mask, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(glint_glass(rgb, mask, 0.0, torch.Generator().manual_seed(0)), rgb)
    assert (out >= rgb).all() and (out <= 1).all()  # light is only added
    far = torch.ones(40, 50, dtype=torch.bool)
    far[6:34, 11:39] = False  # more than the smoothing's reach from the glass
    assert torch.equal(out[..., far], rgb[..., far])
    gain = (out - rgb)[:, 0]
    outline = gain[:, [10, 29], 15:35].amax((1, 2))  # the brightest point of the top and bottom rows
    centre = gain[:, 18:22, 23:27].mean((1, 2))
    assert (outline > centre + 0.05).all()  # a highlight on the outline, a veil at most inside
    assert len({round(float(g), 4) for g in gain[:, 20, 25]}) > 1  # each crop draws its own light


def test_the_schedule_warms_up_then_decays_to_zero():
    from pipeline.train.loop import learning_rate

    config = TrainConfig(arch="student", data=("d",), out="o", steps=100, warmup=10, lr=1e-3)
    lrs = [learning_rate(config, s) for s in range(101)]
    assert lrs[0] == pytest.approx(1e-4, rel=0.01) and max(lrs) == lrs[9] and lrs[100] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))


def test_init_chain_keeps_every_stage():
    from pipeline.train.loop import init_chain

    first = {"recipe": "python -m pipeline.train student --steps 10", "step": 10}
    second = {"recipe": "python -m pipeline.train student --init a.safetensors", "step": 5, "commit": "abc",
              "init": init_chain("a.safetensors", first)}
    chain = init_chain("b.safetensors", second)
    assert chain["weights"] == "b.safetensors" and chain["commit"] == "abc" and chain["step"] == 5
    assert chain["init"] == {"weights": "a.safetensors", "recipe": first["recipe"], "step": 10}
