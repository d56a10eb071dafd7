"""Networks: shapes, determinism, residual design, training lowers the loss, metrics, weights and export."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.losses import distillation_loss, silog_loss, supervised_loss
from pipeline.metrics import depth_metrics
from pipeline.models.common import push_pull_fill
from pipeline.models.student import Student
from pipeline.models.teacher import Teacher
from pipeline.weights import WeightsError, load, save

TINY_TEACHER = {"widths": [8, 16, 16, 32], "heads": [1, 2, 2, 4], "window": 4, "blocks": 1}
TINY_STUDENT = {"widths": [8, 8, 16, 16], "depth_widths": [4, 4, 8, 8]}


def _inputs(b=2, h=60, w=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(b, 3, h, w, generator=g)
    depth = 0.5 + torch.rand(b, 1, h, w, generator=g) * 0.3
    depth[..., 10:30, 20:50] = 0
    return rgb, depth


@pytest.mark.parametrize("cls,cfg", [(Teacher, TINY_TEACHER), (Student, TINY_STUDENT), (Teacher, None),
                                     (Student, None)])
def test_shapes_and_determinism(cls, cfg):
    torch.manual_seed(0)
    model = cls(**(cfg or {})).eval()
    for h, w in ((60, 80), (240, 320)):
        rgb, depth = _inputs(1, h, w)
        with torch.inference_mode():
            a, b = model(rgb, depth), model(rgb, depth)
        assert a.shape == (1, 1, h, w) and torch.equal(a, b)
        assert torch.isfinite(a).all() and (a > 0).all()


def test_default_sizes():
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 5e6 <= n(Teacher()) <= 15e6
    assert 0.4e6 <= n(Student()) <= 1.5e6


def test_untrained_network_returns_filled_raw_depth():
    """The output is init + residual with a zero-initialised last layer: valid raw depth survives exactly."""
    rgb, depth = _inputs()
    for model in (Teacher(**TINY_TEACHER).eval(), Student(**TINY_STUDENT).eval()):
        with torch.inference_mode():
            out = model(rgb, depth)
        valid = depth > 0
        torch.testing.assert_close(out[valid], depth[valid])
        torch.testing.assert_close(out, push_pull_fill(depth))


def test_push_pull_fill_interpolates_holes():
    depth = torch.full((1, 1, 32, 32), 1.0)
    depth[..., :, 16:] = 2.0
    depth[..., 8:24, 12:20] = 0
    out = push_pull_fill(depth)
    assert (out > 0).all() and out.min() >= 1.0 and out.max() <= 2.0
    assert out[0, 0, 16, 12] < out[0, 0, 16, 19]  # closer to the side it is nearer to


def test_short_training_lowers_the_loss():
    torch.manual_seed(0)
    model = Student(**TINY_STUDENT)
    rgb, depth = _inputs(4, 48, 64, seed=1)
    gt = depth.clone()
    gt[depth == 0] = 0.6  # glass surface the raw depth missed
    mask = (depth == 0).float()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(40):
        loss = supervised_loss(model(rgb, depth), gt, mask)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_metrics_match_hand_computed_values():
    gt = np.array([[1.0, 2.0], [0.0, 4.0]], np.float32)
    pred = np.array([[1.1, 1.8], [5.0, 4.0]], np.float32)
    m = depth_metrics(pred, gt)
    # valid pixels: errors 0.1, -0.2, 0.0 over g = 1, 2, 4
    assert m["rmse"] == pytest.approx(np.sqrt((0.01 + 0.04 + 0) / 3), rel=1e-5)
    assert m["mae"] == pytest.approx(0.1, rel=1e-5)
    assert m["rel"] == pytest.approx((0.1 + 0.1 + 0) / 3, rel=1e-5)
    # ratios 1.1, 1.111, 1.0
    assert m["d105"] == pytest.approx(1 / 3) and m["d110"] == pytest.approx(1 / 3) and m["d125"] == 1.0
    assert depth_metrics(pred, gt, np.zeros_like(gt, bool)) is None
    with pytest.raises(ValueError, match="differ in shape"):
        depth_metrics(pred[:1], gt)


def test_losses_behave():
    t = torch.full((1, 1, 8, 8), 0.7)
    assert float(silog_loss(t * 1.3, t, torch.ones_like(t), lam=1.0)) < 1e-3  # invariant to scale
    mask = torch.zeros_like(t)
    total, parts = distillation_loss(t.clone(), t, t, mask)
    assert float(total) < 1e-3 and set(parts) == {"silog", "ssim", "edge", "supervised"}
    total2, _ = distillation_loss(t + 0.1 * torch.rand_like(t), t, t, mask)
    assert float(total2) > float(total)

    # the teacher terms weigh glass more: the same error costs more on glass than on the table
    from pipeline.losses import DistillWeights

    glass = torch.zeros_like(t)
    glass[..., :4, :] = 1
    student = t.clone()
    student[..., :4, :] += 0.05 * torch.rand(1, 1, 4, 8)
    only_teacher = dict(supervised=0.0)
    on_glass, _ = distillation_loss(student, t, t, glass, DistillWeights(**only_teacher))
    on_table, _ = distillation_loss(student, t, t, 1 - glass, DistillWeights(**only_teacher))
    uniform, _ = distillation_loss(student, t, t, glass, DistillWeights(transparent=1.0, **only_teacher))
    assert float(on_glass) > float(uniform) > float(on_table)
    _, parts = distillation_loss(student, t, t, glass, DistillWeights(depth=1.0))
    assert parts["depth"] == pytest.approx(parts["supervised"])  # teacher == truth here


def test_edge_weight_targets_depth_discontinuities():
    from pipeline.losses import depth_edges

    gt = torch.full((1, 1, 24, 24), 0.8)
    gt[..., 8:16, 8:16] = 0.7  # a 10 cm step: an object's outline
    gt[..., 0, 0] = 0.0  # no ground truth: never an edge, however far from its neighbours
    edges = depth_edges(gt, jump=0.02, radius=1)
    assert edges[0, 0, 7, 12] == 1 and edges[0, 0, 8, 12] == 1 and edges[0, 0, 9, 12] == 1
    assert edges[0, 0, 12, 12] == 0 and edges[0, 0, 3, 20] == 0 and edges[0, 0, 0, 0] == 0
    assert edges[0, 0, 1, 1] == 0
    mask = torch.zeros_like(gt)
    at_edge, inside = gt.clone(), gt.clone()
    at_edge[..., 7, 8:16] += 0.05  # the same error on the outline ...
    inside[..., 20, 8:16] += 0.05  # ... and on flat table
    for pred in (at_edge, inside):
        assert float(supervised_loss(pred, gt, mask, grad_weight=0, edge_weight=1.0)) == pytest.approx(
            float(supervised_loss(inside, gt, mask, grad_weight=0)))
    heavier = float(supervised_loss(at_edge, gt, mask, grad_weight=0, edge_weight=4.0))
    assert heavier > float(supervised_loss(inside, gt, mask, grad_weight=0, edge_weight=4.0))


def test_weights_round_trip_and_errors(tmp_path):
    model = Student(**TINY_STUDENT).eval()
    path = save(model, tmp_path / "s.safetensors", {"recipe": "test"})
    loaded, card = load(path)
    assert card["arch"] == "student" and card["params"] == sum(p.numel() for p in model.parameters())
    rgb, depth = _inputs()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(rgb, depth), model(rgb, depth))
    with pytest.raises(WeightsError, match="weights file not found"):
        load(tmp_path / "missing.safetensors")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        load(path)
    card_path = path.with_suffix(".json")
    card_path.write_text("{not json")
    with pytest.raises(WeightsError, match="not a weights card"):
        load(path)


def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from pipeline.export import check_export, export_onnx

    torch.manual_seed(0)
    model = Student(**TINY_STUDENT).eval()
    for p in model.parameters():  # make the residual non-zero
        torch.nn.init.normal_(p, std=0.05) if p.dim() > 1 else None
    path = export_onnx(model, tmp_path / "s.onnx", (80, 64))
    assert check_export(model, path, (80, 64)) < 1e-4

    from pipeline.errors import DistillGraspError
    from pipeline.export import OnnxCompleter
    from pipeline.types import CameraIntrinsics, RGBDFrame

    rgb, depth = _inputs(1, 64, 80)
    frame = RGBDFrame((rgb[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), depth[0, 0].numpy(),
                      CameraIntrinsics(80, 64, 307.5, 307.5, 39.5, 31.5))
    completer = OnnxCompleter(path)
    out = completer.complete(frame).depth
    with torch.inference_mode():
        ref = model(torch.from_numpy(frame.rgb).permute(2, 0, 1)[None].float() / 255, depth)[0, 0].numpy()
    assert np.abs(out - ref).max() < 1e-4
    small = RGBDFrame(frame.rgb[:48], frame.depth[:48], CameraIntrinsics(80, 48, 307.5, 307.5, 39.5, 23.5))
    with pytest.raises(DistillGraspError, match="exported for 80x64"):
        completer.complete(small)

    # the completer's onnx backend exports per frame size, in memory, and agrees with torch
    from pipeline.completion import NetworkCompleter

    fast = NetworkCompleter.from_model(model, {"arch": "student"}, backend="onnx")
    torch_out = NetworkCompleter.from_model(model, {"arch": "student"}).complete(small).depth
    assert np.abs(fast.complete(frame).depth - ref).max() < 1e-4
    assert np.abs(fast.complete(small).depth - torch_out).max() < 1e-4
    assert set(fast._sessions) == {(64, 80), (48, 80)}
    with pytest.raises(ValueError, match="unknown backend"):
        NetworkCompleter.from_model(model, {"arch": "student"}, backend="tpu")


def test_completers_reject_bad_frames():
    from pipeline.completion import make_completer
    from pipeline.errors import FrameError
    from pipeline.types import CameraIntrinsics, RGBDFrame

    K = CameraIntrinsics(8, 6, 5.0, 5.0, 3.5, 2.5)
    rgb = np.zeros((6, 8, 3), np.uint8)
    empty = RGBDFrame(rgb, np.zeros((6, 8), np.float32), K)
    with pytest.raises(FrameError, match="no valid depth"):
        make_completer("fill").complete(empty)
    with pytest.raises(FrameError, match="ground-truth"):
        make_completer("gt").complete(RGBDFrame(rgb, np.ones((6, 8), np.float32), K))
    with pytest.raises(FrameError, match="millimetres"):
        RGBDFrame(rgb, np.full((6, 8), 650.0, np.float32), K)
    with pytest.raises(FrameError, match="rgb must be"):
        RGBDFrame(np.zeros((5, 8, 3), np.uint8), np.ones((6, 8), np.float32), K)
    nan = RGBDFrame(rgb, np.full((6, 8), np.nan, np.float32), K)
    with pytest.raises(FrameError, match="no valid depth"):
        make_completer("raw").complete(nan)
    with pytest.raises(ValueError, match="unknown depth completer"):
        make_completer("magic")


def test_exportable_adaptive_pool_equals_torchs():
    from pipeline.models.teacher import adaptive_avg_pool

    x = torch.randn(2, 3, 7, 11)
    for bins in (1, 2, 3, 6):
        assert torch.allclose(adaptive_avg_pool(x, bins), F.adaptive_avg_pool2d(x, bins), atol=1e-6)


def test_split_conv_equals_the_convolution_of_the_concatenation():
    from pipeline.models.student import split_conv

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(7, 4, 3, padding=1)
    a, b = torch.randn(2, 5, 9, 11), torch.randn(2, 2, 9, 11)
    assert torch.allclose(split_conv(conv, [a, b]), conv(torch.cat([a, b], 1)), atol=1e-5)
    with pytest.raises(ValueError, match="6 channels"):
        split_conv(conv, [a, b[:, :1]])


def _grown(**extra):
    """A tiny student with random weights, and the same student grown by the modules ``extra`` switches on
    (loaded from the first; returns both and the keys the first did not have)."""
    torch.manual_seed(0)
    plain = Student(**TINY_STUDENT)
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.05) if p.dim() > 1 else None
    grown = Student(**TINY_STUDENT, **extra)
    keys = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not keys.unexpected_keys
    return plain, grown, keys.missing_keys


def test_trust_gate_keeps_unflagged_readings_and_learns_from_the_truth():
    from pipeline.losses import gate_loss

    plain, gated, missing = _grown(gate=True)
    assert sorted(missing) == ["gate.bias", "gate.weight"]
    assert gated.config["gate"] is True and "gate" not in plain.config
    rgb, depth = _inputs()
    plain.eval(), gated.eval()
    with torch.inference_mode():
        before, opened = plain(rgb, depth), gated(rgb, depth)
        # it starts open: nearly the same answer as without it
        assert (opened - before).abs().max() < 0.05 * (before - depth).abs().max()
        torch.nn.init.constant_(gated.gate.bias, -30.0)  # closed: every valid reading is kept exactly
        closed = gated(rgb, depth)
    valid = depth > 0
    torch.testing.assert_close(closed[valid], depth[valid], atol=1e-6, rtol=0)
    assert torch.allclose(closed[~valid], before[~valid], atol=1e-6)  # holes are still repaired
    assert gated.last_gate_logits.shape == (2, 1, 64, 80)  # the input padded to a multiple of 16

    # the loss: readings more than 1 cm off are the positives, pixels without a reading do not count
    raw = torch.full((1, 1, 4, 4), 1.0)
    gt = raw.clone()
    gt[..., 0, :] = 1.05  # first row wrong
    raw[..., 3, :] = 0.0  # last row: no reading
    right = torch.full_like(raw, -8.0)
    right[..., 0, :] = 8.0
    assert gate_loss(right, raw, gt) < 0.01 < gate_loss(-right, raw, gt)
    flipped_holes = right.clone()
    flipped_holes[..., 3, :] = -right[..., 3, :] + 30
    assert gate_loss(flipped_holes, raw, gt) == pytest.approx(float(gate_loss(right, raw, gt)))


def test_weights_folder_routes_frames_by_sensor(tmp_path):
    """A folder with student.safetensors and student-l515.safetensors: lidar frames go to the second."""
    from pipeline.completion import SensorRoutedCompleter, make_completer
    from pipeline.types import CameraIntrinsics, RGBDFrame

    torch.manual_seed(0)
    save(Student(**TINY_STUDENT), tmp_path / "student.safetensors", {"recipe": "test"})
    lidar_net = Student(**TINY_STUDENT)
    with torch.no_grad():  # an untrained student returns its filled input: make this one differ
        for p in lidar_net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save(lidar_net, tmp_path / "student-l515.safetensors", {"recipe": "test", "sensor": "l515"})
    rgb, depth = _inputs(1, 48, 64)
    K = CameraIntrinsics(64, 48, 60.0, 60.0, 31.5, 23.5)
    frames = {s: RGBDFrame((rgb[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), depth[0, 0].numpy(), K,
                           sensor=s) for s in ("", "d435", "l515")}
    routed = make_completer("student", tmp_path)
    assert isinstance(routed, SensorRoutedCompleter) and set(routed.by_sensor) == {"l515"}
    default = make_completer("student", tmp_path / "student.safetensors")
    lidar = make_completer("student", tmp_path / "student-l515.safetensors")
    out = {s: routed.complete(f).depth for s, f in frames.items()}
    np.testing.assert_array_equal(out["l515"], lidar.complete(frames["l515"]).depth)
    for s in ("", "d435"):  # unknown and stereo cameras: the default weights
        np.testing.assert_array_equal(out[s], default.complete(frames[s]).depth)
    assert np.abs(out["l515"] - out["d435"]).max() > 1e-4  # the two networks differ

    # a variant whose card names another family is refused; a folder without the default weights too
    card = tmp_path / "student-l515.json"
    card.write_text(card.read_text().replace('"sensor": "l515"', '"sensor": "d435"'))
    with pytest.raises(WeightsError, match="made for sensor 'd435', not 'l515'"):
        make_completer("student", tmp_path)
    (tmp_path / "student.safetensors").unlink()
    with pytest.raises(WeightsError, match="weights file not found"):
        make_completer("student", tmp_path)


class _Ramp(torch.nn.Module):
    """Depth plus ``offset`` plus a left-to-right ramp: a network whose answer changes when the frame is
    mirrored."""

    def __init__(self, offset: float):
        super().__init__()
        self.offset = offset

    def forward(self, rgb, depth):
        w = depth.shape[-1]
        return depth + self.offset + 0.01 * torch.arange(w, dtype=depth.dtype) / w


def test_flip_and_ensemble_average_what_the_networks_say():
    from pipeline.completion import EnsembleCompleter, NetworkCompleter
    from pipeline.types import CameraIntrinsics, RGBDFrame

    h, w = 24, 32
    K = CameraIntrinsics(w, h, 307.5, 307.5, (w - 1) / 2, (h - 1) / 2)
    frame = RGBDFrame(np.zeros((h, w, 3), np.uint8), np.full((h, w), 0.8, np.float32), K)
    ramp = 0.01 * np.arange(w) / w
    plain = NetworkCompleter.from_model(_Ramp(0.05), {"arch": "teacher"})
    assert np.allclose(plain.complete(frame).depth, 0.85 + ramp[None, :], atol=1e-6)
    plain.flip = True  # the mean of the frame's ramp and the mirrored frame's: flat
    mirrored_mean = (ramp + ramp[::-1])[None, :] / 2
    assert np.allclose(plain.complete(frame).depth, 0.85 + mirrored_mean, atol=1e-6)
    assert np.ptp(plain.complete(frame).depth) < 1e-6
    other = NetworkCompleter.from_model(_Ramp(0.15), {"arch": "teacher"})
    other.flip = True
    both = EnsembleCompleter([plain, other]).complete(frame).depth
    assert np.allclose(both, 0.8 + 0.1 + mirrored_mean, atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        EnsembleCompleter([])
