"""The simulated cell against the real one: arm collision geometry, arm hits on the way down, the 2F-85-shaped
gripper's force and speed limits, and the masses of the glassware."""

import itertools

import numpy as np
import pybullet as p
import pytest

from grasping.kinematics import fk, fk_frames, ik
from grasping.robot import LimitError, top_down_pose
from pipeline.config import DEFAULT_GRIPPER, DEFAULT_WORKSPACE, GripperConfig

ARM_AND_PALM = range(8)  # links 0-5, the flange and the gripper body; 8 and 9 are the fingers


def _robot_on_table():
    from sim.robot import SimUR10e
    from sim.scene import TabletopScene

    c = p.connect(p.DIRECT)
    p.setGravity(0, 0, -9.81, physicsClientId=c)
    scene = TabletopScene(c)
    return c, scene, SimUR10e(c)


def _pose(robot, q) -> None:
    for j in range(6):
        p.resetJointState(robot.body, j, q[j], physicsClientId=robot.client)
    p.performCollisionDetection(physicsClientId=robot.client)


def _near(robot, body, links, distance=0.0) -> list[int]:
    """The links closer than ``distance`` to ``body`` (touching or overlapping it for 0)."""
    return [link for link in links if p.getClosestPoints(robot.body, body, distance, linkIndexA=link,
                                                         physicsClientId=robot.client)]


def _one_object(kind="cylinder", xy=(0.85, -0.15), seed=3):
    from sim.glassware import make_opaque

    def populate(scene, rng):
        scene.add_object(make_opaque(kind, np.random.default_rng(seed)), (*xy, 0.001), [0, 0, 0, 1])
        scene.settle(120)

    return populate


def test_every_arm_link_collides_along_its_dh_offsets_and_visuals_match():
    from grasping.kinematics import UR10E
    from sim.robot import SimUR10e

    c = p.connect(p.DIRECT)
    try:
        robot = SimUR10e(c)
        visuals = p.getVisualShapeData(robot.body, physicsClientId=c)
        for link in range(10):
            shapes = p.getCollisionShapeData(robot.body, link, physicsClientId=c)
            assert shapes, f"link {link} has no collision geometry"
            com = np.array(p.getDynamicsInfo(robot.body, link, physicsClientId=c)[3])
            vis = [v for v in visuals if v[1] == link]
            assert len(vis) == len(shapes)
            for v, s in zip(vis, shapes):  # same shape, same size, same place (collision frames sit at the COM)
                assert v[2] == s[2]
                np.testing.assert_allclose(v[3], s[3], atol=1e-9)
                np.testing.assert_allclose(v[5], com + np.array(s[5]), atol=1e-9)
        # the arm's shapes run along the DH offsets: a link's capsule ends where the next joint's frame begins
        q = np.random.default_rng(0).uniform(-np.pi, np.pi, 6)
        _pose(robot, q)
        frames = fk_frames(q)
        for i, (length, radius) in enumerate(zip((0.1807, 0.6127, 0.57155, 0.17415, 0.11985, 0.11655),
                                                   UR10E.link_radii)):
            data = p.getCollisionShapeData(robot.body, i, physicsClientId=c)[0]
            assert data[3][0] == pytest.approx(length) and data[3][1] == pytest.approx(radius)
            state = p.getLinkState(robot.body, i, computeForwardKinematics=True, physicsClientId=c)
            mid = (frames[i][:3, 3] + frames[i + 1][:3, 3]) / 2  # the segment's middle: its centre of mass
            np.testing.assert_allclose(state[0], mid, atol=1e-6)
    finally:
        p.disconnect(c)


def test_home_observation_and_top_down_picks_keep_the_arm_off_the_table():
    from sim.robot import HOME_Q
    from sim.world import OBSERVE_Q

    c, scene, robot = _robot_on_table()
    try:
        for q in (HOME_Q, OBSERVE_Q):
            _pose(robot, q)
            assert _near(robot, scene.table_id, range(10), 0.05) == []
        T_tcp_flange = np.linalg.inv(robot.T_flange_tcp)
        ws = DEFAULT_WORKSPACE
        xs = ws.object_center[0] + np.array([-1, 0, 1]) * ws.object_half_size[0]
        ys = ws.object_center[1] + np.array([-1, 0, 1]) * ws.object_half_size[1]
        yaws = np.linspace(-np.pi / 2, np.pi / 2, 5)[1:]
        for x, y, z, yaw in itertools.product(xs, ys, (0.01, 0.05, 0.2, 0.45), yaws):
            q = ik(top_down_pose(x, y, z, yaw) @ T_tcp_flange, HOME_Q)
            _pose(robot, q)
            assert _near(robot, scene.table_id, ARM_AND_PALM) == [], (x, y, z, yaw)
    finally:
        p.disconnect(c)


def test_the_observation_pose_touches_nothing():
    from sim.world import SimWorld

    for seed in (0, 1):
        with SimWorld(seed) as world:
            assert len(world.scene.objects) >= 1
            assert p.getContactPoints(bodyA=world.robot.body, physicsClientId=world.client) == ()
            for body in [world.scene.table_id] + [o.body for o in world.scene.objects]:
                assert _near(world.robot, body, range(10), 0.01) == []


def test_a_descent_to_the_corners_of_the_object_region_is_clean():
    from sim.world import SimWorld

    with SimWorld(0, populate=lambda scene, rng: None) as world:
        ws, r = DEFAULT_WORKSPACE, world.robot
        low = DEFAULT_GRIPPER.finger_length / 2 + 0.005  # fingertips just above the table
        world.mark()
        world.gripper.open()
        for sx, sy, yaw in ((1, 1, np.pi / 2), (-1, -1, 0.0)):
            x = ws.object_center[0] + sx * ws.object_half_size[0]
            y = ws.object_center[1] + sy * ws.object_half_size[1]
            r.move_linear(top_down_pose(x, y, 0.35, yaw), 0.25)
            r.move_linear(top_down_pose(x, y, low, yaw), 0.25)
        assert world.check_approach() == (True, "ok")


def test_a_wrist_driven_into_the_table_is_an_arm_hit():
    from sim.robot import HOME_Q
    from sim.world import SimWorld

    with SimWorld(0, populate=_one_object()) as world:
        r = world.robot
        q = ik(top_down_pose(0.75, 0.0, 0.2, 0.0) @ np.linalg.inv(r.T_flange_tcp), HOME_Q)
        r.move_joints(q, 1.0)
        world.mark()
        q_low = q + np.array([0, 0.55, 0, np.pi / 2, 0, 0])  # tool turned sideways, shoulder lowered
        assert fk(q_low)[2, 3] > 0.05  # the flange stays above the table: the wrist housings are what hits it
        r.move_joints(q_low, 1.0)
        hit = world.arm_hit
        assert world.check_approach() == (False, "arm hit the scene on the way down")
    assert hit is not None and hit[0] <= 6 and hit[1] == world.scene.table_id


def test_the_palm_landing_on_an_object_stops_a_guarded_descent_and_is_an_arm_hit_otherwise_a_finger_push_not():
    from grasping.detect import Grasp
    from grasping.execute import PickExecutor
    from sim.world import SimWorld, WorldConfig

    xy = (0.78, -0.02)
    with SimWorld(0, WorldConfig(glass_is_target=False), populate=_one_object(xy=xy, seed=1)) as world:
        top = world.scene.objects[0].model.height  # 0.116 m tall, 50 mm across
        # fingers wide open around the cylinder, the TCP low enough that the palm's underside meets its top
        deep = Grasp((*xy, top - DEFAULT_GRIPPER.palm_above_tcp - 0.01), 0.0, DEFAULT_GRIPPER.stroke_m, 1.0, 0)
        r = world.robot
        world.gripper.open(deep.width)
        r.move_linear(top_down_pose(*xy, deep.center[2] + 0.1, 0.0), 0.25)
        world.mark()
        assert r.descend(top_down_pose(*deep.center, 0.0), 0.1) is True  # stopped on the palm's contact ...
        stopped = r.tcp_pose()[2, 3]
        assert world.check_approach() == (True, "ok")  # ... which pushed nothing over
        world.mark()
        r.move_linear(top_down_pose(*deep.center, 0.0), 0.1)  # an unguarded move presses on
        hit = world.arm_hit
        assert world.check_approach() == (False, "arm hit the scene on the way down")
    assert hit is not None and hit[0] == 7
    # the palm's underside stopped at the top (10 mm above the TCP target), and backed off a little
    assert deep.center[2] + 0.01 < stopped < deep.center[2] + 0.02

    with SimWorld(0, WorldConfig(glass_is_target=False), populate=_one_object(xy=xy, seed=1)) as world:
        world.mark()
        result = PickExecutor(world.robot, world.gripper, wait=world.wait).pick(
            deep, verify=world.verify, check_approach=world.check_approach)
    assert result.contact and result.success  # the executor's descent is the guarded one: it closes there


def test_a_guarded_descent_stays_guarded_while_the_arm_settles_on_its_target():
    from sim.world import SimWorld, WorldConfig

    xy = (0.78, -0.02)
    with SimWorld(0, WorldConfig(glass_is_target=False), populate=_one_object(xy=xy, seed=1)) as world:
        top = world.scene.objects[0].model.height
        # the palm's underside meets the top only in the last millimetre, after the commanded path has ended and
        # while the joints still trail their last target
        z = top - DEFAULT_GRIPPER.palm_above_tcp - 0.001
        r = world.robot
        world.gripper.open()
        r.move_linear(top_down_pose(*xy, z + 0.1, 0.0), 0.25)
        world.mark()
        assert r.descend(top_down_pose(*xy, z, 0.0), 0.1) is True
        assert world.check_approach() == (True, "ok")
        assert r.tcp_pose()[2, 3] > z + 0.001 + 0.003  # stopped at the top and backed off 3 mm

    with SimWorld(0, WorldConfig(glass_is_target=False), populate=_one_object(xy=xy)) as world:
        top = world.scene.objects[0].model.height
        r = world.robot
        world.gripper.open(0.03)
        finger_on_top = top_down_pose(xy[0], xy[1] + 0.03, top - 0.03, 1.5708)
        r.move_linear(top_down_pose(xy[0], xy[1] + 0.03, top + 0.1, 1.5708), 0.25)
        world.mark()
        r.move_linear(finger_on_top, 0.1)  # a finger pressed down on the top, unguarded
        assert world.check_approach() == (False, "hit an object on the way down")  # a finger is not the arm


def test_gripper_has_the_2f85_numbers():
    g = DEFAULT_GRIPPER
    assert g.stroke_m == pytest.approx(0.085)
    assert (g.min_force_n, g.max_force_n) == (20.0, 235.0)
    assert (g.min_speed, g.max_speed) == pytest.approx((0.02, 0.15))
    assert 0.02 <= g.finger_depth <= 0.024 and 0.035 <= g.finger_length <= 0.04
    assert 0.145 <= g.tcp_offset <= 0.16 and 0.085 <= g.palm_width <= 0.1
    assert g.palm_above_tcp > g.finger_length / 2
    with pytest.raises(ValueError, match="closing_speed"):
        GripperConfig(closing_speed=0.2)


def test_gripper_refuses_forces_and_speeds_outside_its_range():
    c, _scene, robot = _robot_on_table()
    try:
        for force in (10.0, 300.0, float("nan")):
            with pytest.raises(LimitError, match=f"{force}"):
                robot.gripper.close(force)
        with pytest.raises(LimitError, match="200 mm/s"):
            robot.gripper.close(40.0, speed=0.2)
        with pytest.raises(LimitError, match="10 mm/s"):
            robot.gripper.open(speed=0.01)
        with pytest.raises(LimitError, match="stroke"):
            robot.gripper.open(0.1)
    finally:
        p.disconnect(c)


@pytest.mark.parametrize("speed", [None, 0.15])
def test_closing_and_opening_are_rate_limited(speed):
    c, _scene, robot = _robot_on_table()
    try:
        g, rate = robot.gripper, robot.config.steps_per_second
        g.open()
        assert g.width() == pytest.approx(DEFAULT_GRIPPER.stroke_m, abs=1e-3)
        widths = []
        robot.step_watchers.append(lambda: widths.append(g.width()))
        assert not g.close(20.0, speed=speed)  # nothing between the jaws
        widths = np.array(widths)
        closed = np.argmax(widths < 0.001)
        assert widths[closed] < 0.001
        assert closed / rate >= DEFAULT_GRIPPER.stroke_m / DEFAULT_GRIPPER.max_speed
        limit = speed or DEFAULT_GRIPPER.closing_speed
        assert np.max(-np.diff(widths)) * rate <= limit * 1.05  # never faster than the commanded speed
        widths = []
        robot.step_watchers[:] = [lambda: widths.append(g.width())]
        g.open(speed=speed)
        assert np.max(np.diff(widths)) * rate <= limit * 1.05
        assert widths[-1] == pytest.approx(DEFAULT_GRIPPER.stroke_m, abs=1e-3)
    finally:
        p.disconnect(c)


def test_fingers_closed_on_a_wall_thinner_than_the_open_threshold_report_holding():
    """A 2 mm glass wall between the jaws stops them under 4 mm apart: the gripper still reports an object, as a
    Robotiq's stalled fingers would, and names the wall's body."""
    c, _scene, robot = _robot_on_table()
    try:
        g = robot.gripper
        g.open()
        a, b = (np.array(p.getLinkState(robot.body, link, physicsClientId=c)[0]) for link in robot.finger_joints)
        across = (b - a) / np.linalg.norm(b - a)
        yaw = np.arctan2(across[1], across[0])
        shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=[0.001, 0.03, 0.03], physicsClientId=c)
        wall = p.createMultiBody(0, shape, basePosition=((a + b) / 2).tolist(),
                                 baseOrientation=p.getQuaternionFromEuler([0, 0, yaw]), physicsClientId=c)
        assert g.close(40.0)
        assert g.width() < 0.004 and g.pinching() == wall
        g.open()
        p.removeBody(wall, physicsClientId=c)
        assert not g.close(40.0) and g.pinching() is None
    finally:
        p.disconnect(c)


def test_fingertips_resting_on_an_object_squeeze_nothing():
    """Closed fingers whose tips touch the top of an object below them press down on it, not outwards: the
    gripper reports no object there (a Robotiq closes fully and says so), though both fingers touch the body."""
    c, _scene, robot = _robot_on_table()
    try:
        g = robot.gripper
        assert not g.close(40.0)
        a, b = (np.array(p.getLinkState(robot.body, link, physicsClientId=c)[0]) for link in robot.finger_joints)
        tips = min(p.getAABB(robot.body, link, physicsClientId=c)[0][2] for link in robot.finger_joints)
        shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=[0.03, 0.03, 0.01], physicsClientId=c)
        plate = p.createMultiBody(0, shape, basePosition=[*((a + b) / 2)[:2], tips - 0.01 + 0.0005],
                                  physicsClientId=c)
        p.stepSimulation(physicsClientId=c)
        touched = [{pt[2] for pt in p.getContactPoints(bodyA=robot.body, linkIndexA=link, physicsClientId=c)}
                   for link in robot.finger_joints]
        assert all(plate in bodies for bodies in touched)
        assert g.pinching() is None
    finally:
        p.disconnect(c)


@pytest.mark.parametrize("kind", ["tumbler", "cup"])
def test_fingers_closing_on_a_glass_stop_at_its_wall_at_every_angle(kind):
    """A glass stood alone, grasped across its axis 20 mm below its top at several closing angles: the fingers
    stop at its outer wall, never pass through the 2-4 mm glass to meet inside (as they did with the 50 solver
    iterations the scene settles with). Each angle finds the glass stood back where it began: a grasp nudges it a
    few millimetres, and over five grasps the nudges can add up until it tips."""
    from sim.glassware import make_glass
    from sim.world import SimWorld, WorldConfig

    xy = (0.78, -0.02)
    model = make_glass(kind, np.random.default_rng(4))

    def one_glass(scene, rng):
        scene.add_object(model, (*xy, 0.001), [0, 0, 0, 1])
        scene.settle(120)

    with SimWorld(0, WorldConfig(), populate=one_glass) as world:
        body, r, g = world.scene.objects[0].body, world.robot, world.gripper
        top = world.scene.bounds(body)[1][2]
        z = top - 0.02
        # the widest the glass is over the pads' height
        pads = z - world.scene.pose(body)[0][2] + np.linspace(-0.5, 0.5, 21) * DEFAULT_GRIPPER.finger_length
        outer = 2 * float(np.interp(pads, model.profile.z, model.profile.r).max())
        stood = world.scene.pose(body)
        for yaw in np.radians([0.0, 7.5, 15.0, 40.0, 75.0]):
            g.open()
            r.move_linear(top_down_pose(*xy, top + 0.05, yaw), 0.25)
            p.resetBasePositionAndOrientation(body, *stood, physicsClientId=world.client)
            p.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0], physicsClientId=world.client)
            r.move_linear(top_down_pose(*xy, z, yaw), 0.1)
            assert g.close(40.0)
            assert g.width() == pytest.approx(outer, abs=0.004), np.degrees(yaw)
            g.open()
            r.move_linear(top_down_pose(*xy, top + 0.05, yaw), 0.1)


def test_glassware_weighs_what_glass_weighs():
    from sim.glassware import make_glass

    def masses(kind):
        return np.array([make_glass(kind, np.random.default_rng(s)).mass for s in range(30)])

    tumbler, wine = masses("tumbler"), masses("wine_glass")
    assert 0.15 <= np.median(tumbler) <= 0.35 and tumbler.max() <= 0.4
    assert 0.12 <= np.median(wine) <= 0.22 and wine.max() <= 0.25
