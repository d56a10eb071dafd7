"""Training command: checkpoints, JSON log, resume, distillation, and DistributedDataParallel on CPU."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


from pipeline.train import main

ROOT = Path(__file__).resolve().parents[1]
TINY = '{"widths": [8, 8, 16, 16], "depth_widths": [4, 4, 8, 8]}'
TINY_T = '{"widths": [8, 16, 16, 32], "heads": [1, 2, 2, 4], "window": 4, "blocks": 1}'


def _args(data, out, *extra):
    return ["--data", str(data), "--val", str(data), "--val-limit", "4", "--limit", "8", "--out", str(out),
            "--size", "160x120", "--crop", "64x64", "--batch", "2", "--threads", "1", "--quiet", *extra]


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

    # fine-tuning grows the student by a module (convex upsampling); other changes are refused
    g_out = tmp_path / "grown"
    grow = ["--no-distill", "--init", str(s_out / "best.safetensors"), "--steps", "2", "--val-every", "2"]
    assert main(["student", *_args(generated_d435, g_out, *grow, "--model-config", '{"upsample": "convex"}')]) == 0
    card = json.loads((g_out / "best.json").read_text())
    assert card["config"]["upsample"] == "convex" and card["init"]["weights"].endswith("best.safetensors")
    wider = '{"widths": [8, 8, 16, 24]}'
    assert main(["student", *_args(generated_d435, tmp_path / "bad", *grow, "--model-config", wider)]) == 2


def test_student_distillation_needs_a_teacher(generated_d435, tmp_path, capsys):
    assert main(["student", *_args(generated_d435, tmp_path / "s", "--steps", "1")]) == 2
    assert "--teacher" in capsys.readouterr().err
    assert main(["student", "--no-distill", *_args(generated_d435, tmp_path / "e", "--steps", "1"),
                 "--w-edges", "0.5"]) == 2
    assert "--w-edges must be at least 1" in capsys.readouterr().err
    assert main(["student", "--no-distill", *_args(generated_d435, tmp_path / "g", "--steps", "1"),
                 "--w-gate", "0.1"]) == 2
    assert "trust gate" in capsys.readouterr().err
    assert main(["student", "--no-distill", *_args(generated_d435, tmp_path / "p", "--steps", "1"),
                 "--paste", "1.5"]) == 2
    assert "--paste is a share" in capsys.readouterr().err
    gated = tmp_path / "gated"
    assert main(["student", "--no-distill", *_args(generated_d435, gated, "--steps", "2", "--val-every", "2",
                                                    "--model-config", '{"gate": true}')]) == 0
    assert json.loads((gated / "best.json").read_text())["config"]["gate"] is True


def test_distributed_two_cpu_processes(generated_d435, tmp_path):
    out = tmp_path / "ddp"
    with socket.socket() as sock:  # a free port: a fixed one can be taken by another run on the machine
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           "-m", "pipeline.train", "student", "--no-distill",
           *_args(generated_d435, out, "--steps", "2", "--val-every", "2", "--model-config", TINY)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["step"] == 2  # only rank 0 writes


def test_jpeg_and_blur_augmentation(generated_d435):
    import numpy as np
    import torch

    from pipeline.train import FrameCache

    plain = FrameCache.load([str(generated_d435)], (160, 120), limit=6, progress=False)
    jpeg = FrameCache.load([str(generated_d435)], (160, 120), limit=6, progress=False, jpeg=1.0)
    again = FrameCache.load([str(generated_d435)], (160, 120), limit=6, progress=False, jpeg=1.0)
    assert torch.equal(jpeg.rgb, again.rgb)  # fixed per frame index
    diff = (jpeg.rgb.float() - plain.rgb.float()).abs().mean(dim=(1, 2, 3))
    assert (diff > 0.2).all() and (diff < 30).all()  # re-encoded, not replaced
    assert torch.equal(jpeg.depth, plain.depth)
    idx = torch.arange(6)
    sharp = plain.batch(idx, None, torch.Generator().manual_seed(0), augment=True)[0]
    soft = plain.batch(idx, None, torch.Generator().manual_seed(0), augment=True, blur=1.0)[0]
    grad = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean().item()  # noqa: E731
    assert grad(soft) < 0.9 * grad(sharp)
    assert np.isfinite(soft.numpy()).all()


def test_paste_augmentation_changes_colour_outside_glass_only():
    import torch

    from pipeline.train import _paste

    rgb = torch.stack([torch.full((3, 40, 50), v) for v in (0.1, 0.5, 0.9)])
    mask = torch.zeros(3, 1, 40, 50)
    mask[:, :, 10:20, 10:20] = 1.0  # glass in every crop
    out = _paste(rgb, mask, 1.0, torch.Generator().manual_seed(0))
    changed = (out != rgb).any(1, keepdim=True)
    assert changed.float().mean() > 0.02 and not changed[mask > 0].any()
    donor = rgb.roll(1, 0)
    assert torch.equal(out[changed.expand_as(out)], donor[changed.expand_as(out)])  # the next crop's pixels
    assert torch.equal(_paste(rgb, mask, 0.0, torch.Generator().manual_seed(0)), rgb)


def test_milky_augmentation_lightens_the_glass_only(generated_d435):
    import torch

    from pipeline.train import FrameCache

    from dataclasses import replace

    cache = FrameCache.load([str(generated_d435)], (160, 120), limit=4, progress=False)
    idx = torch.arange(4)
    # the same random draws with and without glass: only the glass differs
    plain = replace(cache, mask=torch.zeros_like(cache.mask)).batch(idx, None, torch.Generator().manual_seed(0),
                                                                     augment=True, milky=1.0)
    milky = cache.batch(idx, None, torch.Generator().manual_seed(0), augment=True, milky=1.0)
    glass = milky[3].expand_as(milky[0]) > 0.5
    assert glass.any()
    assert torch.equal(milky[0][~glass], plain[0][~glass])
    assert milky[0][glass].mean() > plain[0][glass].mean() + 0.02  # towards light grey


def test_glint_lightens_the_glass_and_its_outline_only():
    import torch

    from pipeline.train import glint_glass

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


def test_unlabeled_frames_teach_only_through_the_teacher(generated_d435, tmp_path, capsys):
    import torch

    from pipeline.losses import DistillWeights, distillation_loss
    from pipeline.train import FrameCache

    labelled = FrameCache.load([str(generated_d435)], (80, 60), limit=2, progress=False)
    bare = FrameCache.load([str(generated_d435)], (80, 60), limit=2, progress=False, labelled=False)
    assert not (bare.gt > 0).any() and not bare.mask.any() and torch.equal(bare.depth, labelled.depth)
    both = labelled + bare
    assert len(both) == 4
    both.teacher = torch.where(both.depth > 0, both.depth, torch.full_like(both.depth, 0.7))
    both.teacher[3, :, :5, :5] += 0.05  # the teacher moved a valid raw reading
    both.mask_repairs()
    assert torch.equal(both.mask[:2], labelled.mask)  # labelled frames keep their true mask
    assert torch.equal(both.mask[2], both.depth[2] <= 0)
    assert both.mask[3, 0, :5, :5].all()

    # trusting only the holes: a moved valid reading teaches nothing, a hole is glass
    holes = labelled + bare
    holes.teacher = both.teacher.clone()
    holes.mask_repairs(trust="holes")
    assert torch.equal(holes.mask[3], holes.depth[3] <= 0)
    moved = (holes.depth[3, 0, :5, :5] > 0)
    assert (holes.teacher[3, 0, :5, :5][moved] == 0).all() and moved.any()
    assert torch.equal(holes.teacher[:2], both.teacher[:2])

    # with --teacher-fills-gaps, the teacher cannot pull a labelled frame away from its truth
    gt = torch.full((1, 1, 8, 8), 1.0)
    w = DistillWeights(depth=1.0, gaps_only=True)
    right = distillation_loss(gt.clone(), gt * 1.2, gt, torch.zeros_like(gt), w)[0]
    assert float(right) < 1e-6
    gaps = torch.zeros_like(gt)
    assert float(distillation_loss(gt.clone(), gt * 1.2, gaps, torch.zeros_like(gt), w)[0]) > 0.1

    assert main(["student", *_args(generated_d435, tmp_path / "s", "--steps", "1", "--no-distill",
                                   "--unlabeled", str(generated_d435))]) == 2
    assert "--unlabeled" in capsys.readouterr().err


def test_feature_distillation_runs_online_and_resumes(generated_d435, tmp_path, capsys):
    t_out = tmp_path / "teacher"
    assert main(["teacher", *_args(generated_d435, t_out, "--steps", "1", "--val-every", "1",
                                   "--model-config", TINY_T)]) == 0
    out = tmp_path / "feat"
    args = _args(generated_d435, out, "--val-every", "1", "--model-config", TINY, "--teacher",
                 str(t_out / "best.safetensors"), "--w-silog", "0", "--w-ssim", "0", "--w-edge", "0",
                 "--w-feature", "0.01")
    assert main(["student", *args, "--steps", "1"]) == 0
    assert not (out / "teacher-targets.pt").exists()  # no output terms: no teacher maps cached
    import torch

    assert "features" in torch.load(out / "last.pt", weights_only=False)
    assert main(["student", *args, "--steps", "2"]) == 0  # resumes with the adapters
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    capsys.readouterr()
    assert main(["student", *_args(generated_d435, tmp_path / "x", "--no-distill", "--w-feature", "1",
                                   "--steps", "1")]) == 2
    assert "--w-feature" in capsys.readouterr().err


def test_init_chain_keeps_every_stage():
    from pipeline.train import init_chain

    first = {"recipe": "python -m pipeline.train student --steps 10", "step": 10}
    second = {"recipe": "python -m pipeline.train student --init a.safetensors", "step": 5, "commit": "abc",
              "init": init_chain("a.safetensors", first)}
    chain = init_chain("b.safetensors", second)
    assert chain["weights"] == "b.safetensors" and chain["commit"] == "abc" and chain["step"] == 5
    assert chain["init"] == {"weights": "a.safetensors", "recipe": first["recipe"], "step": 10}
