"""The path-traced renderer: geometry agrees with the fast renderer, determinism, stereo, LLVM fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.types import CameraIntrinsics
from sim.generate import GenerateConfig, generate, simulate_frame
from sim.photoreal import (NEAR_CLIP, PhotorealConfig, PhotorealRenderer, cast_depth, light_in_view, scene_parts,
                           split_normals, stereo_depth)

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(seed=31, sensor="d435", width=96, height=72)


@pytest.fixture(scope="module")
def fast_scene():
    """A settled scene with its fast-renderer camera (whose last render holds the fast ground truth)."""
    frame, camera = simulate_frame(GenerateConfig(**SMALL), 0)
    return frame, camera


def test_ray_cast_ground_truth_matches_fast_renderer(fast_scene):
    frame, camera = fast_scene
    fast = camera.last_render
    parts = scene_parts(camera.scene, np.random.default_rng(0))
    depth, instance = cast_depth(parts, camera.intrinsics, camera.T_base_cam)
    both = (depth > 0) & (fast.depth > 0)
    assert both.mean() > 0.95
    assert np.percentile(np.abs(depth - fast.depth)[both], 99) < 0.003  # metres
    mask = np.isin(instance, camera.scene.glass_ids)
    assert mask.sum() > 20
    assert (mask == fast.mask).mean() > 0.99
    bg, _ = cast_depth(parts, camera.intrinsics, camera.T_base_cam, skip=("liquid", "glass"))
    assert (bg[mask] > depth[mask] + 0.005).mean() > 0.9  # the table lies behind the glass


def test_wall_is_left_out_when_the_camera_stands_behind_it(fast_scene):
    _, camera = fast_scene
    scene = camera.scene
    far_edge = scene.workspace.table_center[0] + scene.workspace.table_half_size[0]
    kinds = lambda eye: [pt.kind for pt in scene_parts(scene, np.random.default_rng(0), wall_prob=1.0, eye=eye)]
    assert "wall" in kinds(None) and "wall" in kinds(np.array([0.75, 0.0, 1.0]))
    assert "wall" not in kinds(np.array([far_edge + 0.7, 0.0, 0.6]))  # beyond any wall: it would see its back


def test_lights_in_view_are_found(fast_scene):
    from sim.camera_model import look_at

    K = fast_scene[1].intrinsics
    T = look_at(np.array([0.75, 0.0, 1.0]), np.array([0.75, 0.0, 0.0]), up=(1.0, 0.0, 0.0))
    assert light_in_view([0.75, 0.0, 0.6], (0.1, 0.1), K, T)  # between the camera and the table
    assert light_in_view([0.9, 0.1, 0.3], (0.05, 0.05), K, T)  # small, off-centre, still in the picture
    assert not light_in_view([0.75, 0.0, 1.2], (0.5, 0.5), K, T)  # above the camera
    assert not light_in_view([2.5, 0.0, 0.6], (0.2, 0.2), K, T)  # outside the view


def test_mitsuba_camera_sees_the_ray_cast_geometry(fast_scene):
    """Mitsuba's own distance output, turned into z-depth, agrees with the ray-cast ground truth: the
    perspective camera reproduces the intrinsics and pose exactly."""
    _, camera = fast_scene
    K, T = camera.intrinsics, camera.T_base_cam
    renderer = PhotorealRenderer(PhotorealConfig(spp=1))
    parts = scene_parts(camera.scene, np.random.default_rng(1))
    truth, _ = cast_depth(parts, K, T, skip=())
    scene = renderer.build(parts, K, T, np.random.default_rng(1))
    mi = renderer.mi
    dist = np.asarray(mi.render(scene, integrator=mi.load_dict({"type": "aov", "aovs": "d:depth"}), spp=1))[..., 0]
    u, v = np.meshgrid(np.arange(K.width), np.arange(K.height))
    # distance along the ray from the near plane -> z-depth from the optical centre
    z = dist / np.sqrt(((u - K.cx) / K.fx) ** 2 + ((v - K.cy) / K.fy) ** 2 + 1) + NEAR_CLIP
    inner = np.zeros_like(truth, bool)
    inner[2:-2, 2:-2] = True  # a box filter pixel averages its footprint: skip the frame border
    sel = inner & (truth > 0) & (z > 0)
    assert np.median(np.abs(z - truth)[sel]) < 0.002


@pytest.mark.parametrize("style", ["tabletop", "lab"])
def test_photoreal_frame_and_determinism(tmp_path, style):
    cfg = GenerateConfig(**SMALL, renderer="mitsuba", spp=2, views=2, style=style)
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, 2, cfg, progress=False)
    generate(b, 2, cfg, progress=False)
    for f in sorted(a.glob("0*")):
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name
    manifest = json.loads((a / "generation.json").read_text())
    assert manifest["renderer"] == "mitsuba" and manifest["views"] == 2 and manifest["spp"] == 2
    assert manifest.get("style", "tabletop") == style
    frame, _ = simulate_frame(cfg, 0)
    fast, _ = simulate_frame(GenerateConfig(**SMALL, style=style), 0)
    # View 0 of scene 0 is the fast renderer's frame 0: the same geometry and glass.
    # (rasterised and ray-cast outlines of thin glass may differ by a pixel)
    assert frame.mask.sum() > 20 and (frame.mask != fast.mask).sum() <= 0.02 * frame.mask.sum()
    assert np.percentile(np.abs(frame.depth_gt - fast.depth_gt), 99) < 0.003
    assert frame.rgb.std() > 5  # an image, not a blank
    with pytest.raises(ValueError, match="refusing to mix"):
        generate(a, 3, GenerateConfig(**SMALL), progress=False)


def test_stereo_matching_recovers_a_plane():
    K = CameraIntrinsics(160, 120, 150.0, 150.0, 79.5, 59.5)
    rng = np.random.default_rng(0)
    left = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    disparity = 15  # a fronto-parallel plane at fx * b / d
    right = np.ascontiguousarray(np.pad(left, ((0, 0), (0, disparity), (0, 0)), mode="edge")[:, disparity:])
    depth = stereo_depth(left, right, K, baseline_m=0.05)
    valid = depth[:, 40:] > 0
    assert valid.mean() > 0.8
    assert np.median(depth[:, 40:][valid]) == pytest.approx(150.0 * 0.05 / disparity, rel=0.02)


def test_split_normals_smooth_walls_sharp_rims():
    from sim.glassware import revolve

    verts, faces = revolve(np.array([[0, 0], [0.03, 0], [0.03, 0.1], [0, 0.1]], float), 24)
    v, f, n = split_normals(verts, faces)
    side = (np.abs(v[:, 2] - 0.05) < 0.049) | ((np.abs(v[:, 2]) < 1e-9) & (np.abs(n[:, 2]) < 0.5))
    cap = np.abs(n[:, 2]) > 0.5
    # cap corners point straight up or down, wall corners radially out (smooth across segments)
    assert np.allclose(np.abs(n[cap, 2]), 1.0, atol=1e-6)
    wall = ~cap
    radial = v[wall, :2] / np.linalg.norm(v[wall, :2], axis=1, keepdims=True)
    assert side.any() and np.allclose((n[wall, :2] * radial).sum(1), 1.0, atol=1e-3)


def test_missing_llvm_falls_back_to_scalar_with_a_warning():
    code = "from sim.photoreal import mitsuba; print('VARIANT', mitsuba().variant())"
    env = {**os.environ, "DRJIT_LIBLLVM_PATH": "/nonexistent/libLLVM.so", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "VARIANT scalar_rgb" in res.stdout
    assert "falling back to 'scalar_rgb'" in res.stderr and "libllvm19" in res.stderr


def test_the_grasping_cell_photographed_by_the_path_tracer():
    """``WorldConfig.with_renderer("mitsuba")``: the same world, the same geometry and glass as the fast camera,
    a path-traced picture, and the lidar's raw depth from the same sensor model."""
    from sim.world import SimWorld, WorldConfig

    small = replace(WorldConfig().camera, width=96, height=72)
    fast_cfg = replace(WorldConfig(), camera=small).with_sensor("l515")
    with SimWorld(3, fast_cfg) as world:
        fast = world.capture()
    with SimWorld(3, fast_cfg.with_renderer("mitsuba")) as world:
        assert world.camera.config.renderer == "mitsuba" and world.camera.config.room
        traced = world.capture()
    assert traced.sensor == "l515" and traced.rgb.shape == fast.rgb.shape
    assert fast.mask.sum() > 10 and (traced.mask != fast.mask).sum() <= 0.05 * fast.mask.sum()
    assert np.percentile(np.abs(traced.depth_gt - fast.depth_gt), 99) < 0.003
    assert np.abs(traced.rgb.astype(int) - fast.rgb).mean() > 10  # another picture of the same scene
    # the lidar reads the table behind the glass on either renderer
    on_glass = traced.mask & (traced.depth > 0)
    assert (traced.depth[on_glass] > traced.depth_gt[on_glass] + 0.005).mean() > 0.5


def test_bad_settings_are_refused():
    from sim.camera import SimCameraConfig

    with pytest.raises(ValueError, match="renderer"):
        SimCameraConfig(renderer="blender")
    with pytest.raises(ValueError, match="mitsuba"):
        SimCameraConfig(room=True)
    with pytest.raises(ValueError, match="spp"):
        SimCameraConfig(renderer="mitsuba", spp=0)
    with pytest.raises(ValueError, match="stereo"):
        GenerateConfig(seed=0, stereo=True)
    with pytest.raises(ValueError, match="renderer"):
        GenerateConfig(seed=0, renderer="blender")
    with pytest.raises(ValueError, match="room"):
        GenerateConfig(seed=0, room=True)
    with pytest.raises(ValueError, match="spp"):
        PhotorealRenderer(PhotorealConfig(spp=0))
