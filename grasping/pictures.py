"""What perception saw and chose: grasps drawn on the camera image, depth panels, and a 3D view.

    save_attempt_picture(attempt, "out/images/0.png")       # RGB with grasps | raw | repaired depth | bar
    show_3d(perception, frame)                              # Open3D window: cloud, table, grasps
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from grasping.detect import Grasp
from pipeline.config import DEFAULT_GRIPPER
from pipeline.pictures import depth_panels, save_png
from pipeline.types import RGBDFrame

BEST = (40, 220, 60)  # the grasp that was tried
OTHER = (250, 200, 40)  # other candidates
SHOWN = 5  # candidates drawn besides the best


def finger_points(grasp: Grasp, gripper=DEFAULT_GRIPPER) -> np.ndarray:
    """The two finger pads' centres (2x3, base frame): the grasp centre +- half the opening along its closing
    direction."""
    c = np.asarray(grasp.center, dtype=np.float64)
    d = np.array([np.cos(grasp.yaw), np.sin(grasp.yaw), 0.0])
    half = grasp.width / 2 + gripper.finger_thickness / 2
    return np.stack([c - half * d, c + half * d])


def project(points: np.ndarray, frame: RGBDFrame) -> np.ndarray:
    """Nx3 base-frame points to Nx2 pixel coordinates of ``frame`` (NaN behind the camera)."""
    T_cam_base = np.linalg.inv(frame.T_base_cam)
    p = points @ T_cam_base[:3, :3].T + T_cam_base[:3, 3]
    K = frame.intrinsics
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([K.fx * p[:, 0] / p[:, 2] + K.cx, K.fy * p[:, 1] / p[:, 2] + K.cy], axis=1)
    uv[p[:, 2] <= 0] = np.nan
    return uv


def draw_grasps(frame: RGBDFrame, grasps: list[Grasp], best: Grasp | None) -> np.ndarray:
    """The frame's RGB with up to ``SHOWN`` candidate grasps (thin, yellow) and the chosen one (thick, green):
    a line between the two finger pads and a dot on each."""
    img = frame.rgb.copy()
    if frame.T_base_cam is None:
        return img
    scale = max(1, round(img.shape[1] / 320))
    drawn = [g for g in grasps if g != best][:SHOWN] + ([best] if best is not None else [])
    for g in drawn:
        colour, thick = (BEST, 2 * scale) if g == best else (OTHER, scale)
        uv = project(finger_points(g), frame)
        if not np.isfinite(uv).all():
            continue
        a, b = (tuple(int(round(v)) for v in p) for p in uv)
        cv2.line(img, a, b, colour, thick, cv2.LINE_AA)
        for p in (a, b):
            cv2.circle(img, p, 2 * thick, colour, -1, cv2.LINE_AA)
    return img


def perception_picture(frame: RGBDFrame, completed: RGBDFrame | None, grasps: list[Grasp], best: Grasp | None,
                       title: str = "") -> np.ndarray:
    """RGB with the grasps drawn, raw depth and repaired depth on one colour scale with its bar."""
    repaired = completed.depth if completed is not None else np.zeros_like(frame.depth)
    return depth_panels(draw_grasps(frame, grasps, best), frame.depth, repaired, title=title or None)


def attempt_picture(attempt, title: str = "") -> np.ndarray:
    """The picture of a ``grasping.trials.Attempt``, its outcome in the title."""
    verdict = "picked" if attempt.success else f"failed: {attempt.reason}"
    title = f"{title}: {verdict}" if title else verdict
    return perception_picture(attempt.frame, attempt.perception.completed, attempt.perception.grasps,
                              attempt.grasp, title)


def save_attempt_picture(attempt, path: str | Path, title: str = "") -> Path:
    return save_png(attempt_picture(attempt, title), path)


def scene_geometries(completed: RGBDFrame, grasps: list[Grasp], best: Grasp | None, gripper=DEFAULT_GRIPPER):
    """Open3D geometries of a perceived scene in the base frame: the completed cloud in its colours, the base
    frame's axes, and every grasp as its two finger pads (boxes; the chosen one green)."""
    import open3d as o3d

    K = completed.intrinsics
    pts_cam = K.depth_to_points(completed.depth)
    valid = completed.depth > 0
    p = pts_cam[valid] @ completed.T_base_cam[:3, :3].T + completed.T_base_cam[:3, 3]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    cloud.colors = o3d.utility.Vector3dVector(completed.rgb[valid].astype(np.float64) / 255.0)
    geoms = [cloud, o3d.geometry.TriangleMesh.create_coordinate_frame(size=0.1)]
    for g in [g for g in grasps if g != best][:SHOWN] + ([best] if best is not None else []):
        colour = np.array(BEST if g == best else OTHER) / 255.0
        for centre in finger_points(g, gripper):
            pad = o3d.geometry.TriangleMesh.create_box(gripper.finger_thickness, gripper.finger_depth,
                                                       gripper.finger_length)
            pad.translate(-np.array([gripper.finger_thickness, gripper.finger_depth, gripper.finger_length]) / 2)
            pad.rotate(o3d.geometry.get_rotation_matrix_from_xyz((0.0, 0.0, g.yaw)), center=(0, 0, 0))
            pad.translate(centre)
            pad.paint_uniform_color(colour)
            geoms.append(pad)
    return geoms


def show_3d(completed: RGBDFrame, grasps: list[Grasp], best: Grasp | None, title: str = "DistillGrasp") -> None:
    """Open Open3D's viewer on the scene (blocks until the window is closed). Needs a display."""
    import os

    import open3d as o3d

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and os.name != "nt":
        from pipeline.errors import DistillGraspError

        raise DistillGraspError("--view needs a display (no DISPLAY is set); the pictures are written anyway")
    o3d.visualization.draw_geometries(scene_geometries(completed, grasps, best), window_name=title)
