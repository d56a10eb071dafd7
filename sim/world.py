"""A complete simulated cell for grasp trials: table scene, UR10e with gripper, fixed RealSense-like camera.

One PyBullet client per world (``SimWorld.client``), shared explicitly by scene, robot and camera. The same
seed builds the same scene, so every depth source can be tried on identical scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pybullet as p
from scipy.spatial.transform import Rotation

from grasping.cell import Cell
from pipeline.config import DEFAULT_WORKSPACE
from pipeline.types import RGBDFrame
from sim.camera import SimCamera, SimCameraConfig
from sim.camera_model import look_at
from sim.robot import FINGER_LINKS, TOOL_LINKS, SimRobotConfig, SimUR10e
from sim.scene import CLUTTER_LAYOUTS, SceneConfig, TabletopScene
from sim.sensor import SENSORS

# Arm folded aside, out of the camera's view, while the camera captures.
OBSERVE_Q = np.array([2.2, -2.2, 2.0, -1.4, -1.5708, 0.0])
ARM_TOUCH_M = 0.001  # a contact point closer than this (metres; negative: overlap) is a touch


@dataclass(frozen=True)
class WorldConfig:
    camera: SimCameraConfig = SimCameraConfig(width=320, height=240)
    camera_eye: tuple[float, float, float] = (0.55, 0.0, 0.85)
    camera_target: tuple[float, float, float] = (0.75, 0.0, 0.0)
    scene: SceneConfig = SceneConfig(min_glass=1, max_glass=4, min_opaque=0, max_opaque=2)
    lift_success_m: float = 0.05  # an object counts as picked when raised this much and touching a finger
    glass_is_target: bool = True  # lifting an opaque distractor counts as a failure
    min_grasp_mass_kg: float = 0.08
    knocked_m: float = 0.015  # an object moved this far, or
    knocked_deg: float = 12.0  # tipped this much (its axis), by the descending gripper was hit
    rolling_friction: float = 0.01  # rolling resistance while the scene settles (a glass on its side stops)
    layout: str = "scatter"  # "scatter" (``TabletopScene.populate``), or a clutter layout: "pile" or "packed"
    objects: int = 5  # how many objects a clutter layout holds
    clutter_margin_m: float = 0.10  # a clutter scene's workspace: the drop region grown by this much
    # Contacts are solved with this many iterations once the scene has settled (it settles with 50, so scenes
    # match the generated data sets): with 50, force-limited fingers closing on a glass pass through its 2-3 mm
    # wall and meet inside it
    grip_solver_iterations: int = 200

    def __post_init__(self) -> None:
        if self.layout not in ("scatter",) + CLUTTER_LAYOUTS:
            raise ValueError(f"WorldConfig.layout: unknown {self.layout!r}; choose scatter, "
                             f"{', '.join(CLUTTER_LAYOUTS)}")

    def with_layout(self, layout: str, objects: int = 5) -> WorldConfig:
        """The same cell holding a clutter scene (``layout`` "pile" or "packed", ``objects`` objects) to be
        cleared: every object, glass or opaque, is then a target (the table is to be emptied)."""
        return replace(self, layout=layout, objects=objects, glass_is_target=layout == "scatter")

    def with_sensor(self, sensor: str) -> WorldConfig:
        """The same cell photographed by another camera model (``sim.sensor.SENSORS``: d435, l515, d415, ...)."""
        return replace(self, camera=replace(self.camera, sensor=sensor))

    def with_renderer(self, renderer: str) -> WorldConfig:
        """The same cell photographed by another renderer: "fast", or "mitsuba" (path traced, in a bright room
        with natural table, floor and wall surfaces, as a real cell stands)."""
        return replace(self, camera=replace(self.camera, renderer=renderer, room=renderer == "mitsuba"))


def _set_rolling(scene: TabletopScene, value: float) -> None:
    """Every object's rolling resistance (high while a scene settles, so a glass on its side stops)."""
    for obj in scene.objects:
        for link in range(-1, p.getNumJoints(obj.body, physicsClientId=scene.client)):
            p.changeDynamics(obj.body, link, rollingFriction=value, physicsClientId=scene.client)


class SimWorld(Cell):
    """The simulated ``Cell``: capture, pick and judge from physics on the scene of ``seed``."""

    def __init__(self, seed: int, config: WorldConfig = WorldConfig(), gui: bool = False, populate=None):
        """``populate(scene, rng)`` replaces the random scene (for hand-built test scenes)."""
        self.seed, self.config = seed, config
        self.camera_model, self.renderer = config.camera.sensor, config.camera.renderer
        self.sensor = SENSORS[self.camera_model].family
        self.client = p.connect(p.GUI if gui else p.DIRECT)
        c = self.client
        p.setGravity(0, 0, -9.81, physicsClientId=c)
        p.setPhysicsEngineParameter(numSolverIterations=50, deterministicOverlappingPairs=1, physicsClientId=c)
        rng = np.random.default_rng([seed, 77])
        self.scene = TabletopScene(c, DEFAULT_WORKSPACE)
        if populate is not None:
            populate(self.scene, rng)
        elif config.layout == "scatter":
            self.scene.populate(rng, config.scene)
        else:
            self.scene.populate_clutter(rng, config.layout, config.objects, config.scene)
        # A real cell photographs objects at rest: let rolling glasses stop (or leave the table) first, or the
        # approach check would blame the gripper for motion it did not cause. Bullet's default rolling
        # resistance lets a glass on its side circle for ever; a real one stops within a second or two.
        # (Only while settling: it would also make the fingers' grip unrealistically firm.)
        _set_rolling(self.scene, config.rolling_friction)
        self.at_rest = self.scene.settle_until_rest()
        _set_rolling(self.scene, config.scene.rolling_friction)
        # Bullet's solver lets force-limited fingers squeeze very light bodies out; grasped bodies weigh at least
        # ``min_grasp_mass_kg`` (set after the scene has settled, so scenes match the generated data sets).
        for obj in self.scene.objects:
            if obj.model.mass < config.min_grasp_mass_kg:
                for link in range(-1, p.getNumJoints(obj.body, physicsClientId=c)):
                    p.changeDynamics(obj.body, link, mass=config.min_grasp_mass_kg / (1 + p.getNumJoints(
                        obj.body, physicsClientId=c)), physicsClientId=c)
        p.setPhysicsEngineParameter(numSolverIterations=config.grip_solver_iterations, physicsClientId=c)
        if config.layout != "scatter":  # a clutter round begins with what lies in its workspace
            for obj in [o for o in self.scene.objects if not self._in_workspace(o.body)]:
                self.scene.remove(obj)
        self.robot = SimUR10e(c, SimRobotConfig())
        self.gripper = self.robot.gripper
        self.robot.move_joints(OBSERVE_Q, speed=2.0)
        self.camera = SimCamera(self.scene, look_at(config.camera_eye, config.camera_target, up=(1.0, 0.0, 0.0)),
                                config.camera, rng=rng)
        self.camera.connect()
        self._poses: dict[int, tuple] = {}  # every object's pose when the pick began (``mark``)
        self._touched: set[int] = set()  # the objects the robot has touched since ``mark``
        self.held: int | None = None  # the body the last pick lifted and carried off (``verify``)
        self.arm_hit: tuple[int, int] | None = None  # (link, body): an arm link or the body touched the scene

    def wait(self, seconds: float) -> None:
        self.robot.wait(seconds)

    def capture(self) -> RGBDFrame:
        """A frame of the scene with the arm folded out of view (it is moved there first after a pick)."""
        if np.abs(self.robot.joints() - OBSERVE_Q).max() > 1e-2:
            self.robot.move_joints(OBSERVE_Q, speed=2.0)
        return self.camera.read()

    def describe(self) -> dict:
        return {"objects": [o.model.kind for o in self.scene.objects], "camera": self.camera_model}

    def objects(self) -> list[dict]:
        """Every object's kind, whether it is glass, the (x, y) middle of its box and the height of its top."""
        out = []
        for o in self.scene.objects:
            lo, hi = self.scene.bounds(o.body)
            out.append({"kind": o.model.kind, "glass": bool(o.transparent), "centre": (lo[:2] + hi[:2]) / 2,
                        "top": float(hi[2])})
        return out

    def truth(self, grasp) -> dict:
        """The object nearest the grasp centre (its bounding box's centre, seen from above), and where the grasp
        stands against it: the centre's offsets from that object's middle along and across the closing direction,
        the pads' centre below the object's top, all in millimetres, and how far the object leans. A record of
        why a pick failed (the perception's depth against the scene's truth); no judge reads it."""
        x, y, z = grasp.center
        known = self.objects()
        if not known:
            return {}
        i = min(range(len(known)), key=lambda i: float(np.hypot(x - known[i]["centre"][0], y - known[i]["centre"][1])))
        obj, near = self.scene.objects[i], known[i]
        d = np.array([np.cos(grasp.yaw), np.sin(grasp.yaw)])
        off = np.array([x, y]) - near["centre"]
        up = Rotation.from_quat(self.scene.pose(obj.body)[1]).apply([0.0, 0.0, 1.0])[2]
        return {"object": near["kind"], "glass": near["glass"],
                "along_mm": round(float(off @ d) * 1000, 1), "across_mm": round(float(off @ [-d[1], d[0]]) * 1000, 1),
                "below_top_mm": round(float(near["top"] - z) * 1000, 1),
                "tilt_deg": round(float(np.degrees(np.arccos(np.clip(up, -1.0, 1.0)))), 1)}

    def mark(self) -> None:
        """Remember every object's pose before a pick and start noting which objects the robot touches, and the
        first touch of the table or an object by an arm link or the gripper body (``arm_hit``: (link, body);
        an arm link's touch wins over the gripper body's)."""
        self._poses = {o.body: self.scene.pose(o.body) for o in self.scene.objects}
        self._touched = set()
        self.arm_hit = None
        self.robot.stopped_on_contact = False
        bodies = {o.body for o in self.scene.objects}
        scene_bodies = bodies | {self.scene.table_id}
        robot, c, fingers = self.robot.body, self.client, set(FINGER_LINKS)

        def note_contacts() -> None:
            # one query per step: every contact of the robot, the robot reported as body A
            for pt in p.getContactPoints(bodyA=robot, physicsClientId=c):
                b, link = pt[2], pt[3]
                if b in bodies:
                    self._touched.add(b)
                if link not in fingers and b in scene_bodies and pt[8] < ARM_TOUCH_M and (
                        self.arm_hit is None or (self.arm_hit[0] in TOOL_LINKS and link not in TOOL_LINKS)):
                    self.arm_hit = (link, b)

        self.robot.step_watchers[:] = [note_contacts]

    def check_approach(self) -> tuple[bool, str]:
        """Judge the descent from physics: the open gripper must reach the grasp pose (or the contact its guarded
        descent stopped on) without pushing or tipping any object it touched (a real glass hit by a finger falls
        over or breaks). Objects the robot never touched are not its doing. A touch of the table or an object by
        an arm link fails the descent on its own, and so does one by the gripper body that the descent did not
        stop on: the real arm would have struck the scene."""
        self.robot.step_watchers.clear()
        if self.arm_hit is not None and not (self.arm_hit[0] in TOOL_LINKS and self.robot.stopped_on_contact):
            return False, "arm hit the scene on the way down"
        for o in self.scene.objects:
            if o.body not in self._touched:
                continue
            (p0, q0), (p1, q1) = self._poses[o.body], self.scene.pose(o.body)
            moved = float(np.linalg.norm(np.subtract(p1, p0)))
            up0, up1 = Rotation.from_quat(q0).apply([0, 0, 1]), Rotation.from_quat(q1).apply([0, 0, 1])
            tilt = np.degrees(np.arccos(np.clip(np.dot(up0, up1), -1.0, 1.0)))  # a spin about its axis is harmless
            if moved > self.config.knocked_m or tilt > self.config.knocked_deg:
                return False, "hit an object on the way down"
        return True, "ok"

    def verify(self) -> tuple[bool, str]:
        """Judge from physics: a transparent object raised by ``lift_success_m`` and touching a finger.
        Lifting an opaque distractor instead is a failure: the glass is the target."""
        r = self.robot
        for o in self.scene.objects:
            z = self.scene.pose(o.body)[0][2]
            z0 = self._poses[o.body][0][2] if o.body in self._poses else z
            raised = z - z0 > self.config.lift_success_m
            touching = any(p.getContactPoints(r.body, o.body, linkIndexA=j, physicsClientId=self.client)
                           for j in r.finger_joints)
            if raised and touching:
                if o.transparent or not self.config.glass_is_target:
                    self.held = o.body  # carried off the table (``remove_picked``)
                    return True, "ok"
                return False, "picked an opaque distractor"
        if r.gripper.width() < 0.004:
            return False, "empty gripper"
        return False, "dropped"

    def _in_workspace(self, body: int) -> bool:
        """On the table and within the drop region grown by ``clutter_margin_m``."""
        ws, margin = self.scene.workspace, self.config.clutter_margin_m
        (x, y, z), _ = self.scene.pose(body)
        return (z > ws.table_z - 0.05 and abs(x - ws.object_center[0]) <= ws.object_half_size[0] + margin
                and abs(y - ws.object_center[1]) <= ws.object_half_size[1] + margin)

    def objects_left(self) -> int:
        """How many objects lie in the workspace (the table to be cleared)."""
        return sum(self._in_workspace(o.body) for o in self.scene.objects)

    def remove_picked(self) -> dict:
        """After a pick: remove the object a successful pick carried off, let what it disturbed come to rest,
        and remove whatever left the table or the workspace. Returns ``{"removed": kind or None, "gone":
        [kinds]}`` (``gone``: removed without being picked, e.g. knocked off the table)."""
        removed = None
        for obj in [o for o in self.scene.objects if o.body == self.held]:
            removed = obj.model.kind
            self.scene.remove(obj)
        self.held = None
        before = {o.body: o.model.kind for o in self.scene.objects}
        _set_rolling(self.scene, self.config.rolling_friction)
        self.scene.settle_until_rest(max_steps=480, stops=1)
        _set_rolling(self.scene, self.config.scene.rolling_friction)
        for obj in [o for o in self.scene.objects if not self._in_workspace(o.body)]:
            self.scene.remove(obj)
        left = {o.body for o in self.scene.objects}
        return {"removed": removed, "gone": [kind for body, kind in before.items() if body not in left]}

    def close(self) -> None:
        if p.isConnected(physicsClientId=self.client):
            p.disconnect(physicsClientId=self.client)
