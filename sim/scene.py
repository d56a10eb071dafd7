"""A PyBullet tabletop with glassware and opaque distractors dropped at random poses and settled by physics.

One ``TabletopScene`` owns nothing global: every call passes its explicit ``physicsClientId``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from pipeline.config import DEFAULT_WORKSPACE, WorkspaceConfig
from sim.glassware import GLASS_KINDS, LAB_KINDS, OPAQUE_KINDS, ObjectModel, make_glass, make_opaque

# Where hidden bodies are parked during the background render pass.
_PARKING = (0.0, 0.0, -50.0)
TABLE_THICKNESS = 0.04
TABLE_FRICTION = 0.7  # a wooden or laminate table top (see SceneConfig.lateral_friction)
FLOOR_DROP = 0.75  # the floor slab's centre below the table top, seen past the table edge
FLOOR_HALF_THICKNESS = 0.01  # the floor's visible top is FLOOR_DROP - FLOOR_HALF_THICKNESS below the table top
AABB_MARGIN = 0.002  # metres: Bullet's collision margin around the boxes ``p.getAABB`` reports
CLUTTER_LAYOUTS = ("pile", "packed")  # TabletopScene.populate_clutter: a heap, or upright side by side


@dataclass
class SceneObject:
    body: int
    model: ObjectModel

    @property
    def transparent(self) -> bool:
        return self.model.transparent


@dataclass(frozen=True)
class SceneConfig:
    """How many objects and how they are dropped."""

    min_glass: int = 1
    max_glass: int = 6
    min_opaque: int = 0
    max_opaque: int = 2
    drop_height: tuple[float, float] = (0.02, 0.12)  # above the table, metres
    upright_prob: float = 0.7  # share of objects dropped upright (the rest at random orientations)
    settle_steps: int = 360  # physics steps at 240 Hz
    # Bullet multiplies the friction coefficients of two touching bodies: objects 0.67, table 0.7 and finger
    # pads 1.5 (sim.robot) give glass on glass 0.45, glass on the table 0.47 and a rubber pad on glass 1.0.
    lateral_friction: float = 0.67
    rolling_friction: float = 0.0005
    glass_kinds: tuple[str, ...] = GLASS_KINDS  # drawn uniformly (list a kind twice to draw it twice as often)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.glass_kinds) - set(GLASS_KINDS + LAB_KINDS))
        if not self.glass_kinds or unknown:
            raise ValueError(f"SceneConfig.glass_kinds: unknown or no kinds {unknown or self.glass_kinds}; "
                             f"choose from {', '.join(GLASS_KINDS + LAB_KINDS)}")
        if not (0 <= self.min_glass <= self.max_glass and 0 <= self.min_opaque <= self.max_opaque):
            raise ValueError(f"SceneConfig: object counts must satisfy 0 <= min <= max, got {self}")


class TabletopScene:
    """Table, floor and objects in one PyBullet client."""

    def __init__(self, client: int, workspace: WorkspaceConfig = DEFAULT_WORKSPACE):
        self.client = client
        self.workspace = workspace
        self.objects: list[SceneObject] = []
        self._hidden: dict[int, tuple] = {}
        self.table_id, self.floor_id = self._build_static()

    # ----------------------------------------------------------------------------------------------------
    def _build_static(self) -> tuple[int, int]:
        ws, c = self.workspace, self.client
        hx, hy = ws.table_half_size
        half = [hx, hy, TABLE_THICKNESS / 2]
        centre = [ws.table_center[0], ws.table_center[1], ws.table_z - TABLE_THICKNESS / 2]
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=c)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=[1, 1, 1, 1], physicsClientId=c)
        table = p.createMultiBody(0, col, vis, centre, physicsClientId=c)
        p.changeDynamics(table, -1, lateralFriction=TABLE_FRICTION, physicsClientId=c)
        fhalf = [4.0, 4.0, FLOOR_HALF_THICKNESS]
        fvis = p.createVisualShape(p.GEOM_BOX, halfExtents=fhalf, rgbaColor=[1, 1, 1, 1], physicsClientId=c)
        floor = p.createMultiBody(0, -1, fvis, [ws.table_center[0], 0, ws.table_z - FLOOR_DROP], physicsClientId=c)
        return table, floor

    def add_object(self, model: ObjectModel, position, orientation, config: SceneConfig = SceneConfig()) -> SceneObject:
        """Create a body for ``model`` at ``position`` (base frame, metres) and quaternion ``orientation``."""
        c = self.client
        vis = p.createVisualShape(p.GEOM_MESH, vertices=model.vertices.tolist(),
                                  indices=model.faces.ravel().tolist(), rgbaColor=model.rgba, physicsClientId=c)
        cols = [p.createCollisionShape(p.GEOM_MESH, vertices=part.tolist(), physicsClientId=c)
                for part in model.collision_parts]
        n_links = len(cols) - 1
        # Compound-convex bodies: the first hull is the base, the others are rigidly attached links.
        share = model.mass / len(cols)
        body = p.createMultiBody(
            baseMass=share if n_links else model.mass, baseCollisionShapeIndex=cols[0],
            baseVisualShapeIndex=vis, basePosition=list(position), baseOrientation=list(orientation),
            linkMasses=[share] * n_links, linkCollisionShapeIndices=cols[1:], linkVisualShapeIndices=[-1] * n_links,
            linkPositions=[[0, 0, 0]] * n_links, linkOrientations=[[0, 0, 0, 1]] * n_links,
            linkInertialFramePositions=[[0, 0, 0]] * n_links, linkInertialFrameOrientations=[[0, 0, 0, 1]] * n_links,
            linkParentIndices=[0] * n_links, linkJointTypes=[p.JOINT_FIXED] * n_links,
            linkJointAxis=[[0, 0, 1]] * n_links, physicsClientId=c,
        )
        for link in range(-1, n_links):
            p.changeDynamics(body, link, lateralFriction=config.lateral_friction,
                             rollingFriction=config.rolling_friction, spinningFriction=0.001, physicsClientId=c)
        obj = SceneObject(body, model)
        self.objects.append(obj)
        return obj

    def populate(self, rng: np.random.Generator, config: SceneConfig = SceneConfig()) -> None:
        """Drop a random set of glass and opaque objects and let them settle. Objects that leave the table
        or end up resting on another object's top are kept (that is clutter), those off the table removed."""
        n_glass = int(rng.integers(config.min_glass, config.max_glass + 1))
        n_opaque = int(rng.integers(config.min_opaque, config.max_opaque + 1))
        models = [make_glass(str(rng.choice(config.glass_kinds)), rng) for _ in range(n_glass)]
        models += [make_opaque(str(rng.choice(OPAQUE_KINDS)), rng) for _ in range(n_opaque)]
        ws = self.workspace
        placed: list[tuple[float, float, float]] = []
        for model in models:
            xy = self._free_spot(rng, model.max_radius, placed)
            placed.append((xy[0], xy[1], model.max_radius))
            z = ws.table_z + rng.uniform(*config.drop_height)
            if rng.random() < config.upright_prob:
                quat = p.getQuaternionFromEuler([0, 0, rng.uniform(0, 2 * np.pi)])
            else:
                quat = p.getQuaternionFromEuler(list(rng.uniform(0, 2 * np.pi, 3)))
                z += model.max_radius + model.height / 2
            self.add_object(model, (xy[0], xy[1], z), quat, config)
        self.settle(config.settle_steps)
        self._drop_fallen()

    # Clutter scenes for the clutter-removal protocol (``grasping.clutter``): a fixed number of objects, mostly
    # glass, dropped in a heap (``populate_pile``) or stood upright side by side (``populate_packed``).
    def populate_clutter(self, rng: np.random.Generator, layout: str, n: int, config: SceneConfig = SceneConfig(),
                         opaque_share: float = 0.2) -> None:
        """``n`` objects in ``layout`` ("pile" or "packed"); each is opaque with probability ``opaque_share``
        (at least one is glass), glass kinds drawn from ``config.glass_kinds``."""
        if layout not in CLUTTER_LAYOUTS:
            raise ValueError(f"unknown clutter layout {layout!r}; choose one of {', '.join(CLUTTER_LAYOUTS)}")
        if n < 1:
            raise ValueError(f"a clutter scene needs at least one object, got {n}")
        n_opaque = min(int(rng.binomial(n, opaque_share)), n - 1)
        models = [make_glass(str(rng.choice(config.glass_kinds)), rng) for _ in range(n - n_opaque)]
        models += [make_opaque(str(rng.choice(OPAQUE_KINDS)), rng) for _ in range(n_opaque)]
        models = [models[i] for i in rng.permutation(n)]  # distractors anywhere in the heap or the row
        (self._pile if layout == "pile" else self._packed)(rng, models, config)
        self._drop_fallen()

    def populate_pile(self, rng: np.random.Generator, n: int, config: SceneConfig = SceneConfig(),
                      opaque_share: float = 0.2) -> None:
        """A heap: ``n`` objects dropped one after another over a small disc, each at a random orientation
        (upright now and then) just above what already lies there, so they fall onto each other."""
        self.populate_clutter(rng, "pile", n, config, opaque_share)

    def populate_packed(self, rng: np.random.Generator, n: int, config: SceneConfig = SceneConfig(),
                        opaque_share: float = 0.2) -> None:
        """``n`` objects standing upright side by side, 5-20 mm apart."""
        self.populate_clutter(rng, "packed", n, config, opaque_share)

    def _pile(self, rng: np.random.Generator, models: list[ObjectModel], config: SceneConfig,
              radius: float = 0.05, upright_prob: float = 0.3, settle_steps: int = 120) -> None:
        ws, c = self.workspace, self.client
        centre = np.array(ws.object_center) + rng.uniform(-0.3, 0.3, 2) * np.array(ws.object_half_size)
        for model in models:
            r, th = radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
            xy = centre + r * np.array([np.cos(th), np.sin(th)])
            if rng.random() < upright_prob:
                quat = p.getQuaternionFromEuler([0, 0, rng.uniform(0, 2 * np.pi)])
            else:
                quat = p.getQuaternionFromEuler(list(rng.uniform(0, 2 * np.pi, 3)))
            top = max((self._z_extent(o.body)[1] for o in self.objects), default=ws.table_z)
            obj = self.add_object(model, (xy[0], xy[1], top + 1.0), quat, config)
            low = self._z_extent(obj.body)[0]
            pos, orn = self.pose(obj.body)  # lower it until its lowest point is 1-4 cm above the heap
            drop = top + rng.uniform(0.01, 0.04)
            p.resetBasePositionAndOrientation(obj.body, (pos[0], pos[1], pos[2] - (low - drop)), orn,
                                              physicsClientId=c)
            self.settle(settle_steps)

    def _packed(self, rng: np.random.Generator, models: list[ObjectModel], config: SceneConfig,
                gap: tuple[float, float] = (0.005, 0.02), tries: int = 60) -> None:
        ws = self.workspace
        lo = np.array(ws.object_center) - np.array(ws.object_half_size)
        hi = np.array(ws.object_center) + np.array(ws.object_half_size)
        placed: list[tuple[float, float, float]] = []
        for model in models:
            rad = model.max_radius
            if not placed:
                xy = np.array(ws.object_center) + rng.uniform(-0.2, 0.2, 2) * np.array(ws.object_half_size)
            else:  # beside one already standing, at a small gap, clear of the others, inside the region
                for _ in range(tries):
                    x0, y0, r0 = placed[int(rng.integers(len(placed)))]
                    th = rng.uniform(0, 2 * np.pi)
                    xy = np.array([x0, y0]) + (r0 + rad + rng.uniform(*gap)) * np.array([np.cos(th), np.sin(th)])
                    inside = np.all(xy - rad >= lo) and np.all(xy + rad <= hi)
                    if inside and min(np.hypot(xy[0] - x, xy[1] - y) - r - rad for x, y, r in placed) >= gap[0] - 1e-9:
                        break
                else:  # no room beside the others: the freest spot of the region
                    xy = np.array(self._free_spot(rng, rad, placed))
            placed.append((float(xy[0]), float(xy[1]), rad))
            quat = p.getQuaternionFromEuler([0, 0, rng.uniform(0, 2 * np.pi)])
            self.add_object(model, (float(xy[0]), float(xy[1]), ws.table_z + 0.002), quat, config)
        self.settle(config.settle_steps)

    def _boxes(self, body: int) -> np.ndarray:
        """Bullet's boxes around each of ``body``'s links: (link, low or high corner, xyz), with its margin."""
        return np.array([p.getAABB(body, link, physicsClientId=self.client)
                         for link in range(-1, p.getNumJoints(body, physicsClientId=self.client))])

    def bounds(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        """The lowest and highest corners of the box around ``body``'s collision shape (all its links; Bullet pads
        the boxes it reports by ``AABB_MARGIN``, taken off here)."""
        boxes = self._boxes(body)
        return boxes[:, 0].min(0) + AABB_MARGIN, boxes[:, 1].max(0) - AABB_MARGIN

    def _z_extent(self, body: int) -> tuple[float, float]:
        """Lowest and highest point of ``body``'s collision shape (all its links), as Bullet reports them (with
        its margin: the clutter scenes were laid out by these)."""
        boxes = self._boxes(body)
        return float(boxes[:, 0, 2].min()), float(boxes[:, 1, 2].max())

    def _free_spot(self, rng, radius, placed) -> tuple[float, float]:
        ws = self.workspace
        best, best_gap = None, -np.inf
        for _ in range(30):
            xy = np.array(ws.object_center) + rng.uniform(-1, 1, 2) * np.array(ws.object_half_size)
            gap = min((np.hypot(xy[0] - x, xy[1] - y) - r - radius for x, y, r in placed), default=np.inf)
            if gap > 0.005:
                return float(xy[0]), float(xy[1])
            if gap > best_gap:
                best, best_gap = xy, gap
        return float(best[0]), float(best[1])

    def settle(self, steps: int) -> None:
        for _ in range(steps):
            p.stepSimulation(physicsClientId=self.client)

    def settle_until_rest(self, max_steps: int = 1200, lin_tol: float = 0.003, ang_tol: float = 0.05,
                          check_every: int = 24, stops: int = 3) -> bool:
        """Step until every object rests (speed below ``lin_tol`` m/s and ``ang_tol`` rad/s). Bullet's rolling
        resistance is weak, so a glass on its side can circle for ever: after ``max_steps`` the moving bodies
        are stopped and left to settle again, up to ``stops`` times. Then whatever left the table is removed.
        Returns whether everything came to rest."""

        def moving() -> list[int]:
            out = []
            for o in self.objects:
                v, w = p.getBaseVelocity(o.body, physicsClientId=self.client)
                if np.linalg.norm(v) >= lin_tol or np.linalg.norm(w) >= ang_tol:
                    out.append(o.body)
            return out

        rest = False
        for attempt in range(stops + 1):
            for _ in range(0, max_steps, check_every):
                self.settle(check_every)
                if not moving():
                    rest = True
                    break
            if rest:
                break
            for body in moving():
                p.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0], physicsClientId=self.client)
            max_steps = 240
        self._drop_fallen()
        return rest

    def _drop_fallen(self) -> None:
        """Remove the objects that fell off the table."""
        for obj in list(self.objects):
            if self.pose(obj.body)[0][2] < self.workspace.table_z - 0.05:
                self.remove(obj)

    def remove(self, obj: SceneObject) -> None:
        p.removeBody(obj.body, physicsClientId=self.client)
        self.objects.remove(obj)

    def pose(self, body: int):
        return p.getBasePositionAndOrientation(body, physicsClientId=self.client)

    @property
    def glass_ids(self) -> list[int]:
        return [o.body for o in self.objects if o.transparent]

    def hide(self, bodies: list[int]) -> None:
        """Park ``bodies`` far below the world (for the background render); ``restore()`` puts them back."""
        for b in bodies:
            self._hidden[b] = self.pose(b)
            p.resetBasePositionAndOrientation(b, _PARKING, [0, 0, 0, 1], physicsClientId=self.client)

    def restore(self) -> None:
        for b, (pos, orn) in self._hidden.items():
            p.resetBasePositionAndOrientation(b, pos, orn, physicsClientId=self.client)
        self._hidden.clear()
