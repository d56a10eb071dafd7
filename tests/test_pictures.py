"""Pictures of what perception saw and chose: panels with a colour bar, grasps drawn where they are, and the
3D view's geometry."""

import numpy as np
import pytest

from grasping.detect import Grasp
from grasping.pictures import draw_grasps, finger_points, perception_picture, project, scene_geometries, show_3d
from grasping.robot import top_down_pose
from pipeline.pictures import colour_bar, depth_panels, depth_range
from pipeline.types import CameraIntrinsics, RGBDFrame


def _frame():
    K = CameraIntrinsics(160, 120, 150.0, 150.0, 79.5, 59.5)
    T = top_down_pose(0.75, 0.0, 0.8, 0.0)  # the camera 80 cm above the table, looking down
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])
    depth = np.full((120, 160), 0.8, np.float32)
    return RGBDFrame(np.zeros((120, 160, 3), np.uint8), depth, K, T_base_cam=T)


def test_a_grasp_is_drawn_where_it_projects():
    frame = _frame()
    grasp = Grasp((0.75, 0.0, 0.05), 0.0, 0.06, 1.0, 0)
    uv = project(finger_points(grasp), frame)
    assert np.allclose(uv.mean(axis=0), (79.5, 59.5), atol=0.5)  # straight below the camera: the image centre
    img = draw_grasps(frame, [grasp], grasp)
    ys, xs = np.nonzero((img != 0).any(axis=2))
    assert abs(xs.mean() - 79.5) < 3 and abs(ys.mean() - 59.5) < 3
    assert (img[59, 60:100] == (40, 220, 60)).all(axis=1).any()  # the chosen grasp in green


def test_panels_hold_rgb_raw_repaired_and_a_bar():
    frame = _frame()
    repaired = frame.depth + 0.01
    pic = perception_picture(frame, RGBDFrame(frame.rgb, repaired, frame.intrinsics), [], None, "t")
    assert pic.shape[1] > 3 * 160 and pic.dtype == np.uint8
    with_truth = depth_panels(frame.rgb, frame.depth, repaired, frame.depth + 0.02)
    assert with_truth.shape[0] > 2 * 120  # the error panel below
    assert colour_bar(120, 0.5, 1.0).shape[0] == 120
    assert depth_range(np.zeros((4, 4))) == (0.0, 1.0)


def test_the_3d_view_geometry_and_its_refusal_without_a_display(monkeypatch):
    frame = _frame()
    grasps = [Grasp((0.75, 0.0, 0.05), 0.0, 0.06, 1.0, 0), Grasp((0.7, 0.05, 0.05), 1.0, 0.04, 0.5, 1)]
    geoms = scene_geometries(frame, grasps, grasps[0])
    assert len(geoms) == 2 + 2 * len(grasps)  # cloud, axes, two pads per grasp
    assert len(geoms[0].points) == 160 * 120
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    from pipeline.errors import DistillGraspError

    with pytest.raises(DistillGraspError, match="needs a display"):
        show_3d(frame, grasps, grasps[0])
