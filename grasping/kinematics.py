"""UR10e kinematics from UR's published Denavit-Hartenberg parameters (standard DH, UR ``base`` frame).

    T_base_flange = fk(q)                       # 4x4, metres
    q = ik(T_base_flange, q_seed)               # damped least squares from a seed, within joint limits

Joint i rotates about z of DH frame i-1; each link transform is Rz(theta_i) Tz(d_i) Tx(a_i) Rx(alpha_i).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.errors import DistillGraspError


@dataclass(frozen=True)
class URParameters:
    d: tuple[float, ...] = (0.1807, 0.0, 0.0, 0.17415, 0.11985, 0.11655)
    a: tuple[float, ...] = (0.0, -0.6127, -0.57155, 0.0, 0.0, 0.0)
    alpha: tuple[float, ...] = (np.pi / 2, 0.0, 0.0, np.pi / 2, -np.pi / 2, 0.0)
    joint_limits: tuple[float, float] = (-2 * np.pi, 2 * np.pi)  # every joint: +-360 deg
    # max joint speed, rad/s: base and shoulder 120 deg/s, elbow and wrists 180 deg/s
    max_joint_speed: tuple[float, ...] = tuple(np.radians([120, 120, 180, 180, 180, 180]))
    reach: float = 1.3
    # the links' radii (shoulder, upper arm, forearm, wrists 1-3), metres: the simulated arm's collision shapes
    # and the wrist the grasp detector keeps clear of the scene
    link_radii: tuple[float, ...] = (0.075, 0.075, 0.06, 0.045, 0.045, 0.045)


UR10E = URParameters()


class IKError(DistillGraspError):
    """No joint solution reaches the pose within tolerance and limits."""


def dh_transform(theta: float, d: float, a: float, alpha: float) -> np.ndarray:
    ct, st, ca, sa = np.cos(theta), np.sin(theta), np.cos(alpha), np.sin(alpha)
    return np.array([[ct, -st * ca, st * sa, a * ct],
                     [st, ct * ca, -ct * sa, a * st],
                     [0.0, sa, ca, d],
                     [0.0, 0.0, 0.0, 1.0]])


def fk_frames(q, params: URParameters = UR10E) -> list[np.ndarray]:
    """Frames 0..6 (base, after each joint) as 4x4 transforms in the base frame."""
    frames = [np.eye(4)]
    for i in range(6):
        frames.append(frames[-1] @ dh_transform(q[i], params.d[i], params.a[i], params.alpha[i]))
    return frames


def fk(q, params: URParameters = UR10E) -> np.ndarray:
    """T_base_flange for joint angles q (radians)."""
    return fk_frames(q, params)[-1]


def jacobian(q, params: URParameters = UR10E) -> np.ndarray:
    """6x6 geometric Jacobian (linear; angular) of the flange in the base frame."""
    frames = fk_frames(q, params)
    p_end = frames[-1][:3, 3]
    J = np.zeros((6, 6))
    for i in range(6):
        z, p = frames[i][:3, 2], frames[i][:3, 3]
        J[:3, i] = np.cross(z, p_end - p)
        J[3:, i] = z
    return J


def rotation_error(R_target: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Rotation vector taking R to R_target (base frame)."""
    return Rotation.from_matrix(R_target @ R.T).as_rotvec()


def ik(T_target: np.ndarray, q_seed, params: URParameters = UR10E, tol_pos: float = 1e-5, tol_rot: float = 1e-4,
       max_iter: int = 200) -> np.ndarray:
    """Joint angles reaching ``T_target`` (flange in base), nearest to ``q_seed``; raises IKError."""
    T_target = np.asarray(T_target, dtype=np.float64)
    shoulder = np.array([0.0, 0.0, params.d[0]])
    longest = abs(params.a[1]) + abs(params.a[2]) + sum(params.d[3:])
    if np.linalg.norm(T_target[:3, 3] - shoulder) > longest:
        raise IKError(f"pose at {np.round(T_target[:3, 3], 3).tolist()} m is beyond the UR10e's reach")
    q = np.array(q_seed, dtype=np.float64)
    lam = 1e-3
    for _ in range(max_iter):
        T = fk(q, params)
        e = np.concatenate([T_target[:3, 3] - T[:3, 3], rotation_error(T_target[:3, :3], T[:3, :3])])
        if np.linalg.norm(e[:3]) < tol_pos and np.linalg.norm(e[3:]) < tol_rot:
            lo, hi = params.joint_limits
            if np.any(q < lo) or np.any(q > hi):
                raise IKError(f"solution {np.round(q, 3).tolist()} is outside the joint limits")
            return q
        J = jacobian(q, params)
        dq = J.T @ np.linalg.solve(J @ J.T + lam * np.eye(6), e)
        step = np.linalg.norm(dq)
        if step > 0.5:
            dq *= 0.5 / step
        q = q + dq
    raise IKError(f"no joint solution reaches position {np.round(T_target[:3, 3], 3).tolist()} m "
                  f"(residual {np.linalg.norm(e[:3]) * 1000:.1f} mm, {np.degrees(np.linalg.norm(e[3:])):.2f} deg)")
