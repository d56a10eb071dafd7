"""Top-down parallel-jaw grasps from a segmented point cloud.

For each object cluster, candidate grasps close across the object's narrow side (from the principal axes of
its footprint, plus nearby yaws), at a height just below its top. A candidate is kept when the opening needed
fits the stroke and the open fingers and palm, lowered to the grasp height, do not hit any other point of the
scene (other objects). Candidates are scored by how much of the object's depth had to be repaired (glass the
camera could not see is the target), how centred the grasp is on the object's narrow side, how little of the
stroke it needs and how high it grasps; the list comes back best first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grasping.cloud import SceneCloud, fit_circle
from pipeline.config import DEFAULT_GRIPPER, GripperConfig


@dataclass(frozen=True)
class Grasp:
    """A top-down grasp: TCP centre (base frame, metres), yaw of the closing direction (radians), opening
    width (metres), score (higher is better), and the index of the object cluster it grasps."""

    center: tuple[float, float, float]
    yaw: float
    width: float
    score: float
    cluster: int


@dataclass(frozen=True)
class DetectorConfig:
    gripper: GripperConfig = DEFAULT_GRIPPER
    width_margin: float = 0.02  # opening beyond the object's width
    grasp_depth: float = 0.025  # how far below the object's top the pads' centre goes
    top_percentile: float = 90.0  # the object's top height: robust to completed depth bleeding past its edge
    tip_clearance: float = 0.004  # fingertips stay this far above the table
    collision_points: int = 3  # more scene points than this inside a finger = collision
    yaw_offsets_deg: tuple[float, ...] = (0.0, -20.0, 20.0, -40.0, 40.0, 90.0)
    rim_opening: float = 0.035  # rim pinch: opening around the vessel wall
    rim_depths: tuple[float, ...] = (0.015, 0.01, 0.006)  # rim pinch: pad centre this far below the rim
    rim_band: float = 0.01  # rim points: this close to the top
    rim_min_radius: float = 0.03  # the inner finger must fit inside
    rim_max_radius: float = 0.10
    rim_fit_rms: float = 0.005
    rim_angles: int = 12
    repaired_weight: float = 1.0  # preference for objects whose depth was repaired (transparent ones)
    swept_check: bool = True  # collisions along the whole descent, palm included (False: fingers at the grasp)


class GraspDetector:
    def __init__(self, config: DetectorConfig = DetectorConfig()):
        self.config = config

    def detect(self, scene: SceneCloud) -> list[Grasp]:
        """Ranked grasps over all clusters (empty when nothing graspable is found)."""
        grasps: list[Grasp] = []
        for k, cluster in enumerate(scene.clusters):
            across = self._cluster_grasps(scene, k, cluster)
            grasps.extend(across if across else self._rim_grasps(scene, k, cluster))
        return sorted(grasps, key=lambda g: -g.score)

    def _rim_grasps(self, scene: SceneCloud, k: int, pts: np.ndarray) -> list[Grasp]:
        """Pinch the wall of an open vessel too wide to grasp across (bowls, wide wine glasses): one finger
        inside, one outside, closing radially at a point of the rim. The rim is the circle fitted to the
        cluster's top points; the inside must be lower than the rim (an opening, not a lid)."""
        cfg, g = self.config, self.config.gripper
        h = scene.height(pts)
        top = float(np.percentile(h, cfg.top_percentile))
        rim = pts[h > top - cfg.rim_band]
        if len(rim) < 10:
            return []
        centre, radius, rms = fit_circle(rim[:, :2])
        if not (cfg.rim_min_radius <= radius <= cfg.rim_max_radius) or rms > cfg.rim_fit_rms:
            return []
        r_xy = np.linalg.norm(pts[:, :2] - centre, axis=1)
        inner = h[r_xy < radius - g.finger_thickness - cfg.rim_opening / 2]
        if len(inner) and np.percentile(inner, 90) > top - g.finger_length / 2:
            return []  # something high inside the rim: not an opening the finger can enter
        others = scene.others(k)
        repaired = scene.repaired_share(k)
        out = []
        for theta in np.linspace(-np.pi, np.pi, cfg.rim_angles, endpoint=False):
            d = np.array([np.cos(theta), np.sin(theta)])
            mid = centre + radius * d
            between = np.abs((pts[:, :2] - mid) @ d) <= cfg.rim_opening / 2
            obstacles = np.concatenate([others, pts[~between]])
            for depth in cfg.rim_depths:  # deepest collision-free pinch (sloped bowl walls allow only a shallow one)
                z_h = max(top - depth, g.finger_length / 2 + cfg.tip_clearance)
                z = self._z_at(scene, mid, z_h)
                if self._finger_hits(obstacles, mid, theta, z, cfg.rim_opening, scene) <= cfg.collision_points:
                    break
            else:
                continue
            score = 0.25 + 0.2 * min(z_h / 0.05, 1.0) + cfg.repaired_weight * repaired
            out.append(Grasp((float(mid[0]), float(mid[1]), float(z)), float(_wrap(theta)), cfg.rim_opening,
                             float(score), k))
        return out

    def _cluster_grasps(self, scene: SceneCloud, k: int, pts: np.ndarray) -> list[Grasp]:
        cfg = self.config
        h = scene.height(pts)
        top = np.percentile(h, cfg.top_percentile)
        g = cfg.gripper
        z_h = max(top - cfg.grasp_depth, g.finger_length / 2 + cfg.tip_clearance)  # pad centre above the table
        # Everything the descending fingers pass must fit between them: the footprint of all points above the
        # fingertips (the top view sees the top faces, which a band of wall points alone would miss).
        above = pts[h > z_h - g.finger_length / 2]
        xy = (above if len(above) >= 5 else pts)[:, :2]
        centre_xy = (xy.max(0) + xy.min(0)) / 2
        cov = np.cov((xy - xy.mean(0)).T) if len(xy) > 2 else np.eye(2)
        w, v = np.linalg.eigh(cov)
        minor = v[:, 0]
        base_yaw = float(np.arctan2(minor[1], minor[0]))
        others = scene.others(k)
        out = []
        for off in cfg.yaw_offsets_deg:
            yaw = base_yaw + np.radians(off)
            d = np.array([np.cos(yaw), np.sin(yaw)])
            along = (xy - centre_xy) @ d
            lo, hi = along.min(), along.max()
            mid = centre_xy + d * (lo + hi) / 2
            width = (hi - lo) + cfg.width_margin
            if width > g.stroke_m:
                continue
            # the grasp point height in the base frame: on the plane below the pad centre
            z = self._z_at(scene, mid, z_h)
            hits = self._finger_hits(np.concatenate([others, pts[np.abs(((pts[:, :2] - mid) @ d)) > width / 2]]),
                                     mid, yaw, z, width, scene)
            if hits > cfg.collision_points:
                continue
            centred = 1.0 - min(abs(off) / 90.0, 1.0)
            repaired = scene.repaired_share(k)
            score = (0.5 * centred + 0.3 * (1 - width / g.stroke_m) + 0.2 * min(z_h / 0.05, 1.0)
                     + cfg.repaired_weight * repaired)
            out.append(Grasp((float(mid[0]), float(mid[1]), float(z)), float(_wrap(yaw)), float(width),
                             float(score), k))
        return out

    @staticmethod
    def _z_at(scene: SceneCloud, xy: np.ndarray, height: float) -> float:
        n, d = scene.plane[:3], scene.plane[3]
        # point on the plane below (x, y): n . (x, y, z) + d = 0, then raise by height along z
        z_plane = -(n[0] * xy[0] + n[1] * xy[1] + d) / n[2]
        return float(z_plane + height / n[2])

    def _finger_hits(self, points: np.ndarray, mid: np.ndarray, yaw: float, z: float, width: float,
                     scene: SceneCloud) -> int:
        """Scene points in the way of the open gripper coming straight down to the grasp: inside either finger's
        footprint above the fingertips, or inside the palm's footprint above the palm's underside. Every point
        counts all the way up (the descent sweeps through it), and what the camera sees of an object stands on
        the table with solid matter below it, which the finger would meet too."""
        g = self.config.gripper
        if len(points) == 0:
            return 0
        c, s = np.cos(yaw), np.sin(yaw)
        rel = points - np.array([mid[0], mid[1], z])
        u = np.abs(rel[:, 0] * c + rel[:, 1] * s)  # along the closing direction
        v = np.abs(-rel[:, 0] * s + rel[:, 1] * c)
        if self.config.swept_check:
            finger = (u > width / 2) & (u < width / 2 + g.finger_thickness) & (v < g.finger_depth / 2) \
                & (rel[:, 2] > -g.finger_length / 2)
            palm = (u < g.palm_width / 2) & (v < g.palm_depth / 2) & (rel[:, 2] > g.palm_above_tcp)
            return int((finger | palm).sum())
        inside_z = (rel[:, 2] > -g.finger_length / 2) & (rel[:, 2] < g.finger_length / 2 + 0.05)
        inside_u = (u > width / 2) & (u < width / 2 + g.finger_thickness)
        return int((inside_u & (v < g.finger_depth / 2) & inside_z).sum())


def _wrap(yaw: float) -> float:
    """Yaw of a symmetric parallel-jaw grasp folded into (-pi/2, pi/2]."""
    yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2
    return yaw if yaw > -np.pi / 2 else yaw + np.pi
