"""Camera geometry for the simulator: poses, OpenGL matrices and PyBullet's TinyRenderer.

``T_base_cam`` uses the OpenCV camera frame (x right, y down, z forward). PyBullet wants an OpenGL view
matrix (camera looking down -z, y up) and a projection matrix; both are derived here from the intrinsics,
so a rendered pixel (u, v) with depth z back-projects exactly through ``CameraIntrinsics.backproject``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from pipeline.config import WorkspaceConfig
from pipeline.types import CameraIntrinsics

# OpenCV camera axes expressed in the OpenGL camera frame (flip y and z).
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """T_base_cam (4x4) of a camera at ``eye`` looking at ``target`` (base frame, metres), image "up"
    towards ``up`` as far as possible."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    if np.linalg.norm(z) < 1e-9:
        raise ValueError("look_at: eye and target coincide")
    z /= np.linalg.norm(z)
    x = np.cross(z, -up)
    if np.linalg.norm(x) < 1e-6:  # looking straight along up: pick any horizontal x
        x = np.cross(z, [0.0, 1.0, 0.0] if abs(z[1]) < 0.9 else [1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def gl_view_matrix(T_base_cam: np.ndarray) -> list[float]:
    """PyBullet view matrix (column-major 16 floats) for an OpenCV-convention camera pose."""
    view = np.linalg.inv(np.asarray(T_base_cam) @ _CV_TO_GL)
    return view.T.ravel().tolist()


def gl_projection_matrix(K: CameraIntrinsics, near: float, far: float) -> list[float]:
    """PyBullet projection matrix (column-major) reproducing ``K`` exactly.

    TinyRenderer samples column u at NDC x = 2u/W - 1 and writes rows bottom-up, so row v sits at
    NDC y = 1 - 2(v + 1)/H; the principal point terms below absorb both (checked by a test that renders
    spheres at known positions).
    """
    W, H = K.width, K.height
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * K.fx / W
    P[0, 2] = 1.0 - 2.0 * K.cx / W
    P[1, 1] = 2.0 * K.fy / H
    P[1, 2] = 2.0 * (K.cy + 1.0) / H - 1.0
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P.T.ravel().tolist()


def linearize_depth(zbuf: np.ndarray, near: float, far: float) -> np.ndarray:
    """TinyRenderer's non-linear depth buffer -> z-depth in metres."""
    return (far * near / (far - (far - near) * zbuf)).astype(np.float32)


@dataclass(frozen=True)
class Light:
    """TinyRenderer lighting: direction towards the light (base frame), colour and Phong coefficients."""

    direction: tuple[float, float, float] = (0.3, 0.2, 1.0)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.55
    diffuse: float = 0.45
    specular: float = 0.15
    shadow: bool = True


def render(client: int, K: CameraIntrinsics, T_base_cam: np.ndarray, light: Light,
           near: float = 0.05, far: float = 4.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One TinyRenderer pass -> (rgb HxWx3 uint8, z-depth HxW float32 metres, body id HxW int32, -1 = none)."""
    _, _, rgba, zbuf, seg = p.getCameraImage(
        K.width, K.height, gl_view_matrix(T_base_cam), gl_projection_matrix(K, near, far),
        renderer=p.ER_TINY_RENDERER, shadow=int(light.shadow), lightDirection=list(light.direction),
        lightColor=list(light.color), lightAmbientCoeff=light.ambient, lightDiffuseCoeff=light.diffuse,
        lightSpecularCoeff=light.specular, flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
        physicsClientId=client,
    )
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(K.height, K.width, 4)[..., :3]
    depth = linearize_depth(np.asarray(zbuf, dtype=np.float64).reshape(K.height, K.width), near, far)
    seg = np.asarray(seg, dtype=np.int64).reshape(K.height, K.width)
    body = np.where(seg >= 0, seg & ((1 << 24) - 1), -1).astype(np.int32)
    depth[body < 0] = 0.0
    return np.ascontiguousarray(rgb), depth, body


@dataclass(frozen=True)
class CameraPoseConfig:
    """Random camera placement: distance from the scene centre and tilt away from looking straight down."""

    distance: tuple[float, float] = (0.5, 1.0)
    tilt_deg: tuple[float, float] = (0.0, 35.0)
    target_jitter: float = 0.05  # metres around the object region's centre
    roll_deg: tuple[float, float] = (-10.0, 10.0)

    def __post_init__(self) -> None:
        if not (0.1 <= self.distance[0] <= self.distance[1] <= 3.0):
            raise ValueError(f"CameraPoseConfig.distance must be within 0.1-3 m, got {self.distance}")
        if not (0.0 <= self.tilt_deg[0] <= self.tilt_deg[1] < 80.0):
            raise ValueError(f"CameraPoseConfig.tilt_deg must be within 0-80 deg, got {self.tilt_deg}")


def sample_camera_pose(rng: np.random.Generator, workspace: WorkspaceConfig,
                       cfg: CameraPoseConfig = CameraPoseConfig()) -> np.ndarray:
    """A random downward-looking T_base_cam over the object region."""
    target = np.array([*workspace.object_center, workspace.table_z])
    target[:2] += rng.uniform(-cfg.target_jitter, cfg.target_jitter, 2)
    dist = rng.uniform(*cfg.distance)
    tilt = np.radians(rng.uniform(*cfg.tilt_deg))
    azim = rng.uniform(0, 2 * np.pi)
    eye = target + dist * np.array([np.sin(tilt) * np.cos(azim), np.sin(tilt) * np.sin(azim), np.cos(tilt)])
    # image "up" points away from the robot (+x) so views are consistent, then a small random roll
    T = look_at(eye, target, up=(1.0, 0.0, 0.0) if tilt < np.radians(5) else (0.0, 0.0, 1.0))
    roll = np.radians(rng.uniform(*cfg.roll_deg))
    c, s = np.cos(roll), np.sin(roll)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    T[:3, :3] = T[:3, :3] @ R
    return T
