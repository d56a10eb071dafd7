"""Generator: same bytes for the same seed (whichever worker), resume, and refusal to mix settings."""

import json

import numpy as np
import pytest

from pipeline.data.readers import discover
from sim.camera_model import sample_camera_pose
from sim.generate import GenerateConfig, frame_paths, generate, main
from sim.glassware import GLASS_KINDS, LAB_KINDS, make_glass, mesh_volume
from sim.photoreal import environment_map
from sim.render import room_texture
from sim.scene import SceneConfig

CFG = GenerateConfig(seed=3, sensor="d435", width=128, height=96)


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "generation.json"}


def test_same_seed_same_bytes_any_worker_count(tmp_path):
    generate(tmp_path / "a", 3, CFG, progress=False)
    generate(tmp_path / "b", 3, CFG, workers=2, progress=False)
    a, b = _bytes(tmp_path / "a"), _bytes(tmp_path / "b")
    assert len(a) == 3 * 4 + 1 and a == b
    generate(tmp_path / "c", 3, GenerateConfig(seed=4, sensor="d435", width=128, height=96), progress=False)
    c = _bytes(tmp_path / "c")
    assert c["000000000-transparent-rgb-img.png"] != a["000000000-transparent-rgb-img.png"]


def test_resume_skips_complete_frames(tmp_path):
    out = tmp_path / "r"
    generate(out, 2, CFG, progress=False)
    before = _bytes(out)
    victim = frame_paths(out, 1, "png")[2]
    victim.unlink()
    result = generate(out, 3, CFG, progress=False)
    assert result["frames_written"] == 2 and result["frames_skipped"] == 1
    after = _bytes(out)
    assert all(after[k] == v for k, v in before.items())  # the re-made frame is identical
    with pytest.raises(ValueError, match="refusing to mix"):
        generate(out, 3, GenerateConfig(seed=3, sensor="l515", width=128, height=96), progress=False)


def test_written_frames_read_back(tmp_path):
    generate(tmp_path, 2, CFG, progress=False)
    (folder,) = discover(tmp_path)
    f = folder.load(0)
    assert f.rgb.shape == (96, 128, 3) and f.intrinsics.width == 128
    assert f.mask.any(), "every scene holds at least one glass object in view"
    assert (f.depth_gt > 0).mean() > 0.99
    manifest = json.loads((tmp_path / "generation.json").read_text())
    assert manifest["seed"] == 3 and manifest["size"] == "128x96"


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--frames", "1", "--seed", "0", "--size", "big"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--frames", "0", "--seed", "0"]) == 2


def test_glassware_is_closed_and_mostly_graspable():
    rng = np.random.default_rng(0)
    widths = []
    for i in range(120):
        kind = GLASS_KINDS[i % len(GLASS_KINDS)]
        m = make_glass(kind, rng)
        assert mesh_volume(m.vertices, m.faces) > 0, kind
        assert 0.04 < m.height < 0.26 and m.mass > 0.02
        assert all(len(part) >= 4 for part in m.collision_parts)

        widths.append(2 * m.max_radius)
    assert np.mean(np.array(widths) <= 0.085) >= 0.75  # an 85 mm gripper spans most of them


def test_bottle_collision_follows_its_neck():
    """Fingers closing on a bottle's neck meet glass where the neck is, not the hull of the whole body."""
    m = make_glass("bottle", np.random.default_rng(3))
    top = np.concatenate([part for part in m.collision_parts if part[:, 2].min() > 0.9 * m.height])
    assert np.hypot(top[:, 0], top[:, 1]).max() < 0.6 * m.max_radius


def test_lab_glassware_shapes():
    rng = np.random.default_rng(1)
    for kind in LAB_KINDS:
        for _ in range(10):
            m = make_glass(kind, rng)
            assert mesh_volume(m.vertices, m.faces) > 0, kind
            assert (0.01 if kind == "dish" else 0.04) < m.height < 0.31 and m.mass >= 0.03, kind
            assert all(len(part) >= 4 for part in m.collision_parts), kind
    tube, flask = make_glass("tube", rng), make_glass("flask", rng)
    assert tube.height > 6 * tube.max_radius  # long and narrow
    r_top = np.hypot(*flask.vertices[flask.vertices[:, 2] > 0.95 * flask.height][:, :2].T).max()
    assert r_top < 0.45 * flask.max_radius  # a narrow neck on a wide base
    funnel = make_glass("funnel", rng)
    stem = funnel.vertices[(funnel.vertices[:, 2] > 0.01) & (funnel.vertices[:, 2] < 0.8 * funnel.profile.cavity_from)]
    assert np.hypot(*stem[:, :2].T).max() < 0.25 * funnel.max_radius  # a thin stem under a wide cone
    ball = make_glass("round_flask", rng)
    r = np.hypot(*ball.vertices[:, :2].T)
    z_widest = ball.vertices[np.argmax(r), 2]
    assert 0.85 * ball.max_radius < z_widest < ball.max_radius + 0.001  # a ball on a small flat base...
    assert r[ball.vertices[:, 2] > 0.95 * ball.height].max() < 0.45 * ball.max_radius  # ... with a neck
    grad = make_glass("graduated_cylinder", rng)
    r, z = np.hypot(*grad.vertices[:, :2].T), grad.vertices[:, 2]
    assert r[z < 0.005].max() > 1.5 * r[(z > 0.4 * grad.height) & (z < 0.6 * grad.height)].max()  # a wide foot
    assert grad.height > 5 * r[z > 0.5 * grad.height].max()  # under a tall narrow cylinder


def test_lab_style_scenes_and_cameras():
    cfg = GenerateConfig(seed=0, style="lab", max_tilt=60)
    assert cfg.manifest()["style"] == "lab" and "style" not in GenerateConfig(seed=0).manifest()
    assert set(cfg.scene().glass_kinds) >= set(LAB_KINDS) and cfg.scene().max_glass >= 8
    rng = np.random.default_rng(0)
    ws = cfg.workspace()
    eyes = [sample_camera_pose(rng, ws, cfg.camera_pose())[:3, 3] for _ in range(200)]
    dist = np.linalg.norm(np.array(eyes) - [*ws.object_center, ws.table_z], axis=1)
    jitter = np.sqrt(2) * cfg.camera_pose().target_jitter  # the camera aims near, not at, the centre
    assert dist.min() >= 0.6 - jitter and dist.max() <= 1.3 + jitter and dist.max() > 1.1
    with pytest.raises(ValueError, match="style"):
        GenerateConfig(seed=0, style="kitchen")
    with pytest.raises(ValueError, match="glass_kinds"):
        SceneConfig(glass_kinds=("teapot",))


def test_clutter_styles_make_the_clutter_trials_scenes(tmp_path, monkeypatch):
    """``--style pile|packed`` builds its scenes with the clutter trials' own layout, 3-7 objects each."""
    import sim.generate as gen
    from sim.scene import TabletopScene

    calls = []
    real = TabletopScene.populate_clutter

    def spy(self, rng, layout, n, *args, **kwargs):
        calls.append((layout, n))
        return real(self, rng, layout, n, *args, **kwargs)

    monkeypatch.setattr(TabletopScene, "populate_clutter", spy)
    for style in ("pile", "packed"):
        cfg = GenerateConfig(seed=5, sensor="d435", width=128, height=96, style=style)
        assert cfg.manifest()["style"] == style
        generate(tmp_path / style, 2, cfg, progress=False)
        (folder,) = discover(tmp_path / style)
        assert any(folder.load(i).mask.any() for i in range(2))
    assert [c[0] for c in calls] == ["pile", "pile", "packed", "packed"]
    assert all(gen.CLUTTER_OBJECTS[0] <= c[1] <= gen.CLUTTER_OBJECTS[1] for c in calls)
    assert _bytes(tmp_path / "pile") != _bytes(tmp_path / "packed")


def test_room_surfaces_look_like_rooms():
    rng = np.random.default_rng(0)
    woods = 0
    for _ in range(40):
        tex = room_texture(rng, "table", 64).reshape(-1, 3).mean(0)
        if tex[0] > tex[2] * 1.25:  # warm: wood
            woods += 1
            assert tex[0] > 1.1 * max(tex[1], tex[2])  # browns (some reddish), never green or blue
        else:  # laminate or stone: near grey
            assert tex.max() - tex.min() < 0.15 * tex.max() + 0.02
    assert 10 < woods < 35
    for part in ("floor", "wall"):
        tex = room_texture(rng, part, 64).reshape(-1, 3).mean(0)
        assert tex.max() - tex.min() < 0.15 * tex.max() + 0.02
    with pytest.raises(ValueError, match="part"):
        room_texture(rng, "ceiling")
    # a bright room: the lower half of the environment (floor, lower walls) is far lighter than the default
    room = np.mean([environment_map(np.random.default_rng(s), room=True)[32:].mean() for s in range(10)])
    plain = np.mean([environment_map(np.random.default_rng(s))[32:].mean() for s in range(10)])
    assert room > 2 * plain


def test_workers_all_means_every_core():
    import argparse
    import os

    from sim.generate import _workers

    assert _workers("all") == (os.cpu_count() or 1) and _workers("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="'all'"):
        _workers("many")
