"""run.py --sim end to end on a small image."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_run_sim_writes_previews_and_summary(tmp_path):  # uses the oracle: no weights needed
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "run.py", "--sim", "--depth", "gt", "--trials", "1", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "scene 0:" in proc.stdout and "picks succeeded" in proc.stdout
    assert (out / "images" / "scene-0.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gt"]["trials"] == 1
    assert len((out / "attempts.jsonl").read_text().splitlines()) == 1


def test_run_reports_missing_weights_clearly(tmp_path, monkeypatch):
    from distillgrasp import run
    from pipeline import completion

    monkeypatch.setattr(completion, "default_weights", lambda name: tmp_path / f"{name}.safetensors")
    assert run.main(["--sim", "--depth", "student", "--trials", "1", "--out", str(tmp_path / "o")]) == 2


def test_run_requires_a_mode():
    proc = subprocess.run([sys.executable, "run.py"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--sim" in proc.stderr


def _robot_args(tmp_path, *extra):
    from distillgrasp import run

    ap_args = ["--robot", "ur10e", "--ip", "127.0.0.1", "--out", str(tmp_path / "o"), *extra]
    return run, ap_args


def test_robot_mode_missing_calibration_is_one_line(tmp_path, capsys):
    run, args = _robot_args(tmp_path)
    assert run.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--calibration" in err[0]
    assert run.main([*args, "--calibration", str(tmp_path / "none.json")]) == 2
    assert "calibration file not found" in capsys.readouterr().err


def test_robot_mode_unreachable_robot_or_camera_is_one_line(tmp_path, capsys):
    import numpy as np
    from hardware.calibration import save_calibration

    save_calibration(tmp_path / "cal.json", np.eye(4), eye_in_hand=False, report={})
    run, args = _robot_args(tmp_path, "--calibration", str(tmp_path / "cal.json"), "--depth", "fill", "--yes")
    assert run.main(args) == 2  # no RealSense here, and nothing listens on 127.0.0.1:30004
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_robot_mode_dry_run_over_fakes_moves_nothing(tmp_path, capsys):
    """The whole real-cell loop on fakes: a simulated frame as the camera, the fake RTDE seam as the arm."""
    from hardware.calibration import save_calibration
    from hardware.cell import DryRunGripper
    from hardware.ur10e import UR10eRTDE
    from sim.world import SimWorld
    from tests.fakes.ur_rtde_fake import FakeURState, factories

    with SimWorld(3) as world:
        frame = world.capture()
    save_calibration(tmp_path / "cal.json", frame.T_base_cam, eye_in_hand=False, report={})

    class Camera:
        sensor = "d435"

        def connect(self): pass
        def disconnect(self): pass
        def read(self):
            frame.T_base_cam = None
            return frame

    state = FakeURState()
    control, receive = factories(state)
    robot = UR10eRTDE("10.0.0.2", dry_run=True, control_factory=control, receive_factory=receive, log=print)
    from distillgrasp import run

    args = run.parse_args(["--robot", "ur10e", "--ip", "10.0.0.2", "--calibration", str(tmp_path / "cal.json"),
                           "--depth", "gt", "--trials", "1", "--dry-run", "--out", str(tmp_path / "o")])
    assert run.run_robot(args, devices=(Camera(), robot, DryRunGripper())) == 0
    out = capsys.readouterr().out
    assert "would moveL" in out and "would close the gripper" in out
    assert state.sent == []  # nothing was sent to the arm
    record = json.loads((tmp_path / "o" / "attempts.jsonl").read_text())
    assert record["grasp"] is not None and record["dry_run"] and not record["success"]


def _fake_cell(tmp_path, object_width, fail_on_read=None):
    """A simulated frame as the camera, the fake RTDE seam as the arm, a fake URCap server as the gripper."""
    import numpy as np  # noqa: F401
    from hardware.calibration import save_calibration
    from hardware.robotiq import RobotiqConfig, RobotiqGripper
    from hardware.ur10e import UR10eRTDE
    from sim.world import SimWorld
    from tests.fakes.robotiq_server import FakeRobotiq
    from tests.fakes.ur_rtde_fake import FakeURState, factories

    with SimWorld(3) as world:
        frame = world.capture()
    save_calibration(tmp_path / "cal.json", frame.T_base_cam, eye_in_hand=False, report={})
    reads = []

    class Camera:
        sensor = "d435"

        def connect(self): pass
        def disconnect(self): pass
        def read(self):
            reads.append(1)
            if fail_on_read is not None and len(reads) >= fail_on_read:
                from hardware.realsense import CameraError
                raise CameraError("no frame from the RealSense within 5000 ms")
            return frame

    state = FakeURState()
    control, receive = factories(state)
    robot = UR10eRTDE("10.0.0.2", control_factory=control, receive_factory=receive)
    server = FakeRobotiq(object_width=object_width)
    gripper = RobotiqGripper("127.0.0.1", RobotiqConfig(port=server.port, motion_timeout_s=2.0, poll_s=0.005))
    return (Camera(), robot, gripper), server, state


def _args(tmp_path, trials):
    from distillgrasp import run

    return run.parse_args(["--robot", "ur10e", "--ip", "10.0.0.2", "--calibration", str(tmp_path / "cal.json"),
                           "--depth", "gt", "--trials", str(trials), "--yes", "--out", str(tmp_path / "o")])


def test_robot_mode_gripper_that_never_holds_gives_failed_attempt(tmp_path):
    from distillgrasp import run

    devices, server, state = _fake_cell(tmp_path, object_width=None)
    with server:
        assert run.run_robot(_args(tmp_path, 1), devices=devices) == 0
    record = json.loads((tmp_path / "o" / "attempts.jsonl").read_text())
    assert not record["success"] and record["reason"] == "empty gripper" and record["gripper_holding"] is False
    assert any(kind == "moveL" for kind, *_ in state.sent)


def test_robot_mode_crash_mid_trials_keeps_logged_attempts(tmp_path, capsys):
    from distillgrasp import run

    devices, server, _ = _fake_cell(tmp_path, object_width=0.05, fail_on_read=2)
    with server:
        assert run.run_robot(_args(tmp_path, 3), devices=devices) == 2
    first, second = [json.loads(line) for line in (tmp_path / "o" / "attempts.jsonl").read_text().splitlines()]
    assert first["success"] and not second["success"] and second["reason"].startswith("aborted: ")
    assert "no frame from the RealSense" in second["reason"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no frame from the RealSense" in err[0]
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["gt"]["trials"] == 2


def _record_sim_frames(path, n=4):
    """A RealSense recording of simulated frames (the oracle's scene, as the camera would stream it)."""
    import numpy as np
    from sim.world import SimWorld
    from tests.fakes.realsense_software import SoftwareRealSense

    with SimWorld(3) as world:
        frame = world.capture()
    K = frame.intrinsics
    dev = SoftwareRealSense(width=K.width, height=K.height, fx=K.fx, baseline=0.0, record_to=path,
                            name="Intel RealSense D435")
    depth_mm = np.round(frame.depth * 1000).astype(np.uint16)
    for _ in range(n):
        dev.push(depth_mm, frame.rgb)
        dev.wait_for_frames(1000)
    dev.close()
    return frame


def test_playback_draws_the_grasps_of_a_recording(tmp_path, capsys):
    """--playback: a recorded RealSense file through the whole perception, no robot, with and without a
    calibration (without one, the table in view stands in for the base frame)."""
    import cv2
    import pytest
    from distillgrasp import run
    from hardware.calibration import save_calibration

    pytest.importorskip("pyrealsense2")
    path = tmp_path / "capture.db3"
    frame = _record_sim_frames(path)
    save_calibration(tmp_path / "cal.json", frame.T_base_cam, eye_in_hand=False, report={})
    for extra in ([], ["--calibration", str(tmp_path / "cal.json")]):
        out = tmp_path / f"o{len(extra)}"
        assert run.main(["--playback", str(path), "--depth", "student", "--backend", "torch", "--trials", "10", "--out", str(out), *extra]) == 0
        frames = json.loads((out / "grasps.json").read_text())
        assert 2 <= len(frames) <= 4 and frames[0]["calibrated"] == bool(extra) and frames[0]["sensor"] == "d435"
        assert any(f["grasps"] for f in frames), frames
        picture = cv2.imread(str(out / "images" / "frame-0.png"))
        assert picture is not None and picture.shape[1] > 3 * frame.intrinsics.width
    assert "grasps in" in capsys.readouterr().out
    # stopped before the recording's end (librealsense hangs on a playback stopped mid-stream unless drained)
    assert run.main(["--playback", str(path), "--depth", "raw", "--trials", "1", "--out", str(tmp_path / "o1")]) == 0
    assert len(json.loads((tmp_path / "o1" / "grasps.json").read_text())) == 1
    assert run.main(["--playback", str(tmp_path / "none.db3"), "--out", str(tmp_path / "o")]) == 2
    assert "recording not found" in capsys.readouterr().err


def test_run_refuses_a_file_as_out_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    proc = subprocess.run([sys.executable, "run.py", "--sim", "--out", str(tmp_path / "f")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "is a file" in proc.stderr and "Traceback" not in proc.stderr
