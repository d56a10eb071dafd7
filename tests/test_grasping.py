"""Kinematics, grasp detection, pick execution, trial logs and reports."""

import json
import re
import time
from dataclasses import replace

import numpy as np
import pybullet as p
import pytest
import torch

from grasping.cloud import PerceptionError, cluster_footprint, fit_plane, segment, voxel_average
from grasping.detect import (DetectorConfig, Grasp, GraspDetector, contact_angles, covariance, neck, roundness,
                             shoulder, strip_spans)
from grasping.kinematics import IKError, fk, ik
from grasping.report import TrialLog, summarise, wilson_interval
from grasping.robot import LimitError, top_down_pose
from pipeline.completion import make_completer
from pipeline.config import DEFAULT_GRIPPER

Q_RANDOM = np.random.default_rng(0).uniform(-np.pi, np.pi, (5, 6))


def test_forward_kinematics_matches_dh_by_hand():
    # all joints at zero: the arm lies stretched along -x; y = -(d4 + d6), z = d1 - d5
    np.testing.assert_allclose(fk(np.zeros(6))[:3, 3], [-0.6127 - 0.57155, -(0.17415 + 0.11655), 0.1807 - 0.11985],
                               atol=1e-12)
    # shoulder at -90 deg: upper and fore arm point straight up; the whole chain beyond the shoulder turns
    # 90 deg about base y, so the wrist offset d5 (pointing down at zero) now points along -x
    T = fk([0, -np.pi / 2, 0, 0, 0, 0])
    np.testing.assert_allclose(T[:3, 3], [-0.11985, -(0.17415 + 0.11655), 0.1807 + 0.6127 + 0.57155], atol=1e-9)


def test_pybullet_arm_equals_dh():
    from sim.robot import SimUR10e

    c = p.connect(p.DIRECT)
    try:
        robot = SimUR10e(c)
        for q in Q_RANDOM:
            for j in range(6):
                p.resetJointState(robot.body, j, q[j], physicsClientId=c)
            np.testing.assert_allclose(robot.flange_pose(), fk(q), atol=1e-6)
    finally:
        p.disconnect(physicsClientId=c)


def test_ik_round_trip():
    seed = np.array([2.85, -1.76, 1.86, -1.67, -1.57, -1.87])
    rng = np.random.default_rng(1)
    for _ in range(10):
        q = seed + rng.uniform(-0.4, 0.4, 6)
        T = fk(q)
        sol = ik(T, seed)
        np.testing.assert_allclose(fk(sol), T, atol=1e-4)
    with pytest.raises(IKError, match="beyond"):
        ik(top_down_pose(3.0, 0.0, 0.2, 0.0), seed)


def _solid(radius, centre, z0, z1, step=0.004):
    """A solid of revolution's straight section seen by a camera: wall points from ``z0`` to ``z1``, its top face."""
    n = int(2 * np.pi * radius / (step / 2))
    th, zz = np.meshgrid(np.linspace(0, 2 * np.pi, n, endpoint=False), np.arange(z0, z1, step))
    wall = np.column_stack([centre[0] + radius * np.cos(th.ravel()), centre[1] + radius * np.sin(th.ravel()), zz.ravel()])
    gx, gy = np.meshgrid(np.arange(-radius, radius, step / 2), np.arange(-radius, radius, step / 2))
    inside = gx.ravel() ** 2 + gy.ravel() ** 2 < radius**2
    top = np.column_stack([centre[0] + gx.ravel()[inside], centre[1] + gy.ravel()[inside], np.full(inside.sum(), z1)])
    return np.concatenate([wall, top])


def _table_and_cylinder(radius, centre=(0.75, 0.05), height=0.1, step=0.004):
    xs, ys = np.meshgrid(np.arange(0.45, 1.05, step), np.arange(-0.3, 0.3, step))
    table = np.column_stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)])
    under = np.hypot(table[:, 0] - centre[0], table[:, 1] - centre[1]) > radius  # the table is hidden below it
    return np.concatenate([table[under], _solid(radius, centre, 0.004, height, step)])


def test_detector_finds_known_cylinder_within_stroke():
    """A 60 mm cylinder 100 mm tall: grasped at its axis, opened to its width plus the margin, the pads' centre
    the configured depth below its top."""
    scene = segment(_table_and_cylinder(0.03))
    assert len(scene.clusters) == 1
    cfg = DetectorConfig()
    grasps = GraspDetector(cfg).detect(scene)
    assert grasps
    g = grasps[0]
    assert np.hypot(g.center[0] - 0.75, g.center[1] - 0.05) < 0.005
    assert g.width == pytest.approx(0.06 + cfg.width_margin, abs=0.006)  # (voxel-sized error)
    assert g.center[2] == pytest.approx(0.1 - cfg.grasp_depths[0], abs=0.006)
    assert g.kind == "whole"
    # the lowest it may go: fingertips clear of the table, the palm clear of the top
    gr = cfg.gripper
    lowest = max(gr.finger_length / 2 + cfg.tip_clearance, 0.1 + cfg.palm_headroom - gr.palm_above_tcp)
    assert g.floor == pytest.approx(lowest, abs=0.006) and g.floor < g.center[2]


def test_detector_opens_a_wide_object_to_the_whole_stroke():
    """A 76 mm cylinder: its width plus the usual margin exceeds the 85 mm stroke, but there is room enough;
    the gripper opens fully."""
    grasps = GraspDetector().detect(segment(_table_and_cylinder(0.038)))
    assert grasps and grasps[0].width == pytest.approx(DEFAULT_GRIPPER.stroke_m)


def test_detector_grasps_one_of_two_touching_cylinders():
    """Two 50 mm cylinders side by side, touching: one cluster 100 mm wide that no grasp spans. The detector
    grasps one of them, closing across the pair's short side, and never across both."""
    a = _table_and_cylinder(0.025, centre=(0.75, 0.025))
    b = _table_and_cylinder(0.025, centre=(0.75, -0.025))
    table = a[a[:, 2] == 0]
    table = table[np.hypot(table[:, 0] - 0.75, table[:, 1] + 0.025) > 0.025]
    scene = segment(np.concatenate([table, a[a[:, 2] > 0], b[b[:, 2] > 0]]))
    assert len(scene.clusters) == 1  # the pair is one cluster
    grasps = GraspDetector().detect(scene)
    assert grasps
    g = grasps[0]
    assert g.width <= DEFAULT_GRIPPER.stroke_m
    assert min(abs(g.center[1] - 0.025), abs(g.center[1] + 0.025)) < 0.008  # on one cylinder's axis
    assert abs(np.cos(g.yaw)) > 0.95  # closing along x: across one cylinder, not across the pair
    assert g.kind == "part"
    cfg = DetectorConfig()
    assert g.floor == pytest.approx(cfg.gripper.finger_length / 2 + cfg.tip_clearance, abs=1e-4)


def test_two_glasses_joined_without_a_waist_are_not_grasped_where_they_meet():
    """Two 60 mm glasses touching, the gap where they meet filled by completed depth (a strip 40 mm wide): one
    cluster with no waist, whose narrow side (60 mm) fits the stroke. Grasped whole, its centre is where the two
    meet, and the pads' strip there spans only the notch between them: the detector grasps one glass instead, on
    its axis. Without the check (``whole_span_share=0``) it grasps the pair where they meet."""
    a, b = _table_and_cylinder(0.03, centre=(0.75, 0.03)), _table_and_cylinder(0.03, centre=(0.75, -0.03))
    table = a[a[:, 2] == 0]
    table = table[np.hypot(table[:, 0] - 0.75, table[:, 1] + 0.03) > 0.03]
    gx, gy = np.meshgrid(np.arange(0.73, 0.77, 0.002), np.arange(-0.004, 0.004, 0.002))
    joint = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, 0.1)])
    pts = np.concatenate([table, a[a[:, 2] > 0], b[b[:, 2] > 0], joint])
    scene = segment(pts, repaired=pts[:, 2] > 0.001)
    assert len(scene.clusters) == 1 and not GraspDetector()._is_several(scene.clusters[0])
    unchecked = GraspDetector(DetectorConfig(whole_span_share=0.0)).detect(scene)[0]
    assert unchecked.kind == "whole" and abs(unchecked.center[1]) < 0.005  # where the two meet
    g = GraspDetector().detect(scene)[0]
    assert abs(abs(g.center[1]) - 0.03) < 0.008 and abs(np.cos(g.yaw)) > 0.95  # across one glass


def test_the_pads_strip_spans_a_disc_through_its_middle_not_beside_it():
    """A 60 mm disc seen from above: the pads' strip (22 mm wide) through its centre spans all of it; 30 mm off
    the centre about three quarters (2 * sqrt(30^2 - 19^2) = 46 mm), under the shipped ``whole_span_share``; 45 mm
    off it holds no point at all."""
    gx, gy = np.meshgrid(np.arange(-0.03, 0.03, 0.001), np.arange(-0.03, 0.03, 0.001))
    inside = np.hypot(gx.ravel(), gy.ravel()) < 0.03
    disc = np.column_stack([gx.ravel()[inside], gy.ravel()[inside]])
    along_x = np.array([[1.0, 0.0]])
    full = strip_spans(disc, along_x, 0.022)[0]
    assert full == pytest.approx(np.ptp(disc[:, 0]))
    beside = strip_spans(disc - [0.0, 0.03], along_x, 0.022)[0]
    assert beside == pytest.approx(2 * np.sqrt(0.03**2 - 0.019**2), abs=0.002)
    assert beside < DetectorConfig().whole_span_share * full
    assert strip_spans(disc - [0.0, 0.045], along_x, 0.022)[0] == -np.inf
    turned = strip_spans(disc, np.array([[0.0, 1.0], [np.sqrt(0.5), np.sqrt(0.5)]]), 0.022)  # any direction alike
    assert turned == pytest.approx([full, full], abs=0.002)


def test_contact_angle_is_zero_across_an_outline_and_ninety_along_it():
    """On a 40 mm ring seen from above: a pad closing along the radius meets the outline square (0 degrees), one
    closing along the tangent slides along it (90); a point with fewer than three neighbours gives 90."""
    th = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    ring = 0.04 * np.column_stack([np.cos(th), np.sin(th)])
    at = np.array([[0.04, 0.0], [0.0, 0.04], [0.04 * np.cos(0.5), 0.04 * np.sin(0.5)], [0.2, 0.2]])
    angles = contact_angles(ring, at, np.array([0.0, 0.0, 0.0, 0.0]), 0.01)
    assert angles[:3] == pytest.approx([0.0, 90.0, np.degrees(0.5)], abs=1.0)
    assert angles[3] == 90.0


def test_part_grasps_close_within_the_friction_cone():
    """Two open cups 80 mm wide, walls only (their floors in the table band), touching: one cluster. Strips
    that graze both walls where the cups meet make runs that fit the stroke; their pads would meet the walls
    at 60-70 degrees to the walls' normals and slide off. With the friction cone none is left, and the part
    grasps that remain close within it (the outline's direction is estimated from the points, hence the
    tolerance)."""
    radius, centres = 0.04, np.array([[0.75, 0.0], [0.75, 0.08]])
    a, b = (_table_and_ring(radius, centre=tuple(c), height=0.09) for c in centres)
    scene = segment(np.concatenate([a, b[b[:, 2] > 0]]))  # one table
    assert len(scene.clusters) == 1

    def worst_contact(cfg):  # per part grasp narrower than the stroke, its larger angle to a wall's normal
        out = []
        for g in GraspDetector(cfg).detect(scene):
            if g.kind != "part" or g.width >= cfg.gripper.stroke_m:
                continue
            d, c = np.array([np.cos(g.yaw), np.sin(g.yaw)]), np.array(g.center[:2])
            ends = c + np.outer([-1, 1], d) * (g.width - cfg.width_margin) / 2  # where the run's ends are
            normals = ends - centres[np.argmin(np.linalg.norm(ends[:, None] - centres[None], axis=2), axis=1)]
            cos = np.abs(normals @ d) / np.linalg.norm(normals, axis=1)
            out.append(float(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))).max()))
        return out

    assert max(worst_contact(replace(DetectorConfig(), friction_cone_deg=90.0))) > 60.0  # without the rule
    cfg = DetectorConfig()
    within = worst_contact(cfg)
    assert within and max(within) < cfg.friction_cone_deg + 5.0


def test_a_part_grasp_opens_for_what_the_fingers_pass():
    """A vase 180 mm tall, 84 mm across its belly (up to 100 mm) and 30 mm across its neck, touching a glass:
    one cluster. Seen whole from above the vase is wider than the stroke allows, and only chords of its belly
    fit; the fingers closing 40 mm below its top pass only the neck. The part grasp closes on the neck's axis,
    opened for the neck."""
    belly, neck = _solid(0.042, (0.75, 0.0), 0.004, 0.1), _solid(0.015, (0.75, 0.0), 0.1, 0.18)
    belly = belly[(np.hypot(belly[:, 0] - 0.75, belly[:, 1]) >= 0.015) | (belly[:, 2] < 0.1)]  # under the neck
    glass = _table_and_cylinder(0.03, centre=(0.75, 0.072), height=0.08)
    table = glass[glass[:, 2] == 0]
    table = table[np.hypot(table[:, 0] - 0.75, table[:, 1]) > 0.042]
    scene = segment(np.concatenate([table, glass[glass[:, 2] > 0], belly, neck]))
    assert len(scene.clusters) == 1
    cfg = DetectorConfig()
    on_vase = [g for g in GraspDetector(cfg).detect(scene) if np.hypot(g.center[0] - 0.75, g.center[1]) < 0.05]
    assert on_vase
    g = on_vase[0]
    assert g.kind == "part"
    assert np.hypot(g.center[0] - 0.75, g.center[1]) < 0.004
    assert g.width == pytest.approx(0.03 + cfg.width_margin, abs=0.006)
    assert g.center[2] > 0.1  # at the neck, above the belly


def test_detector_grasps_part_of_a_cluster_higher_where_the_deepest_grasp_collides():
    """A glass 80 mm tall touching one 110 mm tall: one cluster. The palm above a grasp 40 or 30 mm down the
    short glass would meet the tall one's top; 20 mm down it clears, and that grasp is found."""
    short = _table_and_cylinder(0.02, centre=(0.75, 0.02), height=0.08)
    tall = _table_and_cylinder(0.02, centre=(0.75, -0.02), height=0.11)
    table = short[short[:, 2] == 0]
    table = table[np.hypot(table[:, 0] - 0.75, table[:, 1] + 0.02) > 0.02]
    scene = segment(np.concatenate([table, short[short[:, 2] > 0], tall[tall[:, 2] > 0]]))
    assert len(scene.clusters) == 1
    cfg = DetectorConfig()
    on_short = [g for g in GraspDetector(cfg).detect(scene)
                if np.hypot(g.center[0] - 0.75, g.center[1] - 0.02) < 0.008]
    assert on_short
    assert max(g.center[2] for g in on_short) == pytest.approx(0.08 - cfg.grasp_depths[-1], abs=0.006)


def test_candidates_checked_in_rounds_give_each_group_its_first_grasp_that_clears():
    """``_first_clear`` checks all groups' candidates together, round by round; it must choose what checking
    each group's candidates one at a time, in order, chooses."""
    rng = np.random.default_rng(3)
    det, cfg = GraspDetector(), DetectorConfig()
    pts = rng.uniform([-0.05, -0.05, 0.0], [0.05, 0.05, 0.12], (400, 3))  # the object
    others = rng.uniform([-0.12, -0.12, 0.0], [0.12, 0.12, 0.08], (150, 3))
    group = np.repeat(np.arange(30), rng.integers(1, 4, 30))
    n = len(group)
    mids = rng.uniform(-0.03, 0.03, (n, 2))
    yaws, zs, widths = rng.uniform(0, np.pi, n), rng.uniform(0.02, 0.2, n), rng.uniform(0.02, 0.085, n)
    expected = []
    for gid in np.unique(group):
        for j in np.flatnonzero(group == gid):
            one = slice(j, j + 1)  # this grasp alone
            hits = (det._hits(others, mids[one], yaws[one], zs[one], widths[one], cfg.neighbour_clearance,
                              between=True)[0]
                    + det._hits(pts, mids[one], yaws[one], zs[one], widths[one], headroom=0.01)[0])
            if hits <= cfg.collision_points:
                expected.append(j)
                break
    assert 5 < len(expected) < 30  # some groups clear at their first candidate, some later, some never
    assert det._first_clear(others, pts, group, mids, yaws, zs, widths, headroom=0.01) == expected


def test_points_in_the_way_of_many_grasps_at_once_match_each_grasp_counted_alone():
    """``_hits`` counts the points in the open gripper's way for all grasps in one pass; each count must be what
    the gripper's own frame gives for that grasp alone: a point is in a finger when it lies beyond half the
    opening along the closing direction (anywhere from the centre with ``between``), within the finger's
    thickness past it and half its depth across, above the fingertips; in the palm when within half the palm's
    width and depth and above its underside."""
    rng = np.random.default_rng(11)
    det, g = GraspDetector(), DEFAULT_GRIPPER
    points = rng.uniform([-0.1, -0.1, 0.0], [0.1, 0.1, 0.15], (300, 3))
    n = 150  # more than one chunk of grasps
    mids = rng.uniform(-0.05, 0.05, (n, 2))
    yaws, zs, widths = rng.uniform(-np.pi, np.pi, n), rng.uniform(0.0, 0.15, n), rng.uniform(0.02, 0.085, n)
    ignore = rng.random((n, len(points))) < 0.2
    clear = []
    for clearance, between, headroom, skip in ((0.0, False, 0.0, None), (0.006, True, 0.0, None),
                                               (0.0, False, 0.02, ignore)):
        got = det._hits(points, mids, yaws, zs, widths, clearance, between, headroom, skip)
        for i in range(n):
            rel = points[:, :2] - mids[i]
            u = np.abs(rel @ [np.cos(yaws[i]), np.sin(yaws[i])])
            v = np.abs(rel @ [-np.sin(yaws[i]), np.cos(yaws[i])])
            dz = points[:, 2] - zs[i]
            m, half = clearance, widths[i] / 2
            finger = ((u > (0.0 if between else half)) & (u < half + g.finger_thickness + m)
                      & (v < g.finger_depth / 2 + m) & (dz > -g.finger_length / 2 - m))
            palm = (u < g.palm_width / 2 + m) & (v < g.palm_depth / 2 + m) & (dz > g.palm_above_tcp - m - headroom)
            hit = finger | palm
            if skip is not None:
                hit &= ~skip[i]
            assert got[i] == hit.sum(), (i, clearance, between, headroom)
        clear.append(int((got == 0).sum()))
    assert 0 < clear[0] < n and 0 < clear[2] < n, clear  # some grasps are clear, some are not


def test_covariance_is_numpys():
    xy = np.random.default_rng(2).normal([0.7, -0.1], [0.03, 0.01], (500, 2))
    np.testing.assert_allclose(covariance(xy), np.cov(xy.T), rtol=1e-12, atol=1e-18)


def test_a_few_stray_points_beyond_a_glass_edge_are_not_a_second_object():
    """Completed depth leaves a few points just beyond a glass's edge. Joined to its cluster, they make a narrow
    cross-section past a gap, which must not read as a waist between two objects: the glass is grasped whole,
    across its axis."""
    pts = _table_and_cylinder(0.03)
    tip = np.array([[0.75 + 0.03 + 0.008, 0.05 + dy, z] for dy in (-0.004, 0.0, 0.004)
                    for z in (0.02, 0.04, 0.06, 0.08)])  # 12 stray points 8 mm beyond the edge, 8 mm across
    scene = segment(np.concatenate([pts, tip]))
    assert len(scene.clusters) == 1 and len(scene.clusters[0]) > 400
    det = GraspDetector()
    assert not det._is_several(scene.clusters[0])
    g = det.detect(scene)[0]
    assert np.hypot(g.center[0] - 0.75, g.center[1] - 0.05) < 0.005
    assert det._cluster_grasps(scene, 0, scene.clusters[0])  # a whole-object grasp is what it gets


def test_detector_rejects_object_wider_than_stroke():
    scene = segment(_table_and_cylinder(0.06))  # 120 mm across
    assert len(scene.clusters) == 1 and GraspDetector().detect(scene) == []


def test_segmentation_errors_are_clear():
    with pytest.raises(PerceptionError, match="valid depth points"):
        segment(np.zeros((10, 3)))
    rng = np.random.default_rng(0)
    with pytest.raises(PerceptionError, match="no table"):
        segment(rng.uniform(0, 1, (5000, 3)))


def test_executor_picks_single_opaque_cylinder_with_ground_truth():
    from grasping.trials import attempt
    from sim.glassware import make_opaque
    from sim.world import SimWorld, WorldConfig

    def one_cylinder(scene, rng):
        model = make_opaque("cylinder", np.random.default_rng(3))
        scene.add_object(model, (0.78, -0.02, 0.001), [0, 0, 0, 1])
        scene.settle(120)

    with SimWorld(0, WorldConfig(glass_is_target=False), populate=one_cylinder) as world:
        cylinder = world.scene.objects[0]
        top = world.scene.pose(cylinder.body)[0][2] + cylinder.model.height
        result = attempt(world, make_completer("gt"), GraspDetector())
    assert result.success, result.reason
    assert result.grasp.width <= DEFAULT_GRIPPER.stroke_m
    record = result.record()
    assert record["success"] and record["objects"] == ["cylinder"] and record["sensor"] == "d435"
    assert record["candidates"] == len(result.perception.grasps) >= 1
    # the grasp against the simulator's cylinder (it stood still): on its axis, and how far below its top
    truth = record["truth"]
    assert truth["object"] == "cylinder" and not truth["glass"] and truth["tilt_deg"] < 2
    assert abs(truth["along_mm"]) < 5 and abs(truth["across_mm"]) < 5
    assert truth["below_top_mm"] == pytest.approx((top - result.grasp.center[2]) * 1000, abs=1)


def test_the_truth_of_a_grasp_names_the_object_under_it_and_the_offsets():
    """``SimWorld.truth``: the nearest object to a grasp, and the grasp's offsets from it in millimetres, along
    and across the closing direction and below the object's top."""
    from grasping.detect import Grasp
    from sim.glassware import make_glass, make_opaque
    from sim.world import SimWorld, WorldConfig

    def two(scene, rng):
        scene.add_object(make_glass("tumbler", np.random.default_rng(1)), (0.70, 0.10, 0.001), [0, 0, 0, 1])
        scene.add_object(make_opaque("box", np.random.default_rng(2)), (0.80, -0.10, 0.001), [0, 0, 0, 1])
        scene.settle(60)

    with SimWorld(0, WorldConfig(), populate=two) as world:
        tumbler = world.scene.objects[0]
        top = world.scene.bounds(tumbler.body)[1][2]
        assert top == pytest.approx(world.scene.pose(tumbler.body)[0][2] + tumbler.model.height, abs=1e-3)
        # closing along y, 10 mm off the tumbler's axis in x (across) and 4 mm in y (along), 30 mm below its top
        truth = world.truth(Grasp((0.71, 0.104, top - 0.03), np.pi / 2, 0.08, 1.0, 0))
    assert truth["object"] == "tumbler" and truth["glass"]
    assert truth["along_mm"] == pytest.approx(4, abs=1) and truth["across_mm"] == pytest.approx(-10, abs=1)
    assert truth["below_top_mm"] == pytest.approx(30, abs=0.5)


def test_a_finger_landing_on_the_object_stops_the_descent_without_knocking_it():
    """A grasp whose finger comes down on the object's top (depth that put the object lower than it is): the
    guarded descent stops on the contact, so the object stays where it stood; the fingers close on nothing."""
    from grasping.detect import Grasp
    from grasping.execute import PickExecutor
    from sim.glassware import make_opaque
    from sim.world import SimWorld, WorldConfig

    def one_cylinder(scene, rng):
        scene.add_object(make_opaque("cylinder", np.random.default_rng(3)), (0.78, -0.02, 0.001), [0, 0, 0, 1])
        scene.settle(120)

    with SimWorld(0, WorldConfig(glass_is_target=False), populate=one_cylinder) as world:
        world.mark()
        top = world.scene.objects[0].model.height
        finger_on_top = Grasp((0.78, -0.02 + 0.03, top - 0.03), 1.5708, 0.03, 1.0, 0)
        start = world.scene.pose(world.scene.objects[0].body)[0]
        result = PickExecutor(world.robot, world.gripper, wait=world.wait).pick(
            finger_on_top, verify=world.verify, check_approach=world.check_approach)
        end = world.scene.pose(world.scene.objects[0].body)[0]
    assert result.contact and not result.success and result.reason == "empty gripper"
    assert np.linalg.norm(np.subtract(end, start)) < 0.005


def test_objects_the_robot_never_touched_do_not_fail_the_approach():
    """A glass that rolls on its own while the gripper comes down is not the gripper's doing; one the
    fingers push is."""
    from grasping.detect import Grasp
    from grasping.execute import PickExecutor
    from sim.glassware import make_opaque
    from sim.world import SimWorld, WorldConfig

    def two_cylinders(scene, rng):
        for y in (-0.02, 0.25):
            scene.add_object(make_opaque("cylinder", np.random.default_rng(3)), (0.78, y, 0.001), [0, 0, 0, 1])
        scene.settle(120)

    with SimWorld(0, WorldConfig(glass_is_target=False), populate=two_cylinders) as world:
        assert world.at_rest
        world.mark()
        far = world.scene.objects[1].body
        pos, orn = world.scene.pose(far)
        p.resetBasePositionAndOrientation(far, np.add(pos, [0, 0.06, 0]), orn, physicsClientId=world.client)
        r = world.scene.objects[0].model.max_radius
        clear = Grasp((0.78, -0.02, world.scene.objects[0].model.height - 0.02), 0.0, 2 * r + 0.02, 1.0, 0)
        ex = PickExecutor(world.robot, world.gripper, wait=world.wait)
        ex.gripper.open(clear.width)
        world.robot.move_linear(top_down_pose(0.78, -0.02, 0.35, 0.0), 0.25)
        world.robot.move_linear(top_down_pose(*clear.center, 0.0), 0.1)
        moved = np.linalg.norm(np.subtract(world.scene.pose(far)[0], world._poses[far][0]))
        ok, why = world.check_approach()
    assert moved > 0.05 and ok, why


def test_settling_stops_a_rolling_object():
    from sim.glassware import make_opaque
    from sim.scene import TabletopScene

    c = p.connect(p.DIRECT)
    try:
        p.setGravity(0, 0, -9.81, physicsClientId=c)
        scene = TabletopScene(c)
        obj = scene.add_object(make_opaque("sphere", np.random.default_rng(0)), (0.75, 0.0, 0.001), [0, 0, 0, 1])
        scene.settle(60)
        p.resetBaseVelocity(obj.body, [0.2, 0.0, 0.0], [0, 0, 0], physicsClientId=c)
        assert scene.settle_until_rest()
        v, w = p.getBaseVelocity(obj.body, physicsClientId=c)
        assert np.linalg.norm(v) < 0.003 and np.linalg.norm(w) < 0.05
    finally:
        p.disconnect(c)


def _cylinder_beside_a_top(radius, along_y, n):
    """A 50 mm cylinder 60 mm tall and, ``along_y`` from its axis, the top of a tall neighbour 0.2 m high (a disc
    of ``radius`` and ``n`` points; its lower wall hidden from the camera), segmented: the scene, the cylinder's
    cluster and the neighbour's points."""
    target = _table_and_cylinder(0.025, height=0.06)
    rng = np.random.default_rng(0)
    r, th = radius * np.sqrt(rng.uniform(0, 1, n)), rng.uniform(0, 2 * np.pi, n)
    top = np.column_stack([0.75 + r * np.cos(th), 0.05 + along_y + r * np.sin(th), np.full(n, 0.2)])
    scene = segment(np.concatenate([target, top]))
    assert len(scene.clusters) == 2
    return scene, min(range(2), key=lambda i: scene.clusters[i][:, 2].max()), top


def test_swept_check_sees_a_tall_neighbour_above_the_fingers():
    """A tall glass beside the target whose visible points lie above the fingers' reach at the grasp
    height: the palm and the descent would still meet it, so the grasp across towards it is rejected."""
    # the top of a tall neighbour 85 mm away along +y, beyond the wrist's reach above a grasp across the other way
    scene, k, _ = _cylinder_beside_a_top(0.03, 0.085, 3000)
    swept = GraspDetector()._cluster_grasps(scene, k, scene.clusters[k])
    assert swept  # across the other way
    assert all(abs(np.sin(g.yaw)) < 0.9 for g in swept)  # none closes along y, towards the neighbour


def test_the_wrist_above_the_gripper_keeps_clear_of_a_tall_neighbour():
    """The top of a post 0.2 m tall beside a short cylinder, its edge 46 mm from the cylinder's axis: outside the
    gripper body's footprint when the jaws close across the line between them, but inside the circle of the
    arm's last wrist above the flange. No grasp the detector keeps for the cylinder puts the post under the
    wrist."""
    scene, k, post = _cylinder_beside_a_top(0.02, 0.066, 2000)
    cfg = DetectorConfig()
    for config, must_clear in ((replace(cfg, wrist_radius=0.0), False), (cfg, True)):
        grasps = GraspDetector(config)._cluster_grasps(scene, k, scene.clusters[k])
        under = [np.hypot(post[:, 0] - g.center[0], post[:, 1] - g.center[1]).min()
                 < cfg.wrist_radius + cfg.neighbour_clearance for g in grasps]
        if must_clear:
            assert not any(under)
        else:  # (without the wrist, a grasp closing along x leaves the post outside the body's footprint)
            assert any(under)


class _Arm:
    """An arm that goes where it is sent and records where it went, the heights it descended to and the heights
    of the targets it checked."""

    def __init__(self, contact_at=None, start=(0.45, -0.45, 0.35)):
        self.T, self.path, self.checked, self.descents = top_down_pose(*start, 0.0), [], [], []
        self.contact_at = contact_at  # a descent to below this height stops there on a contact

    def tcp_pose(self):
        return self.T

    def check_linear(self, T, speed):
        self.checked.append(round(float(T[2, 3]), 6))

    def move_linear(self, T, speed):
        self.path.append(T[:3, 3].copy())
        self.T = T
        return T

    def descend(self, T, speed):
        self.descents.append(T[2, 3])
        if self.contact_at is not None and T[2, 3] < self.contact_at:
            self.move_linear(top_down_pose(T[0, 3], T[1, 3], self.contact_at, 0.0), speed)
            return True
        self.move_linear(T, speed)
        return False

    def stop(self):
        pass


class _Hand:
    """Fingers that close on something only with the TCP at or below ``object_top``; counts its closes."""

    def __init__(self, arm, object_top):
        self.arm, self.object_top, self.closes = arm, object_top, 0

    def open(self, width=None):
        pass

    def close(self, force):
        self.closes += 1
        return self.arm.T[2, 3] <= self.object_top + 1e-9


def test_executor_travels_above_the_scene_before_descending():
    from grasping.detect import Grasp
    from grasping.execute import PickConfig, PickExecutor

    robot = _Arm(start=(0.3, -0.2, 0.15))  # starts low, beside the table
    res = PickExecutor(robot, _Hand(robot, object_top=np.inf), wait=lambda s: None).pick(
        Grasp((0.8, 0.1, 0.05), 0.0, 0.05, 1.0, 0))
    assert res.success
    z = PickConfig().transit_z
    first, second = robot.path[0], robot.path[1]
    assert np.allclose(first, [0.3, -0.2, z]) and np.allclose(second, [0.8, 0.1, z])  # up, then across


def test_fingers_that_close_on_nothing_close_again_lower_down_to_the_grasps_floor():
    """Completed depth put the object's top 30 mm high: the fingers close on nothing at 100 mm, open, go 20 mm
    lower (nothing again), then to the grasp's floor at 70 mm (not the 60 mm a third step would reach) and
    hold. Every lower target was checked before the arm first moved."""
    from grasping.execute import PickConfig, PickExecutor

    arm = _Arm()
    hand = _Hand(arm, object_top=0.07)
    res = PickExecutor(arm, hand, PickConfig(lower_step=0.02, lower_closes=3), wait=lambda s: None).pick(
        Grasp((0.8, 0.1, 0.10), 0.0, 0.06, 1.0, 0, "whole", floor=0.07))
    assert res.success and res.lower_closes == 2 and hand.closes == 3
    assert np.allclose(arm.descents, [0.10, 0.08, 0.07])
    # transit, pre-grasp, grasp, the two lower closes, lift, place, park: all checked, once, before any move
    assert arm.checked == [0.35, 0.2, 0.1, 0.08, 0.07, 0.2, 0.25, 0.25]


@pytest.mark.parametrize("floor, contact_at", [
    (None, None),  # a grasp without a floor: one close
    (0.10, None),  # a grasp on its floor: nowhere lower to go
    (0.05, 0.105),  # the descent stopped on a contact: the fingers met something; no lower close
])
def test_no_lower_close_without_a_floor_or_after_a_contact(floor, contact_at):
    from grasping.execute import PickExecutor

    arm = _Arm(contact_at)
    hand = _Hand(arm, object_top=0.0)
    res = PickExecutor(arm, hand, wait=lambda s: None).pick(Grasp((0.8, 0.1, 0.10), 0.0, 0.06, 1.0, 0, floor=floor))
    assert not res.success and res.reason == "empty gripper" and res.lower_closes == 0 and hand.closes == 1
    assert np.allclose(arm.descents, [0.10])


def test_bad_scene_gives_logged_reason_not_crash():
    from grasping.trials import attempt
    from sim.world import SimWorld

    with SimWorld(0, populate=lambda scene, rng: None) as world:  # empty table
        result = attempt(world, make_completer("gt"), GraspDetector())
    assert not result.success and result.reason == "no grasp found" and result.grasp is None


def test_robot_refuses_targets_outside_workspace():
    from sim.robot import SimUR10e

    c = p.connect(p.DIRECT)
    try:
        robot = SimUR10e(c)
        with pytest.raises(LimitError, match="outside the workspace box"):
            robot.move_linear(top_down_pose(0.75, 0.0, -0.05, 0.0), 0.1)
        with pytest.raises(LimitError, match="joint limits"):
            robot.move_joints([0, 0, 0, 0, 0, 7.0], 1.0)
        with pytest.raises(LimitError, match="stroke"):
            robot.gripper.open(0.2)
    finally:
        p.disconnect(physicsClientId=c)


def test_wilson_and_summary_arithmetic():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    recs = [{"scene_seed": i, "depth": "raw", "success": i < 3, "reason": "ok" if i < 3 else "empty gripper",
             "perception_ms": 10.0 + i} for i in range(10)]
    s = summarise(recs)["raw"]
    assert s["trials"] == 10 and s["successes"] == 3 and s["rate"] == 0.3
    assert s["perception_ms_median"] == pytest.approx(14.5) and s["failures"] == {"empty gripper": 7}
    from grasping.report import markdown_table

    assert "| raw | 3/10 (30%) | 11%-60% | 3/10 in 1 | 14 ms | 7 empty gripper |" in markdown_table(summarise(recs))
    # the closed loop: two scenes succeeded on a later try; the first-try figure is unchanged
    for r in recs[3:5]:
        r.update(tries=2, success_within=True, stages_ms={"complete": 5.0, "detect": 1.0})
    s = summarise(recs)["raw"]
    assert s["successes"] == 3 and s["within_tries"]["successes"] == 5 and s["within_tries"]["tries"] == 2
    assert s["within_tries"]["ci95"] == list(wilson_interval(5, 10))
    assert s["stages_ms_median"] == {"complete": 5.0, "detect": 1.0}


class _SlowNetwork(torch.nn.Module):
    """Depth in, depth out, after 30 ms: a network whose forward pass takes a known time."""

    def forward(self, rgb, depth):
        time.sleep(0.03)
        return depth.clone()


def test_perception_times_the_network_inside_its_completion():
    from grasping.report import markdown_table
    from grasping.trials import perceive
    from pipeline.completion import NetworkCompleter
    from pipeline.types import CameraIntrinsics, RGBDFrame

    h, w = 24, 32
    frame = RGBDFrame(np.zeros((h, w, 3), np.uint8), np.full((h, w), 0.8, np.float32),
                      CameraIntrinsics(w, h, 307.5, 307.5, (w - 1) / 2, (h - 1) / 2))
    seen = perceive(frame, NetworkCompleter.from_model(_SlowNetwork(), {"arch": "student"}), GraspDetector())
    assert 30.0 <= seen.stages_ms["network"] <= seen.stages_ms["complete"] <= seen.ms
    assert set(seen.stages_ms) == {"complete", "network"}  # no camera pose: perception stops after completion
    assert set(perceive(frame, make_completer("raw"), GraspDetector()).stages_ms) == {"complete"}
    recs = [{"scene_seed": i, "depth": "student", "success": True, "reason": "ok", "perception_ms": ms,
             "stages_ms": {"complete": 20.0, "network": 20.0}} for i, ms in enumerate((30.0, 40.0, 50.0))]
    recs.append({"scene_seed": 3, "depth": "student", "success": False, "reason": "no grasp found"})
    assert summarise(recs)["student"]["perception_per_network_median"] == pytest.approx(2.0)
    assert "| 40 ms, 2.00x the network |" in markdown_table(summarise(recs))
    assert "perception_per_network_median" not in summarise([dict(r, stages_ms={}) for r in recs])["student"]


def test_success_plot_of_one_source_keeps_its_whole_title():
    import matplotlib.pyplot as plt
    from grasping.report import success_figure

    recs = [{"scene_seed": i, "depth": "student", "success": i < 2, "reason": "ok" if i < 2 else "empty gripper"}
            for i in range(3)]
    fig = success_figure(summarise(recs))
    fig.canvas.draw()
    box = fig.axes[0].title.get_window_extent(fig.canvas.get_renderer())
    plt.close(fig)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1


def test_success_plot_of_none_and_all(tmp_path):
    """0/N and N/N: the interval starts (ends) exactly at the rate, and the plot is drawn."""
    from grasping.report import plot_success

    assert wilson_interval(0, 100)[0] == 0.0 and wilson_interval(100, 100)[1] == 1.0
    recs = [{"scene_seed": i, "depth": d, "success": d == "gt", "reason": "ok" if d == "gt" else "no grasp found"}
            for i in range(100) for d in ("raw", "gt")]
    plot_success(summarise(recs), tmp_path / "success.png")
    assert (tmp_path / "success.png").stat().st_size > 1000


def test_trial_log_survives_a_cut_line_and_resumes(tmp_path):
    log = TrialLog(tmp_path / "attempts.jsonl")
    log.append({"scene_seed": 1, "depth": "raw", "success": True, "reason": "ok"})
    with open(log.path, "a") as fh:
        fh.write('{"scene_seed": 2, "depth": "raw", "succ')  # crash mid-line
    assert log.done() == {(1, "raw")}


def test_trials_resume(tmp_path):
    import cv2
    from distillgrasp.cells import sim_cell_factory
    from grasping.trials import run_trials

    def trials(out, sensor="d435", renderer="fast", **kw):
        return run_trials(sim_cell_factory(sensor, renderer), ["gt"], 1, 5, out, progress=False,
                          provenance={"sensor": sensor, "renderer": renderer}, **kw)

    s1 = trials(tmp_path, save_images=True)
    lines = (tmp_path / "attempts.jsonl").read_text().splitlines()
    s2 = trials(tmp_path)
    assert len((tmp_path / "attempts.jsonl").read_text().splitlines()) == len(lines) == 1
    assert s1 == s2 and (tmp_path / "success.png").is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["gt"]["trials"] == 1
    with pytest.raises(ValueError, match="holds trials of scene set 5"):  # a folder holds one scene set
        run_trials(sim_cell_factory("d435", "fast"), ["gt"], 1, 6, tmp_path, progress=False,
                   provenance={"sensor": "d435", "renderer": "fast"})
    picture = cv2.imread(str(tmp_path / "images" / "500000-gt.png"))
    assert picture is not None and picture.shape[1] > 3 * 320  # RGB, raw, repaired side by side, and a bar
    # the camera is part of the trial: another sensor's trials go to another folder
    with pytest.raises(ValueError, match="holds trials with the d435 camera"):
        trials(tmp_path, sensor="l515")
    trials(tmp_path / "lidar", sensor="l515")
    (record,) = [json.loads(line) for line in (tmp_path / "lidar" / "attempts.jsonl").read_text().splitlines()]
    assert record["sensor"] == "l515" and record["scene_seed"] == 500_000
    assert record["renderer"] == "fast"
    # and so is the renderer (the log above records "fast")
    with pytest.raises(ValueError, match="holds trials with the fast renderer"):
        trials(tmp_path / "lidar", sensor="l515", renderer="mitsuba")
    # and so is the detector: a development run's changed numbers are recorded, and runs of two detectors never share
    # a folder (the shipped detector's lines carry no key, as before it could be changed)
    from grasping.detect import detector_config

    changed = detector_config("palm_headroom=0.03")
    with pytest.raises(ValueError, match="holds trials with the shipped detector; use another --out for the "
                                         "detector palm_headroom=0.03"):
        trials(tmp_path, detector=changed)
    trials(tmp_path / "changed", detector=changed)
    (record,) = [json.loads(line) for line in (tmp_path / "changed" / "attempts.jsonl").read_text().splitlines()]
    assert record["detector"] == "palm_headroom=0.03" and "detector" not in json.loads(lines[0])
    with pytest.raises(ValueError, match="holds trials with the detector palm_headroom=0.03; use another --out "
                                         "for the shipped detector"):
        trials(tmp_path / "changed")


def test_detector_settings_from_the_command_line():
    from grasping.detect import DetectorConfig, detector_changes, detector_config

    config = detector_config(" palm_headroom=0.03, collision_points=4")
    assert config.palm_headroom == 0.03 and config.collision_points == 4 and isinstance(config.collision_points, int)
    assert config.grasp_depths == DetectorConfig().grasp_depths  # the rest as shipped
    assert detector_changes(config) == "collision_points=4,palm_headroom=0.03"
    assert detector_config(detector_changes(config)) == config  # the log's record reads back
    assert detector_config(None) == detector_config("") == DetectorConfig() and detector_changes(DetectorConfig()) == ""
    for spec, message in (("palm=1", "'palm' is not a detector setting; settable: collision_points"),
                          ("grasp_depths=0.04", "'grasp_depths' is not a number"),
                          ("palm_headroom", "write KEY=VALUE"), ("palm_headroom=", "write KEY=VALUE"),
                          ("palm_headroom=2cm", "palm_headroom='2cm': not a number"),
                          ("collision_points=2.5", "not an integer"), ("palm_headroom=inf", "not a finite number"),
                          ("palm_headroom=0.02,palm_headroom=0.03", "given twice")):
        with pytest.raises(ValueError, match=re.escape(message)):
            detector_config(spec)


def test_repaired_share_prefers_objects_the_camera_could_not_see():
    """Two cylinders; the raw depth misses one of them (glass): its cluster is flagged repaired and ranked first."""
    pts = _table_and_cylinder(0.03, centre=(0.75, 0.1))
    other = _table_and_cylinder(0.03, centre=(0.75, -0.1))
    other = other[other[:, 2] > 0.001]
    allpts = np.concatenate([pts, other])
    repaired = np.zeros(len(allpts), bool)
    repaired[len(pts):] = True  # the second cylinder's depth came from the completer
    scene = segment(allpts, repaired=repaired)
    assert sorted(np.round(scene.repaired, 2)) == [0.0, 1.0]
    best = GraspDetector().detect(scene)[0]
    assert best.center[1] == pytest.approx(-0.1, abs=0.01)

    # An opaque cylinder whose lower half a completer moved (a blurred outline) keeps a low share: the camera
    # measured its top. The glass one, repaired from top to bottom, still comes first.
    low = (np.arange(len(allpts)) < len(pts)) & (allpts[:, 2] > 0.001) & (allpts[:, 2] < 0.04)
    scene = segment(allpts, repaired=repaired | low)
    assert sorted(np.round(scene.repaired, 2)) == [0.0, 1.0]
    assert GraspDetector().detect(scene)[0].center[1] == pytest.approx(-0.1, abs=0.01)


def test_a_round_glass_ranks_above_two_glasses_joined_into_one_cluster():
    """Completed depth can fill the gap between two glasses, joining them into one elongated cluster whose
    narrow side fits the stroke: its best grasp closes across that gap. A round glass, the same in every other
    respect, ranks first, by the configured weight times the difference in roundness."""
    a = _table_and_cylinder(0.025, centre=(0.75, 0.12))
    b = _table_and_cylinder(0.025, centre=(0.75, 0.05))
    lone = _table_and_cylinder(0.025, centre=(0.75, -0.12))
    gx, gy = np.meshgrid(np.arange(0.726, 0.775, 0.002), np.arange(0.07, 0.1, 0.002))
    bridge = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, 0.1)])  # the filled gap, at the top
    table = lone[lone[:, 2] == 0]
    table = table[(np.hypot(table[:, 0] - 0.75, table[:, 1] - 0.12) > 0.025)
                  & (np.hypot(table[:, 0] - 0.75, table[:, 1] - 0.05) > 0.025)]
    pair = np.concatenate([a[a[:, 2] > 0], b[b[:, 2] > 0], bridge])
    pts = np.concatenate([table, pair, lone[lone[:, 2] > 0]])
    scene = segment(pts, repaired=pts[:, 2] > 0.001)
    assert len(scene.clusters) == 2
    pair_k = int(np.argmax([np.ptp(c[:, 1]) for c in scene.clusters]))
    assert not GraspDetector()._is_several(scene.clusters[pair_k])  # no waist: only the ranking can tell
    round_pair, round_lone = (roundness(c[:, :2]) for c in (scene.clusters[pair_k], scene.clusters[1 - pair_k]))
    assert round_pair < 0.6 < 0.95 < round_lone

    def best(cfg, k):
        return max(g.score for g in GraspDetector(cfg).detect(scene) if g.cluster == k)

    plain = DetectorConfig(roundness_weight=0.0)
    assert best(plain, pair_k) > 0 and best(plain, 1 - pair_k) > 0
    grasps = GraspDetector().detect(scene)
    assert grasps[0].center[1] == pytest.approx(-0.12, abs=0.01)
    w = DetectorConfig().roundness_weight
    gap = best(DetectorConfig(), 1 - pair_k) - best(DetectorConfig(), pair_k)
    assert gap == pytest.approx(best(plain, 1 - pair_k) - best(plain, pair_k) + w * (round_lone - round_pair))


BOTTLE_PROFILE = ([0.0, 0.10, 0.14, 0.18], [0.03, 0.03, 0.012, 0.012])  # ``_bottle``'s radius by height (metres)


def _bottle(centre, step=0.004):
    """A bottle's surface, every side of it: a 30 mm radius body up to 0.10 m, a shoulder narrowing to a 12 mm
    neck at 0.14 m, the neck up to 0.18 m, and its mouth's disc on top (``BOTTLE_PROFILE``)."""
    zs = np.arange(0.004, 0.18, step / 2)
    radius = np.interp(zs, *BOTTLE_PROFILE)
    rings = []
    for z, r in zip(zs, radius):
        th = np.linspace(0, 2 * np.pi, max(int(2 * np.pi * r / (step / 2)), 8), endpoint=False)
        rings.append(np.column_stack([centre[0] + r * np.cos(th), centre[1] + r * np.sin(th), np.full(len(th), z)]))
    gx, gy = np.meshgrid(np.arange(-0.012, 0.012, step / 2), np.arange(-0.012, 0.012, step / 2))
    inside = gx.ravel() ** 2 + gy.ravel() ** 2 < 0.012**2
    mouth = np.column_stack([centre[0] + gx.ravel()[inside], centre[1] + gy.ravel()[inside],
                             np.full(inside.sum(), 0.18)])
    return np.concatenate(rings + [mouth])


def _bottle_and_tumbler():
    """A glass tumbler (a 30 mm radius cylinder 0.10 m tall) at y = -0.1 and a glass ``_bottle`` at y = 0.1, on a
    table, segmented with every point above the table marked repaired."""
    cyl = _table_and_cylinder(0.03, centre=(0.75, -0.1))
    table = cyl[cyl[:, 2] == 0]
    table = table[np.hypot(table[:, 0] - 0.75, table[:, 1] - 0.1) > 0.03]
    pts = np.concatenate([table, cyl[cyl[:, 2] > 0], _bottle((0.75, 0.1))])
    return segment(pts, repaired=pts[:, 2] > 0.001)


def test_a_glass_with_straight_walls_ranks_above_a_bottle_grasped_on_its_shoulder():
    """A bottle and a tumbler, both glass. The bottle's grasp 40 mm below its top puts the pads on the shoulder,
    which narrows upwards by 2 x 18 mm over their height at most; without the shoulder term the bottle ranks
    first (a narrower opening, a higher grasp), with it the tumbler does."""
    scene = _bottle_and_tumbler()
    assert len(scene.clusters) == 2
    plain = GraspDetector(DetectorConfig(shoulder_weight=0.0, neck_weight=0.0)).detect(scene)
    assert plain[0].center[1] == pytest.approx(0.1, abs=0.01)  # the bottle
    g = plain[0]
    k = g.cluster
    pad = DEFAULT_GRIPPER.finger_length
    z_h = float(scene.height(np.array([g.center]))[0])
    (narrowing,) = shoulder(scene.clusters[k], scene.height(scene.clusters[k]),
                            np.array([[np.cos(g.yaw), np.sin(g.yaw)]]), z_h, pad)
    r = np.interp([z_h - pad / 2, z_h + pad / 2], *BOTTLE_PROFILE)
    assert narrowing == pytest.approx(2 * (r[0] - r[1]), abs=0.005)
    assert narrowing > 2 * DetectorConfig().shoulder_free
    tumbler = scene.clusters[1 - k]
    (straight,) = shoulder(tumbler, scene.height(tumbler), np.array([[1.0, 0.0]]), 0.06, pad)
    assert straight == pytest.approx(0.0, abs=0.002)
    grasps = GraspDetector(DetectorConfig(neck_weight=0.0)).detect(scene)
    assert grasps[0].center[1] == pytest.approx(-0.1, abs=0.01)
    on_bottle = max(g.score for g in grasps if g.cluster == k)
    assert on_bottle == pytest.approx(plain[0].score - DetectorConfig().shoulder_weight)


def test_a_glass_with_straight_walls_ranks_above_a_bottle_with_a_neck():
    """The same bottle and tumbler, the shoulder term off (completed depth often smooths a shoulder away): the
    bottle's top 20 mm is its neck and the top of its shoulder, under 0.65 of its 60 mm body's width, and its
    grasps lose the whole neck weight; the tumbler's top is as wide as its body and loses nothing, so it ranks first."""
    scene = _bottle_and_tumbler()
    plain = GraspDetector(DetectorConfig(shoulder_weight=0.0, neck_weight=0.0)).detect(scene)
    assert plain[0].center[1] == pytest.approx(0.1, abs=0.01)  # the bottle
    k = plain[0].cluster
    cfg = DetectorConfig(shoulder_weight=0.0)
    directions = np.array([[1.0, 0.0], [0.0, 1.0], [np.sqrt(0.5), np.sqrt(0.5)]])
    for cluster, bottle_profile in ((scene.clusters[k], True), (scene.clusters[1 - k], False)):
        h = scene.height(cluster)
        top = float(np.percentile(h, cfg.top_percentile))
        # the widest part of the top band is its lowest, on the shoulder: the radius there over the body's
        expected = np.interp(top - cfg.neck_band, *BOTTLE_PROFILE) / 0.03
        ratio = neck(cluster, h, directions, top, cfg.neck_band)
        assert ratio == pytest.approx(expected if bottle_profile else 1.0, abs=0.03)
        assert (ratio < cfg.neck_full).all() if bottle_profile else (ratio > cfg.neck_free).all()
    grasps = GraspDetector(cfg).detect(scene)
    assert grasps[0].center[1] == pytest.approx(-0.1, abs=0.01)  # the tumbler
    assert max(g.score for g in grasps if g.cluster == k) == pytest.approx(plain[0].score - cfg.neck_weight)
    assert max(g.score for g in grasps if g.cluster != k) == pytest.approx(
        max(g.score for g in plain if g.cluster != k))
    # with the shoulder term too, the bottle's best grasp closes on its shoulder and shows both signs: it loses
    # the larger penalty, not their sum
    both = GraspDetector().detect(scene)
    assert both[0].center[1] == pytest.approx(-0.1, abs=0.01)
    assert max(g.score for g in both if g.cluster == k) == pytest.approx(
        plain[0].score - max(cfg.neck_weight, cfg.shoulder_weight))


def test_neck_of_too_few_points_is_zero():
    """Fewer than three points at the top, or in all: a share of 0, not a division error."""
    pts = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.0], [0.01, 0.0, 0.1]])
    h = pts[:, 2]
    assert neck(pts, h, np.array([[1.0, 0.0]]), 0.1, 0.02) == pytest.approx([0.0])
    assert neck(pts[:2], h[:2], np.array([[1.0, 0.0]]), 0.0, 0.02) == pytest.approx([0.0])


def test_in_one_cluster_of_glass_and_an_opaque_object_the_glass_part_ranks_first():
    """A glass touching an opaque cylinder of the same size: one cluster, graspable only in part. Grasps on the
    opaque part lose the preference the glass gives the cluster; grasps on the glass keep it."""
    a = _table_and_cylinder(0.025, centre=(0.75, 0.025))
    b = _table_and_cylinder(0.025, centre=(0.75, -0.025))
    table = a[a[:, 2] == 0]
    table = table[np.hypot(table[:, 0] - 0.75, table[:, 1] + 0.025) > 0.025]
    glass, opaque = a[a[:, 2] > 0], b[b[:, 2] > 0]
    pts = np.concatenate([table, opaque, glass])
    repaired = np.zeros(len(pts), bool)
    repaired[-len(glass):] = True
    scene = segment(pts, repaired=repaired)
    assert len(scene.clusters) == 1
    grasps = GraspDetector().detect(scene)
    on_glass = [g.score for g in grasps if abs(g.center[1] - 0.025) < 0.01]
    on_opaque = [g.score for g in grasps if abs(g.center[1] + 0.025) < 0.01]
    assert on_glass and on_opaque
    assert grasps[0].center[1] > 0.0  # not on the opaque cylinder
    assert max(on_opaque) < max(on_glass) - 0.3


def _table_and_ring(radius, centre=(0.75, 0.0), height=0.06, step=0.004, sides=True):
    """An open vessel seen from above: table, wall ring, no lid; the floor sits in the table band.
    ``sides=False`` leaves out the rim's thin left and right parts, as the camera often does."""
    xs, ys = np.meshgrid(np.arange(0.45, 1.05, step), np.arange(-0.3, 0.3, step))
    table = np.column_stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)])
    n = int(2 * np.pi * radius / (step / 2))
    th, zz = np.meshgrid(np.linspace(-np.pi, np.pi, n, endpoint=False), np.arange(0.012, height, step))
    th, zz = th.ravel(), zz.ravel()
    if not sides:
        keep = np.abs(np.sin(th)) < 0.95  # the near and far walls, a gap at each side
        th, zz = th[keep], zz[keep]
    wall = np.column_stack([centre[0] + radius * np.cos(th), centre[1] + radius * np.sin(th), zz])
    return np.concatenate([table, wall])


def test_detector_pinches_the_rim_of_a_bowl_wider_than_the_stroke():
    scene = segment(_table_and_ring(0.065))
    assert len(scene.clusters) == 1
    grasps = GraspDetector().detect(scene)
    assert grasps, "a 130 mm bowl can still be pinched at its rim"
    for g in grasps:
        r = np.hypot(g.center[0] - 0.75, g.center[1])
        assert r == pytest.approx(0.065, abs=0.005)
        radial = np.arctan2(g.center[1], g.center[0] - 0.75)
        assert abs(np.sin(g.yaw - radial)) < 0.05  # the jaws close across the wall
        assert g.width < 0.05 and 0.06 - 0.03 < g.center[2] < 0.06  # pads reach below the rim
        assert g.kind == "rim"


def _bowl_holding(inside, hidden):
    """A 130 mm bowl 50 mm tall at (0.75, 0), its floor 12 mm up, holding the points ``inside``, which hide the
    floor within ``hidden`` of the bowl's axis."""
    bowl = _table_and_ring(0.065, height=0.05)
    step = 0.004
    gx, gy = np.meshgrid(np.arange(-0.065, 0.065, step / 2), np.arange(-0.065, 0.065, step / 2))
    r = np.hypot(gx.ravel(), gy.ravel())
    floor = (r < 0.063) & (r > hidden)
    floor = np.column_stack([0.75 + gx.ravel()[floor], gy.ravel()[floor], np.full(floor.sum(), 0.012)])
    bowl = bowl[(bowl[:, 2] > 0) | (np.hypot(bowl[:, 0] - 0.75, bowl[:, 1]) > 0.065)]  # the table under the bowl
    return np.concatenate([bowl, floor, inside])


def _bowl_holding_a_cylinder():
    """The bowl of ``_bowl_holding`` and a 40 mm cylinder 100 mm tall standing in it."""
    cylinder = _table_and_cylinder(0.02, centre=(0.75, 0.0), height=0.1)
    return _bowl_holding(cylinder[cylinder[:, 2] > 0.012], 0.02)


def test_what_rests_in_a_bowl_is_grasped_when_nothing_else_can_be():
    """A cylinder standing in a bowl is one cluster with the bowl, 130 mm wide, and two rims at different heights:
    no grasp of the whole, no rim pinch at its top, no part between finger-wide gaps (without the object on top,
    only pinches of the bowl's outline). The object on top is grasped first: at the cylinder's axis, opened to
    its width plus the margin, the fingers inside the bowl."""
    scene = segment(_bowl_holding_a_cylinder())
    assert len(scene.clusters) == 1
    assert {g.kind for g in GraspDetector(DetectorConfig(top_layers=())).detect(scene)} == {"rim"}
    grasps = GraspDetector().detect(scene)
    assert grasps
    g = grasps[0]
    assert np.hypot(g.center[0] - 0.75, g.center[1]) < 0.005
    assert g.width == pytest.approx(0.04 + DetectorConfig().width_margin, abs=0.006)
    assert g.center[2] == pytest.approx(0.1 - DetectorConfig().grasp_depths[0], abs=0.006)
    assert g.kind == "top"


def test_a_bowl_holding_a_ball_is_pinched_at_the_rim_of_its_outline():
    """A ball resting in a bowl rises above the rim, so the cluster's top points are the ball's and no rim is
    found there. Where nothing else can be grasped (here the ball itself, as if the bowl's walls left the fingers
    no room), the bowl is pinched at the circle of its outline, below the top of the points along it, and the
    inner finger keeps clear of the ball."""
    th, ph = np.meshgrid(np.linspace(-np.pi, np.pi, 120, endpoint=False), np.linspace(0.0, np.pi / 2, 20))
    ball = np.column_stack([0.75 + 0.025 * np.cos(th.ravel()) * np.cos(ph.ravel()),
                            0.025 * np.sin(th.ravel()) * np.cos(ph.ravel()), 0.037 + 0.025 * np.sin(ph.ravel())])
    scene = segment(_bowl_holding(ball, 0.025))  # a 50 mm ball on the floor, 12 mm above the rim
    assert len(scene.clusters) == 1
    detector = GraspDetector(DetectorConfig(top_layers=()))
    assert detector._rim_grasps(scene, 0, scene.clusters[0]) == []  # the top points are the ball's cap
    grasps = detector.detect(scene)
    assert grasps and {g.kind for g in grasps} == {"rim"}
    g = DetectorConfig().gripper
    for grasp in grasps:
        assert np.hypot(grasp.center[0] - 0.75, grasp.center[1]) == pytest.approx(0.065, abs=0.005)
        assert 0.05 - 0.03 < grasp.center[2] < 0.05  # below the bowl's rim, not the ball's top
        inner_edge = np.hypot(grasp.center[0] - 0.75, grasp.center[1]) - grasp.width / 2 - g.finger_thickness
        assert inner_edge > 0.025  # the inner finger outside the ball


def test_near_and_far_walls_of_one_vessel_are_one_object_and_neighbours_stay_apart():
    scene = segment(_table_and_ring(0.035, sides=False))
    assert len(scene.clusters) == 1
    # two solid cylinders 15 mm apart with level tops are two objects, not one rim
    a = _table_and_cylinder(0.03, centre=(0.75, 0.0375), height=0.08)
    b = _table_and_cylinder(0.03, centre=(0.75, -0.0375), height=0.08)
    assert len(segment(np.concatenate([a, b[b[:, 2] > 0.001]])).clusters) == 2


def test_a_few_stray_points_are_not_an_object():
    pts = _table_and_cylinder(0.03)
    stray = np.column_stack([np.full(30, 0.6), np.linspace(-0.2, -0.195, 30), np.linspace(0.05, 0.1, 30)])
    scene = segment(np.concatenate([pts, stray]))
    assert len(scene.clusters) == 1


def _canned(outcomes):
    """``attempt`` stand-in: Attempts with the given (success, grasp found, stop) outcomes, in order."""
    from grasping.detect import Grasp
    from grasping.trials import Attempt, Perception

    it = iter(outcomes)

    def fake_attempt(cell, completer, detector, failed=()):
        ok, found, stop = next(it)
        grasp = Grasp((0.7, 0.0, 0.05), 0.0, 0.06, 1.0, 0) if found else None
        reason = "ok" if ok else ("empty gripper" if found else "no grasp found")
        return Attempt(None, Perception(None, None, [grasp] if grasp else [], 5.0, None), grasp, ok, reason, None,
                       stop_active=stop)

    return fake_attempt


def test_a_pick_does_not_repeat_a_grasp_that_failed():
    from grasping.detect import Grasp
    from grasping.trials import choose

    a = Grasp((0.70, 0.0, 0.05), np.pi / 2 - 0.01, 0.06, 3.0, 0)
    near = Grasp((0.705, 0.004, 0.05), np.pi / 2 - 0.2, 0.06, 2.5, 0)  # 6 mm and 11 degrees away: the same grasp
    turned = Grasp((0.70, 0.0, 0.05), 0.0, 0.06, 2.0, 0)  # the same centre, closing square to it
    other = Grasp((0.75, 0.0, 0.05), np.pi / 2, 0.06, 1.0, 1)
    ranked = [a, near, turned, other]
    assert choose(ranked) is a and choose([]) is None
    failed = Grasp((0.70, 0.0, 0.05), -np.pi / 2 + 0.05, 0.06, 3.0, 0)  # a's yaw, folded the other way
    assert choose(ranked, [failed]) is turned
    assert choose(ranked, [failed, turned]) is other
    assert choose([a, near], [failed]) is a  # nothing else to try: the best again


def test_each_retry_avoids_every_grasp_that_failed_before_it(monkeypatch):
    import grasping.trials as trials

    fake, avoided = _canned([(False, True, False)] * 3), []

    def recording(cell, completer, detector, failed=()):
        avoided.append(len(failed))
        return fake(cell, completer, detector, failed)

    first = fake(None, None, None)
    monkeypatch.setattr(trials, "attempt", recording)
    trials.retry(None, None, None, first, 3)
    assert avoided == [1, 2]


@pytest.mark.parametrize("outcomes, tries, expected", [
    ([(False, True, False), (False, True, False), (True, True, False)], 3, [False, True]),  # third try holds
    ([(False, True, False), (True, True, False), (True, True, False)], 3, [True]),  # stops at the first success
    ([(False, True, False)] * 5, 3, [False, False]),  # never more than ``tries`` attempts in all
    ([(False, True, False), (False, False, False)], 3, [False]),  # nothing found: the view will not change
    ([(False, True, True), (True, True, False)], 3, []),  # a protective stop ends the scene
    ([(False, True, False), (True, True, False)], 1, []),  # --tries 1: no retries
])
def test_closed_loop_retries_a_failed_pick_up_to_the_given_tries(monkeypatch, outcomes, tries, expected):
    import grasping.trials as trials

    fake = _canned(outcomes)
    first = fake(None, None, None)
    monkeypatch.setattr(trials, "attempt", fake)
    retries = trials.retry(None, None, None, first, tries)
    assert [r["success"] for r in retries] == expected


def test_every_failure_reason_the_cells_give_is_on_the_fixed_list():
    """The summaries count failures by a fixed list; a reason outside it shows as "other"."""
    import inspect
    import re

    import grasping.execute
    import grasping.trials
    import hardware.cell
    import sim.world
    from grasping.report import FAILURES, failure_kind

    given = set()
    for module in (grasping.execute, grasping.trials, hardware.cell, sim.world):
        src = inspect.getsource(module)
        given |= set(re.findall(r'return (?:PickResult\()?False, f?"([^":{]+)', src))
        given |= set(re.findall(r'reason = (?:None if grasps else )?f?"([^":{]+)', src))
    assert given and {failure_kind(r) for r in given} <= set(FAILURES), given
    assert failure_kind("IK failure: pose at [1, 0, 0] m is beyond reach") == "IK failure"
    assert failure_kind("something new") == "other"


def test_table_plane_fit_is_exact_and_repeatable():
    """RANSAC + least squares finds a tilted table among 40% clutter, and the same points give the same plane."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(-0.3, 0.3, (6000, 2))
    n = np.array([0.05, -0.03, 1.0]) / np.linalg.norm([0.05, -0.03, 1.0])
    table = np.column_stack([xy, -(n[0] * xy[:, 0] + n[1] * xy[:, 1] + 0.02) / n[2]])
    table += rng.normal(0, 0.001, table.shape)
    clutter = rng.uniform([-0.3, -0.3, 0.01], [0.3, 0.3, 0.3], (4000, 3))
    pts = np.concatenate([table, clutter])
    plane, inliers = fit_plane(pts, 0.006, 200)
    assert np.degrees(np.arccos(abs(plane[:3] @ n))) < 0.3
    assert inliers[:6000].mean() > 0.99 and inliers[6000:].mean() < 0.05
    again, same = fit_plane(pts, 0.006, 200)
    assert np.array_equal(plane, again) and np.array_equal(inliers, same)


def test_voxel_average_matches_open3d():
    """One mean point (and mean value) per occupied voxel, on open3d's grid."""
    import open3d as o3d

    rng = np.random.default_rng(5)
    pts = rng.uniform(0, 0.1, (5000, 3))
    vals = rng.uniform(0, 1, 5000)
    means, avg = voxel_average(pts, vals, 0.004)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pcd.colors = o3d.utility.Vector3dVector(np.column_stack([vals, vals, vals]))
    ref = pcd.voxel_down_sample(0.004)
    ref_pts, ref_vals = np.asarray(ref.points), np.asarray(ref.colors)[:, 0]
    assert len(means) == len(ref_pts)
    order, ref_order = np.lexsort(means.T), np.lexsort(ref_pts.T)
    assert np.allclose(means[order], ref_pts[ref_order], atol=1e-9)
    assert np.allclose(avg[order], ref_vals[ref_order], atol=1e-9)


def test_footprint_clustering_is_dbscan():
    """Blobs, a thin ring, a bridge of sparse points and scattered noise: with cells finer than the points'
    spacing the clusters are open3d's DBSCAN clusters, core points and all; at the 2 mm cells segmentation uses
    they still are, to a few border points."""
    import open3d as o3d

    rng = np.random.default_rng(8)
    th = rng.uniform(0, 2 * np.pi, 600)
    xy = np.concatenate([rng.normal([0.0, 0.0], 0.012, (800, 2)), rng.normal([0.12, 0.0], 0.01, (600, 2)),
                         np.column_stack([0.3 + 0.05 * np.cos(th), 0.05 * np.sin(th)]),  # a glass's rim
                         np.column_stack([np.linspace(0.04, 0.08, 9), np.zeros(9)]),  # too sparse to join
                         rng.uniform(-0.1, 0.4, (60, 2))])
    ref = np.asarray(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.column_stack([xy, np.zeros(len(xy))])))
                     .cluster_dbscan(0.009, 15))
    for cell, border in ((1e-6, 0), (0.002, 10)):
        got = cluster_footprint(xy, 0.009, 15, cell)
        assert got.max() == ref.max() >= 2
        pairs = {(a, b) for a, b in zip(ref, got) if a >= 0 and b >= 0}
        assert len(pairs) == ref.max() + 1  # one found cluster per DBSCAN cluster
        assert ((ref >= 0) != (got >= 0)).sum() <= border


def test_a_border_point_between_two_clusters_joins_the_nearer_one():
    """A point too sparse to be a core, within reach of the cores of two clusters, belongs to the one whose
    core is nearer, whichever order the neighbour search lists the pairs in."""
    line = np.repeat(np.arange(0.0, 0.021, 0.002), 3)  # every position three times: cores to the ends
    for x, nearer in ((0.007, 0), (0.0085, 1)):
        xy = np.column_stack([np.concatenate([-line, 0.0155 + line, [x]]), np.zeros(2 * len(line) + 1)])
        for order in (np.arange(len(xy)), np.arange(len(xy))[::-1]):
            labels = cluster_footprint(xy[order], 0.009, 15, 1e-6)[np.argsort(order)]
            assert labels[:len(line)].tolist() == [0] * len(line)
            assert labels[len(line):-1].tolist() == [1] * len(line)
            assert labels[-1] == nearer


def test_segmentation_is_repeatable():
    pts = _table_and_cylinder(0.03)
    a, b = segment(pts), segment(pts)
    assert np.array_equal(a.plane, b.plane) and len(a.clusters) == len(b.clusters)
    assert all(np.array_equal(x, y) for x, y in zip(a.clusters, b.clusters))


def test_frame_points_are_the_valid_pixels_in_the_base_frame():
    """Pixel order, pinhole back-projection, the camera pose applied, the range cut and the repaired flags."""
    from grasping.cloud import filled_between, frame_points
    from pipeline.types import CameraIntrinsics, RGBDFrame

    rng = np.random.default_rng(3)
    K = CameraIntrinsics(40, 30, 35.0, 36.0, 19.5, 14.0)
    depth = rng.uniform(0.3, 1.5, (30, 40)).astype(np.float32)
    depth[rng.random((30, 40)) < 0.2] = 0.0
    depth[0, :5] = 2.5  # beyond max_range
    raw = depth.copy()
    raw[5, :] = 0.0  # no raw reading
    raw[6, :] += 0.05  # moved by the completer
    T = np.eye(4)
    T[:3, :3] = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    T[:3, 3] = (0.5, 0.1, 1.2)
    frame = RGBDFrame(np.zeros((30, 40, 3), np.uint8), depth, K, T_base_cam=T)
    v, u = np.nonzero((depth > 0) & (depth < 2.0))
    z = depth[v, u].astype(np.float64)
    cam = np.column_stack([(u - K.cx) / K.fx * z, (v - K.cy) / K.fy * z, z])
    pts, repaired = frame_points(frame)
    np.testing.assert_allclose(pts, cam @ T[:3, :3].T + T[:3, 3], atol=1e-12)
    assert not repaired.any()  # without raw depth nothing counts as repaired
    pts, repaired = frame_points(frame, raw_depth=raw, max_range=2.0)
    np.testing.assert_allclose(pts, cam @ T[:3, :3].T + T[:3, 3], atol=1e-12)
    np.testing.assert_array_equal(repaired, (v == 5) | (v == 6))
    # the holes bridged between measured surfaces left out
    pts, repaired = frame_points(frame, raw_depth=raw, max_range=2.0, drop_bridged=True)
    kept = ~filled_between(depth, raw)[v, u]
    assert 0 < (~kept).sum() < (v == 5).sum()  # random depth: some of the hole's row lies between its neighbours
    np.testing.assert_allclose(pts, (cam @ T[:3, :3].T + T[:3, 3])[kept], atol=1e-12)
    np.testing.assert_array_equal(repaired, ((v == 5) | (v == 6))[kept])
    moved = T.copy()  # the rays are cached per camera pose: a camera that moved gets its own
    moved[:3, :3] = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    pts, _ = frame_points(RGBDFrame(frame.rgb, depth, K, T_base_cam=moved), max_range=2.0)
    np.testing.assert_allclose(pts, cam @ moved[:3, :3].T + moved[:3, 3], atol=1e-12)


def test_holes_bridged_between_measured_surfaces_are_found_and_glass_is_not():
    """A stereo shadow along a box's edge: raw holes between the box's top (0.60 m) and the table behind it
    (0.70 m). A completer's ramp across the hole floats between the two; the box's or the table's own depth
    does not, and neither does glass the camera saw no near surface of (raw reads the table around it)."""
    from grasping.cloud import filled_between

    raw = np.full((20, 30), 0.70, np.float32)
    raw[:, :10] = 0.60  # the box's top
    raw[:, 10:12] = 0.0  # the shadow along its edge
    raw[:, 20:25] = 0.0  # glass the camera missed
    depth = raw.copy()
    depth[:, 10:12] = (0.63, 0.67)  # a ramp from the box to the table
    depth[:, 20:25] = 0.55  # the glass's completed surface
    between = filled_between(depth, raw)
    assert between[:, 10:12].all() and between.sum() == 20 * 2
    sharp = depth.copy()
    sharp[:, 10], sharp[:, 11] = 0.60, 0.70  # filled with the two surfaces themselves: nothing floats
    assert not filled_between(sharp, raw).any()
    shallow = raw.copy()
    shallow[:, :10] = 0.69  # a step smaller than BETWEEN_JUMP_M is no edge
    assert not filled_between(np.where(shallow > 0, shallow, 0.695).astype(np.float32), shallow).any()
    wide = raw.copy()
    wide[:, 10:16] = 0.0  # a hole wider than the window sees across: no measured pair of surfaces to bridge
    assert not filled_between(np.where(wide > 0, wide, 0.65).astype(np.float32), wide)[:, 12:14].any()


class _SecondLookDetector:
    """Finds a grasp only on its second call, and counts the object points of every scene it is given."""

    def __init__(self, first: bool = False):
        self.first, self.seen = first, []

    def detect(self, scene):
        self.seen.append(len(scene.object_points))
        if self.first or len(self.seen) > 1:
            return [Grasp((0.7, 0.0, 0.02), 0.0, 0.07, 1.0, 0, "whole")]
        return []


def test_a_look_that_finds_no_grasp_looks_again_without_the_bridged_holes():
    """A 60 mm box seen from straight above, a 2-pixel shadow around its top filled with a ramp (points in
    mid-air that widen it): where the detector finds nothing, perception segments the frame again without the
    shadow's points and keeps what that finds; where it finds a grasp, there is no second look."""
    from grasping.trials import perceive
    from pipeline.types import CameraIntrinsics, RGBDFrame

    K = CameraIntrinsics(80, 60, 300.0, 300.0, 39.5, 29.5)
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])  # looking straight down from 0.7 m
    T[:3, 3] = (0.7, 0.0, 0.7)
    v, u = np.mgrid[:60, :80]
    side = np.maximum(np.abs(u - K.cx), np.abs(v - K.cy))
    raw = np.where(side < 13.5, 0.66, 0.70).astype(np.float32)  # the box's top 40 mm above the table
    filled = raw.copy()
    ring = (side >= 13.5) & (side < 15.5)
    raw[ring] = 0.0
    filled[ring] = np.where(side[ring] < 14.5, 0.673, 0.687)
    frame = RGBDFrame(np.zeros((60, 80, 3), np.uint8), raw, K, T_base_cam=T, depth_gt=filled)
    detector = _SecondLookDetector()
    seen = perceive(frame, make_completer("gt"), detector)
    assert len(detector.seen) == 2 and detector.seen[1] < detector.seen[0]
    assert seen.grasps and seen.reason is None and "again" in seen.stages_ms
    assert len(seen.scene.object_points) == detector.seen[1]
    detector = _SecondLookDetector(first=True)
    seen = perceive(frame, make_completer("gt"), detector)
    assert len(detector.seen) == 1 and "again" not in seen.stages_ms


def test_median_is_numpys():
    from grasping.cloud import median

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 11, 200):
        x = rng.normal(size=n)
        assert median(x) == np.median(x)
    assert np.isnan(median(np.zeros(0)))
