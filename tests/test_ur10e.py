"""UR10eRTDE against fakes of the ur_rtde seam."""

import numpy as np
import pytest

from grasping.execute import PickExecutor
from grasping.detect import Grasp
from grasping.robot import LimitError, RobotError, top_down_pose
from hardware.ur10e import URConfig, UR10eRTDE
from tests.fakes.ur_rtde_fake import FakeURState, factories


def _robot(state, **kw):
    control, receive = factories(state)
    return UR10eRTDE("10.0.0.2", control_factory=control, receive_factory=receive, **kw)


def test_moves_are_sent_in_ur_base_frame_with_limits():
    state = FakeURState()
    with _robot(state) as robot:
        assert state.tcp_set == [0, 0, URConfig().tcp_offset, 0, 0, 0]
        T = top_down_pose(0.7, 0.1, 0.2, 0.0)
        reached = robot.move_linear(T, 0.2)
        kind, target, speed, acc = state.sent[-1]
        assert kind == "moveL" and speed == 0.2 and acc == URConfig().linear_acceleration
        np.testing.assert_allclose(target[:3], [0.7, 0.1, 0.2])
        np.testing.assert_allclose(reached, T, atol=1e-9)
        robot.move_joints([0, -1.5, 1.5, -1.5, -1.5, 0], 0.5)
        assert state.sent[-1][0] == "moveJ"


def test_pose_outside_workspace_is_refused_before_sending():
    state = FakeURState()
    with _robot(state) as robot:
        with pytest.raises(LimitError, match="workspace box"):
            robot.move_linear(top_down_pose(2.0, 0.0, 0.2, 0.0), 0.1)
        with pytest.raises(LimitError, match="linear speed"):
            robot.move_linear(top_down_pose(0.7, 0.0, 0.2, 0.0), 3.0)
        state.unsafe = True
        with pytest.raises(LimitError, match="safety limits"):
            robot.move_linear(top_down_pose(0.7, 0.0, 0.2, 0.0), 0.1)
    assert state.sent == []


def test_protective_stop_mid_pick_aborts_and_stops_the_arm():
    state = FakeURState()
    state.protective_stop_on_move = 2  # the descent
    with _robot(state) as robot:
        class Gripper:
            def open(self, width=None): pass
            def close(self, force): return True
            def width(self): return 0.05
        result = PickExecutor(robot, Gripper(), wait=lambda s: None).pick(Grasp((0.7, 0.0, 0.05), 0.0, 0.06, 1.0, 0))
    assert not result.success and result.reason.startswith("aborted") and "protective stop" in result.reason
    assert state.stop_calls >= 1
    assert len(state.sent) == 2  # nothing more was sent after the stop


def test_guarded_descent_stops_on_contact_and_backs_off():
    state = FakeURState()
    with _robot(state) as robot:
        robot.move_linear(top_down_pose(0.7, 0.0, 0.25, 0.0), 0.2)
        assert robot.descend(top_down_pose(0.7, 0.0, 0.10, 0.0), 0.1) is False  # nothing in the way
        assert state.asynchronous and state.stop_calls == 0
        np.testing.assert_allclose(state.tcp[:3], [0.7, 0.0, 0.10])
        robot.move_linear(top_down_pose(0.7, 0.0, 0.25, 0.0), 0.2)
        state.contact_z = 0.15  # a glass top the depth put lower than it is
        assert robot.descend(top_down_pose(0.7, 0.0, 0.10, 0.0), 0.1) is True
        assert state.stop_calls == 1
        kind, target, speed, _ = state.sent[-1]  # backed off the way it came
        assert kind == "moveL" and speed == 0.1
        np.testing.assert_allclose(target[:3], [0.7, 0.0, 0.15 + URConfig().contact_backoff], atol=1e-9)
    dry = FakeURState()
    robot = _robot(dry, dry_run=True)
    robot.connect()
    robot.enable()
    assert robot.descend(top_down_pose(0.7, 0.0, 0.10, 0.0), 0.1) is False
    assert dry.sent == [] and robot.planned[-1][0] == "moveL until contact"


def test_emergency_stop_and_mode_checked_on_connect():
    state = FakeURState()
    state.emergency_stop = True
    with pytest.raises(RobotError, match="emergency stop"):
        _robot(state).connect()
    state = FakeURState()
    state.mode = 5
    with pytest.raises(RobotError, match="robot mode is 5"):
        _robot(state).connect()


def test_dry_run_sends_nothing():
    state = FakeURState()
    lines = []
    robot = _robot(state, dry_run=True, log=lines.append)
    robot.connect()
    with pytest.raises(RobotError, match="before enable"):  # nothing moves before the operator confirms
        robot.move_linear(top_down_pose(0.7, 0.0, 0.2, 0.0), 0.2)
    robot.enable()
    robot.move_linear(top_down_pose(0.7, 0.0, 0.2, 0.0), 0.2)
    assert state.sent == [] and len(robot.planned) == 1 and "would moveL" in lines[0]


def test_unreachable_robot_fails_within_seconds():
    import time

    robot = UR10eRTDE("127.0.0.1", URConfig(connect_timeout_s=1.0))
    t0 = time.monotonic()
    with pytest.raises(RobotError, match="cannot reach the UR10e"):
        robot.connect()
    assert time.monotonic() - t0 < 3.0
