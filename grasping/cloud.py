"""Depth -> points in the robot base frame, table plane removal (RANSAC) and object clustering (open3d).

All points are Nx3 float64 metres in the robot ``base`` frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import open3d as o3d

from pipeline.errors import DistillGraspError
from pipeline.types import RGBDFrame


class PerceptionError(DistillGraspError):
    """The scene cannot be segmented (no points, no table)."""


@dataclass(frozen=True)
class CloudConfig:
    voxel: float = 0.004  # metres
    max_range: float = 2.0  # depth beyond this is ignored (metres)
    plane_distance: float = 0.006  # RANSAC inlier distance to the table plane
    plane_iterations: int = 200
    min_table_share: float = 0.2  # the table must hold this share of the points
    min_height: float = 0.008  # object points must be this far above the table
    cluster_eps: float = 0.009  # in the table plane
    cluster_min_points: int = 15
    min_cluster_points: int = 25


@dataclass
class SceneCloud:
    """Segmented scene: table plane (n . p + d = 0, n up), object points and their cluster labels."""

    plane: np.ndarray
    table_points: np.ndarray
    object_points: np.ndarray
    labels: np.ndarray  # per object point, -1 = noise
    clusters: list[np.ndarray] = field(default_factory=list)

    def height(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.plane[:3] + self.plane[3]


def frame_points(frame: RGBDFrame, max_range: float = 2.0) -> np.ndarray:
    """Valid depth pixels of ``frame`` as Nx3 points in the base frame."""
    if frame.T_base_cam is None:
        raise PerceptionError("frame has no camera pose (T_base_cam); cannot place points in the robot frame")
    pts = frame.intrinsics.depth_to_points(frame.depth).reshape(-1, 3)
    pts = pts[(pts[:, 2] > 0) & (pts[:, 2] < max_range)].astype(np.float64)
    T = frame.T_base_cam
    return pts @ T[:3, :3].T + T[:3, 3]


def segment(points: np.ndarray, cfg: CloudConfig = CloudConfig(), seed: int = 0) -> SceneCloud:
    """Remove the table plane and cluster what stands on it."""
    if len(points) < 100:
        raise PerceptionError(f"only {len(points)} valid depth points; nothing to segment")
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pcd = pcd.voxel_down_sample(cfg.voxel)
    o3d.utility.random.seed(seed)
    plane, inliers = pcd.segment_plane(cfg.plane_distance, 3, cfg.plane_iterations)
    plane = np.asarray(plane, dtype=np.float64)
    pts = np.asarray(pcd.points)
    if len(inliers) < cfg.min_table_share * len(pts):
        raise PerceptionError(f"no table found: the largest plane holds {len(inliers)} of {len(pts)} points")
    plane /= np.linalg.norm(plane[:3])
    if plane[2] < 0:  # normal pointing up (base z)
        plane = -plane
    if plane[2] < 0.8:
        raise PerceptionError(f"the dominant plane is not horizontal (normal {np.round(plane[:3], 2).tolist()})")
    h = pts @ plane[:3] + plane[3]
    table_mask = np.zeros(len(pts), bool)
    table_mask[inliers] = True
    obj = pts[(~table_mask) & (h > cfg.min_height)]
    if len(obj) == 0:
        return SceneCloud(plane, pts[table_mask], obj, np.zeros(0, int), [])
    # Cluster the footprint (x, y) so that a vessel's rim and the bottom seen inside it stay one object.
    flat = np.column_stack([obj[:, :2], np.zeros(len(obj))])
    labels = np.asarray(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(flat)).cluster_dbscan(
        cfg.cluster_eps, cfg.cluster_min_points, print_progress=False))
    clusters = [obj[labels == k] for k in range(labels.max() + 1) if (labels == k).sum() >= cfg.min_cluster_points]
    return SceneCloud(plane, pts[table_mask], obj, labels, clusters)
