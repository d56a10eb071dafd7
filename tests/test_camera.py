"""Camera geometry: world -> pixel -> world round trips, and the renderer agreeing with the intrinsics."""

import numpy as np
import pybullet as p
import pytest

from pipeline.config import DEFAULT_WORKSPACE
from pipeline.errors import DeviceNotConnectedError
from pipeline.types import CameraIntrinsics
from sim.camera import SimCamera, SimCameraConfig
from sim.camera_model import CameraPoseConfig, look_at, render, sample_camera_pose, Light
from sim.scene import TabletopScene


@pytest.fixture
def client():
    c = p.connect(p.DIRECT)
    yield c
    p.disconnect(physicsClientId=c)


def test_intrinsics_round_trip():
    K = CameraIntrinsics(640, 480, 615.0, 612.0, 321.3, 238.7)
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-0.3, 0.3, 100), rng.uniform(-0.2, 0.2, 100), rng.uniform(0.3, 1.5, 100)])
    uv = K.project(pts)
    back = K.backproject(uv, pts[:, 2])
    np.testing.assert_allclose(back, pts, atol=1e-12)


def test_scaled_intrinsics_keep_rays():
    """A point's pixel scales with the image: u' + 0.5 = (u + 0.5) * s (pixel-centre convention)."""
    K = CameraIntrinsics(640, 480, 615.0, 615.0, 319.5, 239.5)
    S = K.scaled(320, 240)
    pt = np.array([[0.05, -0.03, 0.7]])
    np.testing.assert_allclose(S.project(pt) + 0.5, (K.project(pt) + 0.5) * 0.5, atol=1e-9)


def test_world_pixel_world_through_pose():
    rng = np.random.default_rng(1)
    K = CameraIntrinsics(320, 240, 307.5, 307.5, 159.5, 119.5)
    for _ in range(5):
        T = sample_camera_pose(rng, DEFAULT_WORKSPACE, CameraPoseConfig())
        world = np.column_stack([rng.uniform(0.6, 0.9, 20), rng.uniform(-0.15, 0.15, 20), rng.uniform(0, 0.2, 20)])
        cam = (np.linalg.inv(T) @ np.c_[world, np.ones(20)].T).T[:, :3]
        assert (cam[:, 2] > 0).all(), "sampled camera must look at the object region"
        back_cam = K.backproject(K.project(cam), cam[:, 2])
        back = (T @ np.c_[back_cam, np.ones(20)].T).T[:, :3]
        np.testing.assert_allclose(back, world, atol=1e-9)


def test_look_at_points_optical_axis_at_target():
    T = look_at([0.7, 0.3, 0.8], [0.75, 0.0, 0.0])
    z = T[:3, 2]
    to_target = np.array([0.05, -0.3, -0.8]) / np.linalg.norm([0.05, -0.3, -0.8])
    np.testing.assert_allclose(z, to_target, atol=1e-12)
    np.testing.assert_allclose(T[:3, :3].T @ T[:3, :3], np.eye(3), atol=1e-12)
    assert np.linalg.det(T[:3, :3]) == pytest.approx(1.0)


def test_rendered_sphere_lands_where_intrinsics_project_it(client):
    """A small sphere rendered by TinyRenderer appears at the pixel the intrinsics predict.

    Tolerance: a sphere of radius r at depth z projects to an ellipse whose centroid is offset from the
    projected centre by at most ~ (r/z)^2 * (distance from the principal point); for r = 1 cm, z ~ 0.7 m and
    160 px off-axis that is 0.03 px; pixel quantisation of the mask adds < 0.5 px, so 0.6 px is tight.
    """
    K = CameraIntrinsics(320, 240, 300.0, 300.0, 150.3, 125.8)
    T = look_at([0.75, 0.05, 0.7], [0.75, 0.0, 0.0], up=(1, 0, 0))
    r = 0.01
    vis = p.createVisualShape(p.GEOM_SPHERE, radius=r, physicsClientId=client)
    for centre in ([0.75, 0.0, 0.05], [0.85, 0.1, 0.02], [0.65, -0.12, 0.1]):
        body = p.createMultiBody(0, -1, vis, centre, physicsClientId=client)
        _, depth, ids = render(client, K, T, Light(shadow=False))
        v, u = np.nonzero(ids == body)
        cam = (np.linalg.inv(T) @ np.r_[centre, 1.0])[:3]
        expected = K.project(cam)[0]
        assert abs(u.mean() - expected[0]) < 0.6 and abs(v.mean() - expected[1]) < 0.6, (u.mean(), v.mean(), expected)
        # depth at the sphere's centre pixel is the front of the sphere: z_centre - r (within 1 mm)
        uc, vc = int(round(expected[0])), int(round(expected[1]))
        assert depth[vc, uc] == pytest.approx(cam[2] - r, abs=1e-3)
        p.removeBody(body, physicsClientId=client)


def test_sim_camera_reads_table_plane(client):
    """Ground-truth depth of an empty table back-projects onto z = table_z everywhere it is seen."""
    scene = TabletopScene(client)
    T = look_at([0.55, 0.1, 0.7], [0.75, 0.0, 0.0])
    cam = SimCamera(scene, T, SimCameraConfig(width=160, height=120))
    with pytest.raises(DeviceNotConnectedError):
        cam.read()
    with cam:
        frame = cam.read()
    table = cam.last_render.instance == scene.table_id
    assert table.mean() > 0.5
    pts = frame.intrinsics.depth_to_points(frame.depth_gt)[table]
    world = pts @ T[:3, :3].T + T[:3, 3]
    np.testing.assert_allclose(world[:, 2], DEFAULT_WORKSPACE.table_z, atol=1e-3)
    assert frame.rgb.shape == (120, 160, 3) and not frame.mask.any()
