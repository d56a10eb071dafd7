"""UR10e over ur_rtde (RTDE control and receive interfaces).

Poses are TCP poses in UR's controller ``base`` frame (rotated 180 deg about z from ROS ``base_link``), as
4x4 transforms; they are sent as [x, y, z, rx, ry, rz]. Every target is checked against the workspace box,
the speed limits and the controller's own ``isPoseWithinSafetyLimits`` before anything is sent; protective
and emergency stops are checked before and after each motion. Any error or Ctrl-C during a motion stops the
arm (``stopL``/``stopJ``) before the exception travels on.

``rtde_control`` and ``rtde_receive`` are imported only here, when connecting; tests inject fakes of the
two interfaces through ``control_factory`` and ``receive_factory``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from grasping.robot import LimitError, Robot, RobotError, WorkspaceBox, pose_from_ur, pose_to_ur
from pipeline.config import DEFAULT_GRIPPER

RTDE_PORT = 30004
ROBOT_MODE_RUNNING = 7


@dataclass(frozen=True)
class URConfig:
    max_linear_speed: float = 0.25  # m/s
    linear_acceleration: float = 1.2  # m/s^2
    max_joint_speed: float = 1.05  # rad/s
    joint_acceleration: float = 1.4  # rad/s^2
    workspace: WorkspaceBox = field(default_factory=WorkspaceBox)
    tcp_offset: float = DEFAULT_GRIPPER.tcp_offset  # flange to TCP along tool z, metres
    payload_kg: float = 1.0  # gripper
    connect_timeout_s: float = 3.0


def _default_control(host: str):
    import rtde_control

    return rtde_control.RTDEControlInterface(host)


def _default_receive(host: str):
    import rtde_receive

    return rtde_receive.RTDEReceiveInterface(host)


class UR10eRTDE(Robot):
    def __init__(self, host: str, config: URConfig = URConfig(), dry_run: bool = False,
                 control_factory: Callable | None = None, receive_factory: Callable | None = None,
                 log: Callable[[str], None] | None = None):
        self.host, self.config, self.dry_run = host, config, dry_run
        self._control_factory = control_factory or _default_control
        self._receive_factory = receive_factory or _default_receive
        self.control = None
        self.receive = None
        self.log = log or (lambda msg: None)
        self.planned: list[tuple[str, list[float], float]] = []  # what a dry run would have sent

    # -------------------------------------------------------------------------------- connection
    def connect(self) -> None:
        if self._receive_factory is _default_receive:  # a real controller: fail fast when unreachable
            self._probe()
        try:
            self.receive = self._receive_factory(self.host)
            if not self.dry_run:
                self.control = self._control_factory(self.host)
                self.control.setTcp([0.0, 0.0, self.config.tcp_offset, 0.0, 0.0, 0.0])
                self.control.setPayload(self.config.payload_kg, [0.0, 0.0, 0.05])
        except RuntimeError as exc:
            self.disconnect()
            raise RobotError(f"cannot connect to the UR10e at {self.host}: {exc}") from None
        self._check_state("after connecting")

    def _probe(self) -> None:
        """Fail within seconds when nothing answers on the RTDE port (ur_rtde may wait much longer)."""
        try:
            with socket.create_connection((self.host, RTDE_PORT), timeout=self.config.connect_timeout_s):
                pass
        except OSError as exc:
            raise RobotError(f"cannot reach the UR10e at {self.host}:{RTDE_PORT} within "
                             f"{self.config.connect_timeout_s} s ({exc}); check the address and that the robot "
                             "is powered on and in remote control") from None

    def disconnect(self) -> None:
        if self.control is not None:
            try:
                self.control.stopScript()
            finally:
                self.control.disconnect()
                self.control = None
        if self.receive is not None:
            self.receive.disconnect()
            self.receive = None

    def __enter__(self) -> "UR10eRTDE":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is not None:
                self.stop()
        finally:
            self.disconnect()

    # -------------------------------------------------------------------------------- state
    def _require(self):
        if self.receive is None:
            raise RobotError("UR10e used before connect()")

    def _check_state(self, when: str) -> None:
        self._require()
        if self.receive.isEmergencyStopped():
            raise RobotError(f"emergency stop is active ({when})")
        if self.receive.isProtectiveStopped():
            raise RobotError(f"protective stop is active ({when}); clear it on the teach pendant")
        mode = self.receive.getRobotMode()
        if mode != ROBOT_MODE_RUNNING:
            raise RobotError(f"robot mode is {mode}, not running ({ROBOT_MODE_RUNNING}) ({when})")

    def tcp_pose(self) -> np.ndarray:
        self._require()
        return pose_from_ur(self.receive.getActualTCPPose())

    def joints(self) -> np.ndarray:
        self._require()
        return np.asarray(self.receive.getActualQ(), dtype=np.float64)

    # -------------------------------------------------------------------------------- motion
    def move_linear(self, pose: np.ndarray, speed: float) -> np.ndarray:
        cfg = self.config
        cfg.workspace.check(pose)
        if not 0 < speed <= cfg.max_linear_speed:
            raise LimitError(f"linear speed {speed} m/s is outside (0, {cfg.max_linear_speed}] m/s")
        target = pose_to_ur(pose)
        if self.dry_run:
            self.planned.append(("moveL", target, speed))
            self.log(f"would moveL to {np.round(target, 4).tolist()} at {speed} m/s")
            return np.asarray(pose)
        if not self.control.isPoseWithinSafetyLimits(target):
            raise LimitError(f"the controller rejects {np.round(target, 3).tolist()} as outside its safety limits")
        self._run("moveL", lambda: self.control.moveL(target, speed, cfg.linear_acceleration))
        return self.tcp_pose()

    def move_joints(self, q, speed: float) -> np.ndarray:
        cfg = self.config
        q = [float(x) for x in q]
        if len(q) != 6 or any(abs(x) > 2 * np.pi for x in q):
            raise LimitError(f"joint target {np.round(q, 3).tolist()} is outside the +-360 deg joint limits")
        if not 0 < speed <= cfg.max_joint_speed:
            raise LimitError(f"joint speed {speed} rad/s is outside (0, {cfg.max_joint_speed}] rad/s")
        if self.dry_run:
            self.planned.append(("moveJ", q, speed))
            self.log(f"would moveJ to {np.round(q, 4).tolist()} at {speed} rad/s")
            return np.asarray(q)
        self._run("moveJ", lambda: self.control.moveJ(q, speed, cfg.joint_acceleration))
        return self.joints()

    def _run(self, what: str, send: Callable[[], bool]) -> None:
        self._check_state(f"before {what}")
        try:
            ok = send()
            self._check_state(f"after {what}")
            if not ok:
                raise RobotError(f"{what} was not completed by the controller")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.control is not None:
            try:
                self.control.stopL(10.0)
            except RuntimeError:
                pass
