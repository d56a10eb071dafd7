"""Simulated UR10e with a parallel-jaw gripper in PyBullet.

The arm is a PyBullet multibody built joint by joint from the same DH parameters as ``grasping.kinematics``,
so PyBullet's flange pose equals ``fk(q)`` exactly. Joints are position-controlled motors; moves are
interpolated in small steps with physics stepped in between, so a held object is carried by friction, not
teleported. The gripper is Robotiq 2F-85-like: two force-limited prismatic fingers with high-friction pads,
85 mm stroke, TCP between the finger pads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p
from scipy.spatial.transform import Rotation, Slerp

from grasping.kinematics import UR10E, URParameters, fk, ik
from grasping.robot import Gripper, LimitError, Robot, WorkspaceBox
from grasping.safety import MotionLimits, SafetyGate
from pipeline.config import DEFAULT_GRIPPER, GripperConfig

HOME_Q = np.array([2.8471, -1.7587, 1.857, -1.6691, -1.5708, -1.8653])  # TCP at (0.6, 0, 0.45) pointing down


@dataclass(frozen=True)
class SimRobotConfig:
    base_position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    finger_force: float = 40.0  # newtons per finger
    pad_friction: float = 1.5
    joint_force: float = 2000.0
    steps_per_second: int = 240
    max_linear_speed: float = 0.5  # m/s
    max_tool_rotation_speed: float = 1.5  # rad/s, for the orientation part of linear moves
    max_joint_speed_scale: float = 1.0  # share of the UR10e's joint speed limits


def _quat(R: np.ndarray) -> list[float]:
    return Rotation.from_matrix(R).as_quat().tolist()


class SimUR10e(Robot):
    """UR10e in a PyBullet world (``client``), holding a ``SimGripper``."""

    def __init__(self, client: int, config: SimRobotConfig = SimRobotConfig(), params: URParameters = UR10E,
                 workspace: WorkspaceBox = WorkspaceBox(), gripper: GripperConfig = DEFAULT_GRIPPER):
        self.client, self.config, self.params, self.workspace = client, config, params, workspace
        self.gate = SafetyGate(MotionLimits(workspace, max_linear_speed=config.max_linear_speed,
                                            max_joint_speed=float(np.max(params.max_joint_speed))
                                            * config.max_joint_speed_scale), params)
        self.gripper_config = gripper
        self.step_watchers: list = []  # called after every physics step (e.g. contact bookkeeping)
        self.body = self._build()
        self.arm_joints = list(range(6))
        self.finger_joints = [8, 9]
        for j in range(6):
            p.resetJointState(self.body, j, HOME_Q[j], physicsClientId=client)
        self._target_q = HOME_Q.copy()
        self._hold()
        self.gripper = SimGripper(self)

    # ----------------------------------------------------------------------------------------------------
    def _build(self) -> int:
        c, prm, cfg = self.client, self.params, self.config
        vis, col, masses, pos, orn, jtypes, axes = [], [], [], [], [], [], []
        link_mass = (7.369, 13.051, 3.989, 2.1, 1.98, 0.615)
        for i in range(6):
            length = max(abs(prm.a[i]), abs(prm.d[i]), 0.08)
            vis.append(p.createVisualShape(p.GEOM_CYLINDER, radius=0.045, length=length,
                                           rgbaColor=[0.6, 0.65, 0.7, 1], physicsClientId=c))
            col.append(-1)
            masses.append(link_mass[i])
            if i == 0:
                pos.append([0, 0, 0]), orn.append([0, 0, 0, 1])
            else:
                j = i - 1  # fixed part of DH transform j, in link j's frame
                pos.append([prm.a[j], 0, prm.d[j]])
                orn.append(_quat(Rotation.from_euler("x", prm.alpha[j]).as_matrix()))
            jtypes.append(p.JOINT_REVOLUTE)
            axes.append([0, 0, 1])
        # 6: flange (fixed, DH 6 fixed part); 7: palm (fixed); 8, 9: fingers (prismatic along tool x)
        pos.append([prm.a[5], 0, prm.d[5]]), orn.append(_quat(Rotation.from_euler("x", prm.alpha[5]).as_matrix()))
        vis.append(-1), col.append(-1), masses.append(0.01), jtypes.append(p.JOINT_FIXED), axes.append([0, 0, 1])
        g = self.gripper_config
        palm_half = [g.palm_width / 2, g.palm_depth / 2, g.palm_height / 2]
        pos.append([0, 0, g.palm_offset]), orn.append([0, 0, 0, 1])
        vis.append(p.createVisualShape(p.GEOM_BOX, halfExtents=palm_half, rgbaColor=[0.2, 0.2, 0.2, 1],
                                       physicsClientId=c))
        col.append(p.createCollisionShape(p.GEOM_BOX, halfExtents=palm_half, physicsClientId=c))
        masses.append(0.6), jtypes.append(p.JOINT_FIXED), axes.append([0, 0, 1])
        finger_half = [g.finger_thickness / 2, g.finger_depth / 2, g.finger_length / 2]
        tcp_in_palm = g.tcp_offset - g.palm_offset
        for side in (-1, 1):
            pos.append([side * finger_half[0], 0, tcp_in_palm]), orn.append([0, 0, 0, 1])
            vis.append(p.createVisualShape(p.GEOM_BOX, halfExtents=finger_half, rgbaColor=[0.1, 0.1, 0.1, 1],
                                           physicsClientId=c))
            col.append(p.createCollisionShape(p.GEOM_BOX, halfExtents=finger_half, physicsClientId=c))
            masses.append(0.1), jtypes.append(p.JOINT_PRISMATIC), axes.append([side, 0, 0])
        n = len(masses)
        parents = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8]
        base_vis = p.createVisualShape(p.GEOM_CYLINDER, radius=0.075, length=0.1, rgbaColor=[0.3, 0.3, 0.35, 1],
                                       physicsClientId=c)
        body = p.createMultiBody(
            baseMass=0, baseVisualShapeIndex=base_vis, basePosition=list(cfg.base_position),
            linkMasses=masses, linkCollisionShapeIndices=col, linkVisualShapeIndices=vis,
            linkPositions=pos, linkOrientations=orn,
            linkInertialFramePositions=[[0, 0, 0]] * n, linkInertialFrameOrientations=[[0, 0, 0, 1]] * n,
            linkParentIndices=parents, linkJointTypes=jtypes, linkJointAxis=axes, physicsClientId=c,
        )
        lo, hi = self.params.joint_limits
        for j in range(6):
            p.changeDynamics(body, j, jointLowerLimit=lo, jointUpperLimit=hi, linearDamping=0, angularDamping=0,
                             physicsClientId=c)
        stroke = self.gripper_config.stroke_m / 2
        for j in (8, 9):
            p.changeDynamics(body, j, jointLowerLimit=0.0, jointUpperLimit=stroke, lateralFriction=cfg.pad_friction,
                             spinningFriction=0.01, frictionAnchor=1, physicsClientId=c)
        # the fingers must not collide with each other or with the palm
        for a, b in ((8, 9), (7, 8), (7, 9)):
            p.setCollisionFilterPair(body, body, a, b, 0, physicsClientId=c)
        return body

    # ----------------------------------------------------------------------------------------------------
    def joints(self) -> np.ndarray:
        return np.array([s[0] for s in p.getJointStates(self.body, self.arm_joints, physicsClientId=self.client)])

    def flange_pose(self) -> np.ndarray:
        """Flange pose as PyBullet computes it (equals ``fk(joints())``; kept for checking)."""
        st = p.getLinkState(self.body, 6, computeForwardKinematics=True, physicsClientId=self.client)
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat(st[5]).as_matrix()
        T[:3, 3] = st[4]
        return T

    @property
    def T_flange_tcp(self) -> np.ndarray:
        T = np.eye(4)
        T[2, 3] = self.gripper_config.tcp_offset
        return T

    def tcp_pose(self) -> np.ndarray:
        return fk(self.joints(), self.params) @ self.T_flange_tcp

    def _hold(self) -> None:
        p.setJointMotorControlArray(self.body, self.arm_joints, p.POSITION_CONTROL, targetPositions=self._target_q,
                                    forces=[self.config.joint_force] * 6, physicsClientId=self.client)

    def wait(self, seconds: float) -> None:
        """Let simulated time pass (holding the current targets)."""
        self._step(int(round(seconds * self.config.steps_per_second)))

    def _step(self, n: int = 1) -> None:
        for _ in range(n):
            p.stepSimulation(physicsClientId=self.client)
            for watch in self.step_watchers:
                watch()

    def _drive(self, path: list[np.ndarray], settle_steps: int = 60) -> None:
        for q in path:
            self._target_q = q
            self._hold()
            self._step()
        self._step(settle_steps)

    def move_joints(self, q, speed: float = 1.0) -> np.ndarray:
        q = self.gate.check_joints(q, speed)
        vmax = np.asarray(self.params.max_joint_speed) * self.config.max_joint_speed_scale
        q0 = self.joints()
        duration = max(np.max(np.abs(q - q0) / np.minimum(vmax, speed)), 1.0 / self.config.steps_per_second)
        n = int(np.ceil(duration * self.config.steps_per_second))
        self._drive([q0 + (q - q0) * (k + 1) / n for k in range(n)])
        return self.joints()

    def check_linear(self, pose: np.ndarray, speed: float) -> None:
        self.gate.check_linear(pose, speed)

    def move_linear(self, pose: np.ndarray, speed: float = 0.25) -> np.ndarray:
        """Straight-line TCP move (position interpolated, orientation slerped), IK at every step."""
        pose = self.gate.check_linear(pose, speed)
        start = self.tcp_pose()
        dist = np.linalg.norm(pose[:3, 3] - start[:3, 3])
        rots = Rotation.from_matrix(np.stack([start[:3, :3], pose[:3, :3]]))
        angle = (rots[1] * rots[0].inv()).magnitude()
        duration = max(dist / speed, angle / self.config.max_tool_rotation_speed)
        n = max(int(np.ceil(duration * self.config.steps_per_second)), 1)

        slerp = Slerp([0, 1], rots)
        T_tcp_flange = np.linalg.inv(self.T_flange_tcp)
        q = self.joints()
        path = []
        for k in range(n):
            t = (k + 1) / n
            T = np.eye(4)
            T[:3, :3] = slerp(t).as_matrix()
            T[:3, 3] = start[:3, 3] + t * (pose[:3, 3] - start[:3, 3])
            q = ik(T @ T_tcp_flange, q, self.params)
            path.append(q)
        vmax = np.asarray(self.params.max_joint_speed)
        dq = np.abs(np.diff(np.vstack([self.joints(), path]), axis=0)) * self.config.steps_per_second
        if np.any(dq > vmax * 1.001):
            raise LimitError("linear move would exceed a joint speed limit (near a singularity); slow down")
        self._drive(path)
        return self.tcp_pose()

    def stop(self) -> None:
        self._target_q = self.joints()
        self._hold()


class SimGripper(Gripper):
    """Two force-limited prismatic fingers; ``close`` reports contact like Robotiq's OBJ status."""

    def __init__(self, robot: SimUR10e):
        self.robot = robot
        self.stroke = robot.gripper_config.stroke_m

    def _command(self, half_width: float, force: float, steps: int = 120) -> None:
        r = self.robot
        # each finger travels from the centre outwards: joint value = half opening
        p.setJointMotorControlArray(r.body, r.finger_joints, p.POSITION_CONTROL, targetPositions=[half_width] * 2,
                                    forces=[force] * 2, positionGains=[0.05] * 2, physicsClientId=r.client)
        r._hold()
        r._step(steps)

    def open(self, width: float | None = None) -> None:
        width = self.stroke if width is None else width
        if not 0 <= width <= self.stroke + 1e-9:
            raise LimitError(f"gripper opening {width * 1000:.1f} mm is outside the {self.stroke * 1000:.0f} mm stroke")
        self._command(width / 2, 80.0)

    def close(self, force: float = 40.0) -> bool:
        if not 0 < force <= 235:
            raise LimitError(f"gripper force {force} N is outside (0, 235] N")
        self._command(0.0, force, steps=240)
        return self.width() > 0.004  # stopped on something rather than fully closed

    def width(self) -> float:
        r = self.robot
        return float(sum(s[0] for s in p.getJointStates(r.body, r.finger_joints, physicsClientId=r.client)))
