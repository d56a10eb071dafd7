"""Hand-eye calibration on synthetic ChArUco views with a known ground truth."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hardware.calibration import (CalibrationError, board_pose, load_calibration, render_board_view,
                                  save_calibration, solve_hand_eye)
from pipeline.types import CameraIntrinsics

K = CameraIntrinsics(1280, 960, 1100.0, 1100.0, 639.5, 479.5)


def _T(rotvec, t):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


def test_board_pose_from_a_rendered_view():
    truth = _T([0.15, -0.1, 0.05], [-0.14, -0.1, 0.6])  # printed face towards the camera (board z away)
    est = board_pose(render_board_view(truth, K), K)
    assert est is not None
    assert np.linalg.norm(est[:3, 3] - truth[:3, 3]) < 0.002


def test_eye_to_hand_recovers_T_base_cam():
    rng = np.random.default_rng(0)
    T_base_cam = _T([np.pi - 0.3, 0.1, 0.2], [0.55, 0.05, 0.85])
    T_flange_board = _T([0, 0, 0.3], [-0.1, -0.07, 0.05])
    flanges, views = [], []
    for _ in range(12):
        # the flange somewhere under the camera, tool roughly down, tilted
        T_bf = _T(Rotation.from_euler("xyz", [np.pi + rng.uniform(-0.35, 0.35), rng.uniform(-0.35, 0.35),
                                              rng.uniform(-0.6, 0.6)]).as_rotvec(),
                  [0.75 + rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), 0.25 + rng.uniform(-0.05, 0.05)])
        T_cb = np.linalg.inv(T_base_cam) @ T_bf @ T_flange_board
        est = board_pose(render_board_view(T_cb, K), K)
        if est is not None:
            flanges.append(T_bf)
            views.append(est)
    assert len(views) >= 8
    X, report = solve_hand_eye(flanges, views, eye_in_hand=False)
    assert np.linalg.norm(X[:3, 3] - T_base_cam[:3, 3]) < 0.002  # 2 mm
    angle = Rotation.from_matrix(X[:3, :3] @ T_base_cam[:3, :3].T).magnitude()
    assert np.degrees(angle) < 0.5
    assert report["position_residual_mm"]["rms"] < 3.0


def test_calibration_file_round_trip_and_errors(tmp_path):
    T = _T([0.1, 0.2, 0.3], [0.5, 0.0, 0.8])
    save_calibration(tmp_path / "cal.json", T, eye_in_hand=False, report={"views": 10})
    key, loaded = load_calibration(tmp_path / "cal.json")
    assert key == "T_base_cam" and np.allclose(loaded, T)
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"T_base_cam": [[1, 0], [0, 1]]}')
    with pytest.raises(CalibrationError, match="not 4x4"):
        load_calibration(tmp_path / "bad.json")
    with pytest.raises(CalibrationError, match="at least 3"):
        solve_hand_eye([T], [T], eye_in_hand=True)


def test_guided_capture_with_fake_robot_and_camera():
    """The capture loop over the fake RTDE seam and a camera rendering the board held by the gripper."""
    from hardware.calibrate import calibration_poses, collect
    from hardware.ur10e import UR10eRTDE
    from pipeline.types import RGBDFrame
    from tests.fakes.ur_rtde_fake import FakeURState, factories

    T_base_cam = _T([np.pi - 0.2, 0.05, 0.1], [0.6, 0.0, 0.9])
    T_flange_board = _T([0, 0, 0.2], [-0.1, -0.07, 0.2])
    state = FakeURState()
    control, receive = factories(state)

    class BoardCamera:
        def read(self):
            T_bt = robot.tcp_pose()
            T_bf = T_bt.copy()
            T_bf[:3, 3] -= T_bt[:3, 2] * 0.16
            img = render_board_view(np.linalg.inv(T_base_cam) @ T_bf @ T_flange_board, K)
            return RGBDFrame(np.repeat(img[..., None], 3, axis=2), np.ones(img.shape, np.float32), K)

    with UR10eRTDE("10.0.0.2", control_factory=control, receive_factory=receive) as robot:
        flanges, views = collect(robot, BoardCamera(), calibration_poses((0.7, 0.0, 0.35), 12), log=lambda m: None)
    X, _ = solve_hand_eye(flanges, views, eye_in_hand=False)
    assert np.linalg.norm(X[:3, 3] - T_base_cam[:3, 3]) < 0.002
    assert len(state.sent) == 12
