"""Simulated UR10e with a parallel-jaw gripper in PyBullet.

The arm is a PyBullet multibody built joint by joint from the same DH parameters as ``grasping.kinematics``,
so PyBullet's flange pose equals ``fk(q)`` exactly. Joints are position-controlled motors; moves are
interpolated in small steps with physics stepped in between, so a held object is carried by friction, not
teleported. Every arm link collides with the scene: a capsule (cylinder at the flange) along each DH offset, with
the UR10e's link radii, so an arm that dips into the table or an object touches it. The arm does not collide
with itself. The gripper is shaped like a Robotiq 2F-85 (``pipeline.config.GripperConfig``): a body below the
flange and two force-limited prismatic fingers (a rubber pad on a finger link), 85 mm stroke, TCP between the
pads, closing no faster than the 2F-85's speed with a force in its range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p
from scipy.spatial.transform import Rotation, Slerp

from grasping.kinematics import UR10E, URParameters, fk, ik
from grasping.robot import Gripper, LimitError, Robot, WorkspaceBox, backed_off
from grasping.safety import MotionLimits, SafetyGate
from pipeline.config import DEFAULT_GRIPPER, GripperConfig

HOME_Q = np.array([2.8471, -1.7587, 1.857, -1.6691, -1.5708, -1.8653])  # flange at (0.6, 0, 0.61) pointing down
FLANGE_RADIUS, FLANGE_THICKNESS = 0.0315, 0.01  # the tool flange (ISO 9409-1-50-4-M6, 63 mm across)
FINGER_LINKS = (8, 9)  # links 0-5 are the arm, 6 the flange, 7 the gripper body, 8 and 9 the fingers
TOOL_LINKS = (7, *FINGER_LINKS)  # the gripper: what a guarded descent may bring into contact with the scene


@dataclass(frozen=True)
class SimRobotConfig:
    base_position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pad_friction: float = 1.5
    joint_force: float = 2000.0
    steps_per_second: int = 240
    max_linear_speed: float = 0.5  # m/s
    max_tool_rotation_speed: float = 1.5  # rad/s, for the orientation part of linear moves
    max_joint_speed_scale: float = 1.0  # share of the UR10e's joint speed limits
    # A guarded descent (``descend``) stops when the scene pushes back on the tool this hard (newtons): the
    # UR10e's built-in force-torque sensor is accurate to about 5.5 N, and its contact detection (ur_rtde
    # ``toolContact``) trips at a few times that.
    contact_force_n: float = 15.0
    contact_backoff: float = 0.003  # after a contact, the tool backs off this far (metres) before it closes


def _quat(R: np.ndarray) -> list[float]:
    return Rotation.from_matrix(R).as_quat().tolist()


@dataclass(frozen=True)
class Segment:
    """A piece of link geometry in its link's frame: a capsule (or a flat-ended cylinder) of ``radius`` whose
    axis runs from ``start`` to ``end`` (the centres of its end caps), metres."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius: float
    capsule: bool = True

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.subtract(self.end, self.start)))

    @property
    def centre(self) -> list[float]:
        return list((np.add(self.start, self.end) / 2).tolist())

    @property
    def orientation(self) -> list[float]:
        """Quaternion turning the shape's z axis onto the segment."""
        axis = np.subtract(self.end, self.start) / self.length
        rot, _ = Rotation.align_vectors([axis], [[0.0, 0.0, 1.0]])
        return rot.as_quat().tolist()


def arm_segments(params: URParameters = UR10E) -> list[list[Segment]]:
    """Collision and visual geometry of the six arm links, each in its own link frame.

    Link i's frame is DH frame i-1 turned by joint i; the link carries the fixed part of DH transform i, an
    offset d_i along its z axis, then a_i along x. Each non-zero offset becomes one segment: shoulder column
    (d1), upper arm (a2), forearm (a3) and the three wrist offsets (d4, d5, d6), so the geometry follows the
    kinematic chain exactly, each of its link's radius (``URParameters.link_radii``). Capsule ends round the
    joints; the last wrist is a cylinder ending flat at the flange face, where the gripper begins."""
    out = []
    for i in range(6):
        d, a, r = params.d[i], params.a[i], params.link_radii[i]
        segs = []
        if abs(d) > 1e-9:
            segs.append(Segment((0.0, 0.0, 0.0), (0.0, 0.0, d), r, capsule=i < 5))
        if abs(a) > 1e-9:
            segs.append(Segment((0.0, 0.0, d), (a, 0.0, d), r))
        out.append(segs)
    return out


def _shape_arrays(c: int, segments: list[Segment], boxes: list[tuple[list[float], list[float]]], rgba) -> tuple[int, int]:
    """One compound collision shape and a matching visual shape from segments and (centre, half extents) boxes."""
    types = [p.GEOM_CAPSULE if s.capsule else p.GEOM_CYLINDER for s in segments] + [p.GEOM_BOX] * len(boxes)
    radii = [s.radius for s in segments] + [0.0] * len(boxes)
    lengths = [s.length for s in segments] + [0.0] * len(boxes)
    halves = [[0.0, 0.0, 0.0]] * len(segments) + [list(h) for _, h in boxes]
    positions = [s.centre for s in segments] + [list(cen) for cen, _ in boxes]
    orientations = [s.orientation for s in segments] + [[0.0, 0.0, 0.0, 1.0]] * len(boxes)
    col = p.createCollisionShapeArray(shapeTypes=types, radii=radii, lengths=lengths, halfExtents=halves,
                                      collisionFramePositions=positions, collisionFrameOrientations=orientations,
                                      physicsClientId=c)
    vis = p.createVisualShapeArray(shapeTypes=types, radii=radii, lengths=lengths, halfExtents=halves,
                                   rgbaColors=[list(rgba)] * len(types), visualFramePositions=positions,
                                   visualFrameOrientations=orientations, physicsClientId=c)
    return col, vis


def finger_boxes(g: GripperConfig, side: int) -> list[tuple[list[float], list[float]]]:
    """A finger in its link frame (origin: the centre of its ``finger_thickness`` at TCP height, x along the
    closing direction, pointing away from the other finger for ``side`` +1, z along the tool's z, towards the
    fingertips): the pad with the finger link behind it over the pad's length, and above the pad the finger
    link alone, set back by the pad, up to the gripper body (the 2F-85's linkage)."""
    t, depth, length = g.finger_thickness, g.finger_depth, g.finger_length
    boxes = [([0.0, 0.0, 0.0], [t / 2, depth / 2, length / 2])]
    link_t = t - g.pad_thickness
    top, bottom = g.palm_above_tcp, length / 2  # heights above the TCP
    if link_t > 1e-6 and top > bottom + 1e-6:
        boxes.append(([side * (t / 2 - link_t / 2), 0.0, -(top + bottom) / 2],
                      [link_t / 2, depth / 2, (top - bottom) / 2]))
    return boxes


class SimUR10e(Robot):
    """UR10e in a PyBullet world (``client``), holding a ``SimGripper``."""

    ik_every = 6  # physics steps between IK solutions on a linear move (6 mm at 0.25 m/s)

    def __init__(self, client: int, config: SimRobotConfig = SimRobotConfig(), params: URParameters = UR10E,
                 workspace: WorkspaceBox = WorkspaceBox(), gripper: GripperConfig = DEFAULT_GRIPPER):
        self.client, self.config, self.params, self.workspace = client, config, params, workspace
        self.gate = SafetyGate(MotionLimits(workspace, max_linear_speed=config.max_linear_speed,
                                            max_joint_speed=float(np.max(params.max_joint_speed))
                                            * config.max_joint_speed_scale), params)
        self.gripper_config = gripper
        self.step_watchers: list = []  # called after every physics step (e.g. contact bookkeeping)
        self.stopped_on_contact = False  # the last ``descend`` stopped on a contact
        self.body = self._build()
        self.arm_joints = list(range(6))
        self.finger_joints = list(FINGER_LINKS)
        for j in range(6):
            p.resetJointState(self.body, j, HOME_Q[j], physicsClientId=client)
        self._target_q = HOME_Q.copy()
        self._hold()
        self.gripper = SimGripper(self)

    # ----------------------------------------------------------------------------------------------------
    def _build(self) -> int:
        c, prm, cfg, g = self.client, self.params, self.config, self.gripper_config
        arm_rgba = [0.6, 0.65, 0.7, 1]
        vis, col, masses, pos, orn, jtypes, axes, com = [], [], [], [], [], [], [], []
        link_mass = (7.369, 13.051, 3.989, 2.1, 1.98, 0.615)
        for i, segs in enumerate(arm_segments(prm)):
            cs, vs = _shape_arrays(c, segs, [], arm_rgba)
            col.append(cs), vis.append(vs)
            masses.append(link_mass[i])
            com.append(list(np.mean([s.centre for s in segs], axis=0)) if segs else [0, 0, 0])
            if i == 0:
                pos.append([0, 0, 0]), orn.append([0, 0, 0, 1])
            else:
                j = i - 1  # fixed part of DH transform j, in link j's frame
                pos.append([prm.a[j], 0, prm.d[j]])
                orn.append(_quat(Rotation.from_euler("x", prm.alpha[j]).as_matrix()))
            jtypes.append(p.JOINT_REVOLUTE)
            axes.append([0, 0, 1])
        # 6: flange (fixed, DH 6 fixed part): the tool flange disc just behind its face
        pos.append([prm.a[5], 0, prm.d[5]]), orn.append(_quat(Rotation.from_euler("x", prm.alpha[5]).as_matrix()))
        cs, vs = _shape_arrays(c, [Segment((0, 0, -FLANGE_THICKNESS), (0, 0, 0), FLANGE_RADIUS, capsule=False)], [],
                               [0.5, 0.5, 0.55, 1])
        col.append(cs), vis.append(vs), masses.append(0.01), jtypes.append(p.JOINT_FIXED), axes.append([0, 0, 1])
        com.append([0, 0, -FLANGE_THICKNESS / 2])
        # 7: gripper body (coupling and housing), fixed below the flange
        finger_mass = 0.06
        palm_half = [g.palm_width / 2, g.palm_depth / 2, g.palm_height / 2]
        pos.append([0, 0, g.palm_offset]), orn.append([0, 0, 0, 1])
        cs, vs = _shape_arrays(c, [], [([0, 0, 0], palm_half)], [0.2, 0.2, 0.2, 1])
        col.append(cs), vis.append(vs), com.append([0, 0, 0])
        masses.append(g.mass_kg - 2 * finger_mass), jtypes.append(p.JOINT_FIXED), axes.append([0, 0, 1])
        # 8, 9: fingers, prismatic along tool x; joint value = half the opening
        tcp_in_palm = g.tcp_offset - g.palm_offset
        for side in (-1, 1):
            pos.append([side * g.finger_thickness / 2, 0, tcp_in_palm]), orn.append([0, 0, 0, 1])
            cs, vs = _shape_arrays(c, [], finger_boxes(g, side), [0.1, 0.1, 0.1, 1])
            col.append(cs), vis.append(vs), com.append([0, 0, 0])
            masses.append(finger_mass), jtypes.append(p.JOINT_PRISMATIC), axes.append([side, 0, 0])
        n = len(masses)
        parents = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8]
        base_vis = p.createVisualShape(p.GEOM_CYLINDER, radius=0.075, length=0.1, rgbaColor=[0.3, 0.3, 0.35, 1],
                                       physicsClientId=c)
        body = p.createMultiBody(
            baseMass=0, baseVisualShapeIndex=base_vis, basePosition=list(cfg.base_position),
            linkMasses=masses, linkCollisionShapeIndices=col, linkVisualShapeIndices=vis,
            linkPositions=pos, linkOrientations=orn,
            linkInertialFramePositions=com, linkInertialFrameOrientations=[[0, 0, 0, 1]] * n,
            linkParentIndices=parents, linkJointTypes=jtypes, linkJointAxis=axes, physicsClientId=c,
        )
        lo, hi = self.params.joint_limits
        for j in range(6):
            p.changeDynamics(body, j, jointLowerLimit=lo, jointUpperLimit=hi, linearDamping=0, angularDamping=0,
                             physicsClientId=c)
        stroke = self.gripper_config.stroke_m / 2
        for j in FINGER_LINKS:
            p.changeDynamics(body, j, jointLowerLimit=0.0, jointUpperLimit=stroke, lateralFriction=cfg.pad_friction,
                             spinningFriction=0.01, frictionAnchor=1, physicsClientId=c)
        # The arm does not collide with itself: neighbours overlap at every joint by construction, and the
        # real controller's self-collision limits are not what the cell simulates.
        for a in range(-1, n):
            for b in range(a + 1, n):
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

    def _drive(self, path: list[np.ndarray], settle_steps: int = 60, until=None) -> bool:
        """Follow ``path`` one physics step per point, then let the arm settle on its last point for
        ``settle_steps``; with ``until``, stop where it first returns True (and return True), settling included:
        the joints trail their targets by a few millimetres at the tool, and a guarded move is guarded until
        the arm has arrived, as the real controller's is."""
        for k in range(len(path) + settle_steps):
            if k < len(path):
                self._target_q = path[k]
                self._hold()
            self._step()
            if until is not None and until():
                self.stop()
                self._step(settle_steps)
                return True
        return False

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
        """Straight-line TCP move (position interpolated, orientation slerped): IK at knots ``ik_every`` physics
        steps apart (a few millimetres), joints interpolated in between (off the line by micrometres)."""
        self._linear(pose, speed)
        return self.tcp_pose()

    def descend(self, pose: np.ndarray, speed: float) -> bool:
        """Guarded straight-line move: stop where the scene pushes on the arm or tool with more than
        ``contact_force_n`` newtons, back off ``contact_backoff`` along the way back, and return True; False
        when ``pose`` was reached without contact."""
        start = self.tcp_pose()
        self.stopped_on_contact = self._linear(pose, speed,
                                               until=lambda: self.contact_force() > self.config.contact_force_n)
        if not self.stopped_on_contact:
            return False
        self._linear(backed_off(start, self.tcp_pose(), self.config.contact_backoff), speed)
        return True

    def contact_force(self) -> float:
        """Total normal force (newtons) of every contact between the robot and anything else."""
        return float(sum(pt[9] for pt in p.getContactPoints(bodyA=self.body, physicsClientId=self.client)
                         if pt[2] != self.body))

    def _linear(self, pose: np.ndarray, speed: float, until=None) -> bool:
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
        knots = sorted(set(range(self.ik_every, n, self.ik_every)) | {n})
        for k in knots:
            t = k / n
            T = np.eye(4)
            T[:3, :3] = slerp(t).as_matrix()
            T[:3, 3] = start[:3, 3] + t * (pose[:3, 3] - start[:3, 3])
            q_prev, q = q, ik(T @ T_tcp_flange, q, self.params)
            steps = k - len(path)
            path.extend(q_prev + (q - q_prev) * (i + 1) / steps for i in range(steps))
        vmax = np.asarray(self.params.max_joint_speed)
        dq = np.abs(np.diff(np.vstack([self.joints(), path]), axis=0)) * self.config.steps_per_second
        if np.any(dq > vmax * 1.001):
            raise LimitError("linear move would exceed a joint speed limit (near a singularity); slow down")
        return self._drive(path, until=until)

    def stop(self) -> None:
        self._target_q = self.joints()
        self._hold()


class SimGripper(Gripper):
    """Two force-limited prismatic fingers; ``close`` reports contact like Robotiq's OBJ status.

    Moves run at a jaw speed within the gripper's range (``GripperConfig.closing_speed`` unless told): the
    finger targets follow a ramp, so the fingers meet an object at that speed and never jump."""

    settle_close_s = 0.25  # after the ramp: the fingers catch up and the grip force builds
    settle_open_s = 0.15
    open_force = 60.0  # newtons, as the hardware driver opens
    pinch_force_n = 5.0  # a finger pressed outwards by a body with this much squeezes it (``pinching``)

    def __init__(self, robot: SimUR10e):
        self.robot = robot
        self.config = robot.gripper_config
        self.stroke = self.config.stroke_m

    def _speed(self, speed: float | None) -> float:
        g = self.config
        speed = g.closing_speed if speed is None else speed
        if not g.min_speed <= speed <= g.max_speed:
            raise LimitError(f"gripper speed {speed * 1000:.0f} mm/s is outside the {g.min_speed * 1000:.0f}-"
                             f"{g.max_speed * 1000:.0f} mm/s range")
        return speed

    def _command(self, width: float, force: float, speed: float, settle_s: float) -> None:
        """Ramp the opening from the present one to ``width`` at ``speed`` (jaw speed, m/s), then hold."""
        r = self.robot
        rate = r.config.steps_per_second
        start = self.width()
        n = int(np.ceil(abs(width - start) / speed * rate))
        # each finger travels from the centre outwards: joint value = half opening
        for k in range(1, n + 1):
            self._target(start + (width - start) * k / n, force)
            r._step()
        self._target(width, force)
        r._step(int(round(settle_s * rate)))

    def _target(self, width: float, force: float) -> None:
        r = self.robot
        p.setJointMotorControlArray(r.body, r.finger_joints, p.POSITION_CONTROL, targetPositions=[width / 2] * 2,
                                    forces=[force] * 2, positionGains=[0.2] * 2, physicsClientId=r.client)

    def open(self, width: float | None = None, speed: float | None = None) -> None:
        width = self.stroke if width is None else width
        if not 0 <= width <= self.stroke + 1e-9:
            raise LimitError(f"gripper opening {width * 1000:.1f} mm is outside the {self.stroke * 1000:.0f} mm stroke")
        self._command(min(width, self.stroke), self.open_force, self._speed(speed), self.settle_open_s)

    def close(self, force: float = 40.0, speed: float | None = None) -> bool:
        g = self.config
        if not g.min_force_n <= force <= g.max_force_n:
            raise LimitError(f"gripper force {force} N is outside the {g.min_force_n:g}-{g.max_force_n:g} N range")
        self._command(0.0, force, self._speed(speed), self.settle_close_s)
        # stopped on something rather than fully closed, or closed on a glass wall thinner than that: both
        # fingers pressing on one body
        return self.width() > 0.004 or self.pinching() is not None

    def pinching(self) -> int | None:
        """The body both fingers squeeze between them, or None: each finger pressed outwards, along its closing
        direction, by that body with at least ``pinch_force_n``. Fingertips that close above an object and
        graze its top, or rest on it, touch it too but squeeze nothing: a Robotiq's fingers would close fully
        there and report no object."""
        r = self.robot
        pressed = []
        for side, link in zip((-1, 1), r.finger_joints):  # (the fingers' joint axes: ``SimUR10e``)
            rot = np.array(p.getMatrixFromQuaternion(p.getLinkState(r.body, link, physicsClientId=r.client)[5]))
            outwards = side * rot.reshape(3, 3)[:, 0]  # this finger's opening direction in the world
            push: dict[int, float] = {}
            for pt in p.getContactPoints(bodyA=r.body, linkIndexA=link, physicsClientId=r.client):
                if pt[2] != r.body:  # (normal on the other body, towards the finger)
                    push[pt[2]] = push.get(pt[2], 0.0) + pt[9] * float(np.dot(pt[7], outwards))
            pressed.append({body for body, force in push.items() if force >= self.pinch_force_n})
        both = set.intersection(*pressed)
        return min(both) if both else None

    def width(self) -> float:
        r = self.robot
        return float(sum(s[0] for s in p.getJointStates(r.body, r.finger_joints, physicsClientId=r.client)))
