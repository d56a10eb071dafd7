"""Hand-eye calibration with a ChArUco board (OpenCV 4.x ``calibrateHandEye``).

Eye-to-hand (camera fixed, board held by the gripper) gives ``T_base_cam``; eye-in-hand (camera on the
flange, board fixed on the table) gives ``T_flange_cam``. Each sample pairs the robot's flange pose
``T_base_flange`` with the board pose the camera sees, ``T_cam_board``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.errors import DistillGraspError
from pipeline.types import CameraIntrinsics


class CalibrationError(DistillGraspError):
    """Too few usable views, or a calibration file that cannot be read."""


@dataclass(frozen=True)
class BoardConfig:
    squares: tuple[int, int] = (7, 5)
    square_m: float = 0.04
    marker_m: float = 0.03
    dictionary: int = cv2.aruco.DICT_5X5_100
    min_corners: int = 8

    def board(self):
        d = cv2.aruco.getPredefinedDictionary(self.dictionary)
        return cv2.aruco.CharucoBoard(self.squares, self.square_m, self.marker_m, d)


def board_pose(gray: np.ndarray, K: CameraIntrinsics, board_cfg: BoardConfig = BoardConfig()) -> np.ndarray | None:
    """T_cam_board from one grey image, or None when too few ChArUco corners are found."""
    board = board_cfg.board()
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(gray)
    if ids is None or len(ids) < board_cfg.min_corners:
        return None
    obj, img = board.matchImagePoints(corners, ids)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K.K, np.zeros(5), flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return None
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = tvec.ravel()
    return T


def solve_hand_eye(T_base_flange: list[np.ndarray], T_cam_board: list[np.ndarray], eye_in_hand: bool,
                   method: int = cv2.CALIB_HAND_EYE_PARK) -> tuple[np.ndarray, dict]:
    """Returns (T_base_cam for eye-to-hand or T_flange_cam for eye-in-hand, residual report)."""
    n = len(T_base_flange)
    if n != len(T_cam_board) or n < 3:
        raise CalibrationError(f"hand-eye calibration needs at least 3 paired views, got {n}")
    # OpenCV solves X = T_gripper_cam from (T_base_gripper, T_cam_target). For a fixed camera the roles swap:
    # pass T_gripper_base (inverse flange poses) and it returns T_base_cam.
    robot = T_base_flange if eye_in_hand else [np.linalg.inv(T) for T in T_base_flange]
    R_cal, t_cal = cv2.calibrateHandEye(
        [T[:3, :3] for T in robot], [T[:3, 3] for T in robot],
        [T[:3, :3] for T in T_cam_board], [T[:3, 3] for T in T_cam_board], method=method)
    X = np.eye(4)
    X[:3, :3], X[:3, 3] = R_cal, t_cal.ravel()
    # Residuals: the board's pose in the frame where it is fixed should be the same in every view.
    if eye_in_hand:
        fixed = [Tb @ X @ Tc for Tb, Tc in zip(T_base_flange, T_cam_board)]  # T_base_board
    else:
        fixed = [np.linalg.inv(Tb) @ X @ Tc for Tb, Tc in zip(T_base_flange, T_cam_board)]  # T_flange_board
    pos = np.array([T[:3, 3] for T in fixed])
    rot = Rotation.from_matrix(np.array([T[:3, :3] for T in fixed]))
    mean_rot = rot.mean()
    report = {
        "views": n,
        "position_residual_mm": {"rms": float(np.sqrt(((pos - pos.mean(0)) ** 2).sum(1).mean()) * 1000),
                                 "max": float(np.linalg.norm(pos - pos.mean(0), axis=1).max() * 1000)},
        "rotation_residual_deg": {"max": float(np.degrees((rot * mean_rot.inv()).magnitude().max()))},
    }
    return X, report


def save_calibration(path: str | Path, T: np.ndarray, eye_in_hand: bool, report: dict) -> None:
    key = "T_flange_cam" if eye_in_hand else "T_base_cam"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({key: np.asarray(T).tolist(), "report": report}, indent=2) + "\n")


CALIBRATION_KEYS = ("T_base_cam", "T_flange_cam")
MAX_CAMERA_DISTANCE_M = {"T_base_cam": 3.0, "T_flange_cam": 0.5}  # beyond this the file cannot be right


def load_calibration(path: str | Path) -> tuple[str, np.ndarray]:
    """(key, 4x4) from a calibration file: key is ``T_base_cam`` (a fixed camera) or ``T_flange_cam`` (a camera
    on the wrist). Refused, naming the file and the field: a missing or ambiguous key, values that are not a
    finite 4x4 rigid transform (orthonormal rotation with determinant +1, last row 0 0 0 1), and a camera
    farther from the base (or the flange) than a cell allows."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file not found: {path} (make one with `distillgrasp calibrate`)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: not a calibration file (not JSON: {exc})") from None
    keys = [k for k in CALIBRATION_KEYS if isinstance(data, dict) and k in data]
    if len(keys) != 1:
        found = "both" if len(keys) == 2 else "neither"
        raise CalibrationError(f"{path}: a calibration holds one of {' or '.join(CALIBRATION_KEYS)}; it holds {found}")
    key = keys[0]
    try:
        T = np.asarray(data[key], dtype=np.float64)
    except (ValueError, TypeError):
        raise CalibrationError(f"{path}: {key} is not a 4x4 matrix of numbers") from None
    if T.shape != (4, 4):
        raise CalibrationError(f"{path}: {key} has shape {T.shape}, not 4x4")
    if not np.isfinite(T).all():
        raise CalibrationError(f"{path}: {key} holds NaN or infinite values")
    if not np.allclose(T[3], [0, 0, 0, 1]):
        raise CalibrationError(f"{path}: {key}'s last row is {T[3].tolist()}, not [0, 0, 0, 1]")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4):
        raise CalibrationError(f"{path}: {key}'s rotation is not orthonormal")
    if np.linalg.det(R) < 0:
        raise CalibrationError(f"{path}: {key}'s rotation is a mirror (determinant {np.linalg.det(R):.3f})")
    distance = float(np.linalg.norm(T[:3, 3]))
    if distance > MAX_CAMERA_DISTANCE_M[key]:
        raise CalibrationError(f"{path}: {key} puts the camera {distance:.2f} m away, more than "
                               f"{MAX_CAMERA_DISTANCE_M[key]} m; is it in millimetres, or inverted?")
    return key, T


def render_board_view(T_cam_board: np.ndarray, K: CameraIntrinsics, board_cfg: BoardConfig = BoardConfig(),
                      px_per_m: float = 4000.0) -> np.ndarray:
    """A synthetic grey image of the board at ``T_cam_board`` (planar homography of its printed image)."""
    board = board_cfg.board()
    sx, sy = board_cfg.squares
    w_m, h_m = sx * board_cfg.square_m, sy * board_cfg.square_m
    img = board.generateImage((int(w_m * px_per_m), int(h_m * px_per_m)), marginSize=0)
    # printed pixel (u, v) -> board point (u / s, v / s, 0); OpenCV's board frame has y along the image rows
    S = np.array([[1 / px_per_m, 0, 0], [0, 1 / px_per_m, 0], [0, 0, 1]])
    Rt = T_cam_board[:3, [0, 1, 3]]
    H = K.K @ Rt @ S
    out = cv2.warpPerspective(img, H, (K.width, K.height), flags=cv2.INTER_AREA, borderValue=255)
    return out
