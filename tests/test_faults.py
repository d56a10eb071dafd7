"""Fault injection on the real-cell path, over the fakes: whatever goes wrong, nothing more is sent to the arm,
the arm is stopped, every device is disconnected, the attempt is logged (as aborted) and the summary written,
and the command ends with one line and a non-zero code."""

import json
import socket
import time

import numpy as np
import pytest

from tests.fakes.robotiq_server import FakeRobotiq
from tests.fakes.ur_rtde_fake import FakeControl, FakeURState, factories


@pytest.fixture(scope="module")
def scene_frame():
    from sim.world import SimWorld

    with SimWorld(3) as world:
        return world.capture()


class Camera:
    """A camera that returns one simulated frame, counting connections."""

    sensor = "d435"

    def __init__(self, frame, fail_on_read=None):
        self.frame, self.fail_on_read, self.reads, self.connected = frame, fail_on_read, 0, False

    def connect(self):
        self.connected = True

    def disconnect(self):
        self.connected = False

    def read(self):
        self.reads += 1
        if self.fail_on_read is not None and self.reads >= self.fail_on_read:
            raise self.fail_on_read_error
        return self.frame


def _cell(tmp_path, frame, state=None, control_cls=FakeControl, object_width=0.05, silent=False):
    from hardware.calibration import save_calibration
    from hardware.robotiq import RobotiqConfig, RobotiqGripper
    from hardware.ur10e import UR10eRTDE

    save_calibration(tmp_path / "cal.json", frame.T_base_cam, eye_in_hand=False, report={})
    state = state or FakeURState()
    robot = UR10eRTDE("10.0.0.2", control_factory=lambda host: control_cls(state),
                      receive_factory=factories(state)[1])
    server = FakeRobotiq(object_width=object_width, silent=silent)
    gripper = RobotiqGripper("127.0.0.1", RobotiqConfig(port=server.port, motion_timeout_s=1.0, reply_timeout_s=0.5,
                                                        poll_s=0.005))
    return Camera(frame), robot, gripper, server, state


def _run(tmp_path, devices, trials=3, *extra):
    from distillgrasp import run

    args = run.parse_args(["--robot", "ur10e", "--ip", "10.0.0.2", "--calibration", str(tmp_path / "cal.json"),
                           "--depth", "gt", "--trials", str(trials), "--yes", "--out", str(tmp_path / "o"), *extra])
    return run.run_robot(args, devices=devices)


def _log(tmp_path):
    return [json.loads(line) for line in (tmp_path / "o" / "attempts.jsonl").read_text().splitlines()]


def _assert_clean_end(tmp_path, camera, robot, gripper, state, sent_before):
    assert len(state.sent) == sent_before  # nothing after the fault
    assert state.stop_calls >= 1  # the arm was stopped
    assert not camera.connected and robot.control is None and robot.receive is None and gripper._sock is None
    assert (tmp_path / "o" / "summary.json").is_file()


def test_protective_stop_mid_move_ends_the_session(tmp_path, scene_frame, capsys):
    state = FakeURState()
    state.protective_stop_on_move = 3  # during the first pick's descent
    camera, robot, gripper, server, state = _cell(tmp_path, scene_frame, state)
    with server:
        code = _run(tmp_path, (camera, robot, gripper))
    assert code == 2
    (record,) = _log(tmp_path)  # one attempt; the session did not go on to the next
    assert not record["success"] and "protective stop" in record["reason"]
    _assert_clean_end(tmp_path, camera, robot, gripper, state, 3)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "protective stop" in err[0] and "session ends" in err[0]


class _LosesConnection(FakeControl):
    def moveL(self, pose, speed=0.25, acceleration=1.2, asynchronous=False):
        if len(self.s.sent) >= 2:
            raise RuntimeError("RTDE connection lost")
        return super().moveL(pose, speed, acceleration)


class _Interrupted(FakeControl):
    def moveL(self, pose, speed=0.25, acceleration=1.2, asynchronous=False):
        if len(self.s.sent) >= 2:
            raise KeyboardInterrupt
        return super().moveL(pose, speed, acceleration)


@pytest.mark.parametrize("control_cls, code, message", [
    (_LosesConnection, 1, "RTDE connection lost"),
    (_Interrupted, 130, "interrupted; rerun the same command to resume"),
])
def test_connection_lost_or_ctrl_c_mid_pick(tmp_path, scene_frame, capsys, control_cls, code, message):
    camera, robot, gripper, server, state = _cell(tmp_path, scene_frame, control_cls=control_cls)
    with server:
        assert _run(tmp_path, (camera, robot, gripper)) == code
    (record,) = _log(tmp_path)
    assert not record["success"] and record["reason"].startswith("aborted")
    _assert_clean_end(tmp_path, camera, robot, gripper, state, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_gripper_that_never_answers(tmp_path, scene_frame, capsys):
    camera, robot, gripper, server, state = _cell(tmp_path, scene_frame, silent=True)
    with server:
        t0 = time.monotonic()
        assert _run(tmp_path, (camera, robot, gripper)) == 2
        assert time.monotonic() - t0 < 15
    assert state.sent == []  # the gripper failed to activate: the arm never moved
    assert not camera.connected and robot.control is None
    assert "error:" in capsys.readouterr().err


def test_a_disconnect_that_raises_hides_nothing(tmp_path, scene_frame, capsys):
    class BadStop(FakeControl):
        def stopScript(self):
            raise RuntimeError("stopScript failed")

    camera, robot, gripper, server, state = _cell(tmp_path, scene_frame, control_cls=BadStop)
    camera.fail_on_read, camera.fail_on_read_error = 1, RuntimeError("USB reset")
    with server:
        assert _run(tmp_path, (camera, robot, gripper)) == 1
    assert not camera.connected and robot.control is None and robot.receive is None and gripper._sock is None
    err = capsys.readouterr().err
    assert "USB reset" in err  # the original fault is the one reported


def test_a_controller_that_accepts_and_never_answers():
    """ur_rtde's handshake with a host that takes the connection and says nothing would block for ever."""
    from grasping.robot import RobotError
    from hardware.ur10e import RTDE_PORT, URConfig, UR10eRTDE

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", RTDE_PORT))
    except OSError:
        pytest.skip(f"port {RTDE_PORT} is taken here")
    listener.listen(4)
    try:
        robot = UR10eRTDE("127.0.0.1", URConfig(handshake_timeout_s=2.0))
        t0 = time.monotonic()
        with pytest.raises(RobotError, match="did not answer the RTDE handshake"):
            robot.connect()
        assert time.monotonic() - t0 < 6
    finally:
        listener.close()


def test_two_runs_on_one_folder_and_a_torn_log(tmp_path, scene_frame, capsys):
    from grasping.report import TrialLog, TrialLogError

    out = tmp_path / "o"
    with TrialLog(out / "attempts.jsonl"):  # another run holds the folder
        camera, robot, gripper, server, state = _cell(tmp_path, scene_frame)
        from distillgrasp import run

        assert run.main(["--robot", "ur10e", "--ip", "10.0.0.2", "--calibration", str(tmp_path / "cal.json"),
                         "--yes", "--out", str(out)]) == 2
        assert "in use by another run" in capsys.readouterr().err
    # a run killed mid-write left half a line: it is cut, the next record stands on its own line
    (out / "attempts.jsonl").write_text('{"scene_seed": 0, "depth": "gt", "success": true, "reason": "ok"}\n'
                                        '{"scene_seed": 1, "depth": "gt", "succ')
    log = TrialLog(out / "attempts.jsonl")
    assert len(log.records()) == 1
    log.append({"scene_seed": 1, "depth": "gt", "success": False, "reason": "empty gripper", "x": float("nan")})
    lines = (out / "attempts.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["x"] is None  # strict JSON: NaN is written as null
    (out / "attempts.jsonl").write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(TrialLogError, match="line.s. 2 are not attempt records"):
        log.records()


def test_a_resume_with_other_weights_is_refused(tmp_path):
    import shutil

    from distillgrasp.cells import sim_cell_factory
    from grasping.trials import FallbackError, run_trials
    from pipeline.weights import WEIGHTS_DIR

    out = tmp_path / "t"
    (out).mkdir()
    (out / "attempts.jsonl").write_text(json.dumps({"scene_seed": 0, "depth": "student", "success": True,
                                                    "reason": "ok", "weights": "sha256:0123456789abcdef"}) + "\n")
    with pytest.raises(ValueError, match="other weights .sha256:0123456789abcdef"):
        run_trials(sim_cell_factory(), ["student"], 1, 0, out, progress=False, provenance={"sensor": "d435"})
    # lidar frames and only the stereo camera's weights: refused unless asked for
    only_d435 = tmp_path / "w"
    only_d435.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"student{suffix}", only_d435 / f"student{suffix}")
    with pytest.raises(FallbackError, match="no weights for l515 frames"):
        run_trials(sim_cell_factory("l515"), ["student"], 1, 0, tmp_path / "l", progress=False,
                   weights_dir=str(only_d435), provenance={"sensor": "l515"})


BAD_CALIBRATIONS = [
    ({"T_base_cam": [[1, 0, 0, np.nan], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, "NaN or infinite"),
    ({"T_base_cam": [[-1, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 0.8], [0, 0, 0, 1]]}, "mirror"),
    ({"T_base_cam": [[1, 0, 0, 1000.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, "1000.00 m away"),
    ({"T_base_cam": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, "not orthonormal"),
    ({"T_base_cam": np.eye(4).tolist(), "T_flange_cam": np.eye(4).tolist()}, "it holds both"),
    ({"report": {}}, "it holds neither"),
    ({"T_base_cam": [[1, 0, 0], [0, 1, 0]]}, "not 4x4"),
    ({"T_base_cam": "eye"}, "not a 4x4 matrix of numbers"),
]


@pytest.mark.parametrize("content, message", BAD_CALIBRATIONS)
def test_bad_calibrations_are_refused_before_any_device_connects(tmp_path, scene_frame, capsys, content, message):
    camera, robot, gripper, server, state = _cell(tmp_path, scene_frame)
    (tmp_path / "cal.json").write_text(json.dumps(content))
    from distillgrasp import run

    assert run.main(["--robot", "ur10e", "--ip", "10.0.0.2", "--calibration", str(tmp_path / "cal.json"),
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "cal.json") in err[0] and message in err[0]
