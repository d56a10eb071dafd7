"""RobotiqGripper against a fake URCap server on loopback that speaks the real protocol."""

import socket

import pytest

from grasping.robot import LimitError
from hardware.robotiq import GripperError, RobotiqConfig, RobotiqGripper
from tests.fakes.robotiq_server import FakeRobotiq

FAST = RobotiqConfig(reply_timeout_s=0.5, motion_timeout_s=2.0, activation_timeout_s=2.0, poll_s=0.005)


def _gripper(server, cfg=FAST):
    return RobotiqGripper("127.0.0.1", RobotiqConfig(**{**cfg.__dict__, "port": server.port}))


def test_activation_open_close_on_object():
    with FakeRobotiq(object_width=0.06) as server, _gripper(server) as g:
        g.activate()
        assert server.requests[:2] == ["SET ACT 0 ATR 0", "GET STA"]
        assert "SET ACT 1" in server.requests
        g.open()
        assert g.width() == pytest.approx(0.085, abs=0.001)
        assert g.close(40.0) is True  # stopped on the object: OBJ 2
        assert g.width() == pytest.approx(0.06, abs=0.001)
        assert any(r.startswith("SET POS 255 SPE 128 FOR") and r.endswith("GTO 1") for r in server.requests)


def test_close_on_nothing_reports_empty():
    with FakeRobotiq(object_width=None) as server, _gripper(server) as g:
        g.activate()
        g.open(0.05)
        assert g.width() == pytest.approx(0.05, abs=0.001)
        assert g.close(40.0) is False
        assert g.width() == pytest.approx(0.0, abs=0.001)


def test_fault_is_raised():
    with FakeRobotiq() as server, _gripper(server) as g:
        g.activate()
        server.vars["FLT"] = 5
        with pytest.raises(GripperError, match="FLT 5"):
            g.open()


def test_limits_and_timeouts():
    with FakeRobotiq() as server, _gripper(server) as g:
        with pytest.raises(LimitError, match="stroke"):
            g.open(0.2)
        with pytest.raises(LimitError, match="force"):
            g.close(500.0)
    with FakeRobotiq(silent=True) as server, _gripper(server) as g:
        with pytest.raises(GripperError, match="no reply"):
            g.get("STA")


def test_unreachable_gripper_fails_fast():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    g = RobotiqGripper("127.0.0.1", RobotiqConfig(port=port, connect_timeout_s=1.0))
    with pytest.raises(GripperError, match="cannot reach"):
        g.connect()
