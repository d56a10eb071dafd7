"""The safety gate: nothing non-finite, mirrored, out of the box, beyond the joint limits or too fast is sent,
to the real driver (over the fakes of ur_rtde) or the simulated arm; the dry run checks the same way."""

import numpy as np
import pytest

from grasping.robot import WorkspaceBox, top_down_pose
from grasping.safety import MotionLimits, SafetyError, SafetyGate
from hardware.ur10e import UR10eRTDE
from tests.fakes.ur_rtde_fake import FakeURState, factories

GOOD = top_down_pose(0.7, 0.0, 0.2, 0.3)


def _bad_poses():
    nan = GOOD.copy()
    nan[2, 3] = np.nan
    inf = GOOD.copy()
    inf[0, 3] = np.inf
    mirror = GOOD.copy()
    mirror[:3, 0] *= -1
    skew = GOOD.copy()
    skew[:3, :3] *= 1.1
    row = GOOD.copy()
    row[3, 0] = 1.0
    out = top_down_pose(0.7, 0.0, 0.9, 0.0)
    nan_rot = GOOD.copy()
    nan_rot[0, 0] = np.nan
    return [("nan position", nan, "NaN"), ("inf position", inf, "NaN or infinite"), ("mirror", mirror, "mirror"),
            ("scaled", skew, "orthonormal"), ("last row", row, "last row"), ("outside", out, "workspace box"),
            ("nan rotation", nan_rot, "NaN"), ("3x3", np.eye(3), "not 4x4")]


@pytest.mark.parametrize("name, pose, message", _bad_poses(), ids=[b[0] for b in _bad_poses()])
def test_gate_refuses_bad_poses(name, pose, message):
    with pytest.raises(SafetyError, match=message):
        SafetyGate().check_linear(pose, 0.1, 1.0)


def test_gate_checks_speeds_accelerations_and_joints():
    gate = SafetyGate(MotionLimits(WorkspaceBox(), max_linear_speed=0.25, max_linear_acceleration=1.2))
    assert np.allclose(gate.check_linear(GOOD, 0.25, 1.2), GOOD)
    for speed, acc in ((0.0, 1.0), (-0.1, 1.0), (0.3, 1.0), (np.nan, 1.0), (0.1, 5.0), (0.1, np.inf)):
        with pytest.raises(SafetyError):
            gate.check_linear(GOOD, speed, acc)
    q = [0, -1.5, 1.5, -1.5, -1.5, 0]
    assert gate.check_joints(q, 0.5, 1.0).shape == (6,)
    for bad in ([0, 0, 0, 0, 0], [0, 0, 0, 0, 0, np.nan], [0, 0, 0, 0, 0, 7.0], "abc"):
        with pytest.raises(SafetyError):
            gate.check_joints(bad, 0.5)
    with pytest.raises(SafetyError, match="joint speed"):
        gate.check_joints(q, 2.0)


def test_workspace_box_refuses_nan():
    from grasping.robot import LimitError

    T = GOOD.copy()
    T[1, 3] = np.nan
    with pytest.raises(LimitError):
        WorkspaceBox().check(T)


@pytest.mark.parametrize("dry_run", [False, True])
def test_real_driver_sends_nothing_unchecked(dry_run):
    state = FakeURState()
    control, receive = factories(state)
    robot = UR10eRTDE("10.0.0.2", dry_run=dry_run, control_factory=control, receive_factory=receive)
    with robot:
        for _, pose, _ in _bad_poses():
            with pytest.raises(SafetyError):
                robot.move_linear(pose, 0.1)
        with pytest.raises(SafetyError):
            robot.move_joints([0, 0, 0, 0, 0, np.nan], 0.5)
        state.unsafe = True  # the controller's own check runs in the dry run too
        with pytest.raises(SafetyError, match="controller rejects"):
            robot.move_linear(GOOD, 0.1)
    assert state.sent == [] and robot.planned == []


def test_simulated_arm_passes_the_same_gate():
    import pybullet as p

    from sim.robot import SimUR10e

    c = p.connect(p.DIRECT)
    try:
        robot = SimUR10e(c)
        for _, pose, _ in _bad_poses():
            with pytest.raises(SafetyError):
                robot.move_linear(pose, 0.1)
        with pytest.raises(SafetyError):
            robot.move_joints([0, 0, 0, 0, 0, np.inf], 0.5)
    finally:
        p.disconnect(physicsClientId=c)


def test_a_pick_at_nan_height_sends_nothing():
    from grasping.detect import Grasp
    from grasping.execute import PickExecutor

    state = FakeURState()
    control, receive = factories(state)

    class Gripper:
        def open(self, width=None): pass
        def close(self, force): return True
        def width(self): return 0.05

    with UR10eRTDE("10.0.0.2", control_factory=control, receive_factory=receive) as robot:
        result = PickExecutor(robot, Gripper(), wait=lambda s: None).pick(Grasp((0.7, 0.0, float("nan")), 0.0, 0.05, 1, 0))
    assert not result.success and "NaN" in result.reason
    assert state.sent == []
