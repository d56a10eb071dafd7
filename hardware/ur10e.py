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

import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from grasping.robot import Robot, RobotError, StopActiveError, WorkspaceBox, backed_off, pose_from_ur, pose_to_ur
from grasping.safety import MotionLimits, SafetyError, SafetyGate
from pipeline.config import DEFAULT_GRIPPER

RTDE_PORT = 30004
RTDE_REQUEST_PROTOCOL_VERSION = 86  # RTDE packet type 'V'
RTDE_PROTOCOL = 2
ROBOT_MODE_RUNNING = 7

logger = logging.getLogger(__name__)


_CAPS = MotionLimits()  # the speed and acceleration caps live in grasping.safety


@dataclass(frozen=True)
class URConfig:
    max_linear_speed: float = _CAPS.max_linear_speed  # m/s
    linear_acceleration: float = _CAPS.max_linear_acceleration  # m/s^2
    max_joint_speed: float = _CAPS.max_joint_speed  # rad/s
    joint_acceleration: float = _CAPS.max_joint_acceleration  # rad/s^2
    workspace: WorkspaceBox = field(default_factory=WorkspaceBox)
    tcp_offset: float = DEFAULT_GRIPPER.tcp_offset  # flange to TCP along tool z, metres
    payload_kg: float = 1.0  # gripper
    connect_timeout_s: float = 3.0  # the TCP connection to the RTDE port
    handshake_timeout_s: float = 10.0  # the controller's answer to the RTDE protocol request
    # guarded descent (``descend``): the controller's contact detection is polled this often while the move
    # runs; on contact the arm stops at this deceleration (m/s^2) and backs off this far (metres)
    contact_poll_s: float = 0.002
    contact_deceleration: float = 10.0
    contact_backoff: float = 0.003
    reached_tolerance: float = 0.002  # metres: a finished move ended this close to its target

    @property
    def limits(self) -> MotionLimits:
        return MotionLimits(self.workspace, self.max_linear_speed, self.linear_acceleration, self.max_joint_speed,
                            self.joint_acceleration)


def _default_control(host: str):
    import rtde_control

    return rtde_control.RTDEControlInterface(host)


def _default_receive(host: str):
    import rtde_receive

    return rtde_receive.RTDEReceiveInterface(host)


class UR10eRTDE(Robot):
    """``connect()`` opens the receive interface only (read-only: poses, joints, safety state); ``enable()``
    takes control (the control interface) once the operator has confirmed. A dry run enables the control
    interface too, for the controller's safety check of every target, and sends no motion."""

    def __init__(self, host: str, config: URConfig = URConfig(), dry_run: bool = False,
                 control_factory: Callable | None = None, receive_factory: Callable | None = None,
                 log: Callable[[str], None] | None = None):
        self.host, self.config, self.dry_run = host, config, dry_run
        self.gate = SafetyGate(config.limits)
        self._control_factory = control_factory or _default_control
        self._receive_factory = receive_factory or _default_receive
        self.control = None
        self.receive = None
        self.log = log or (lambda msg: None)
        self.planned: list[tuple[str, list[float], float]] = []  # what a dry run would have sent

    # -------------------------------------------------------------------------------- connection
    def _handshake(self, factory: Callable, what: str):
        try:
            return factory(self.host)
        except RuntimeError as exc:
            raise RobotError(f"cannot connect to the UR10e at {self.host} ({what}): {exc}") from None

    def connect(self) -> None:
        """Read-only: the receive interface."""
        if self._receive_factory is _default_receive:  # a real controller: fail fast when unreachable
            self._probe()
        self.receive = self._handshake(self._receive_factory, "receive interface")
        self._check_state("after connecting")

    def enable(self) -> None:
        """Take control of the arm: the control interface, TCP and payload set."""
        self._require()
        if self.control is not None:
            return
        if self._control_factory is _default_control:
            self._probe()
        self.control = self._handshake(self._control_factory, "control interface")
        try:
            self.control.setTcp([0.0, 0.0, self.config.tcp_offset, 0.0, 0.0, 0.0])
            self.control.setPayload(self.config.payload_kg, [0.0, 0.0, 0.05])
        except RuntimeError as exc:
            raise RobotError(f"the UR10e at {self.host} refused the TCP or payload settings: {exc}") from None
        self._check_state("after taking control")

    def _probe(self) -> None:
        """Fail within seconds when the controller does not answer RTDE: nothing listens on its port, or a host
        takes the connection and never replies (ur_rtde's own handshake would then wait for ever, holding the
        interpreter). Asks for the RTDE protocol version, as ur_rtde does first, and waits for the reply."""
        cfg = self.config
        try:
            with socket.create_connection((self.host, RTDE_PORT), timeout=cfg.connect_timeout_s) as sock:
                sock.settimeout(cfg.handshake_timeout_s)
                sock.sendall(struct.pack(">HBH", 5, RTDE_REQUEST_PROTOCOL_VERSION, RTDE_PROTOCOL))
                reply = sock.recv(4)
        except socket.timeout:
            raise RobotError(f"the UR10e at {self.host}:{RTDE_PORT} took the connection but did not answer the RTDE "
                             f"handshake within {cfg.handshake_timeout_s:g} s; is it a UR controller, in remote "
                             "control?") from None
        except OSError as exc:
            raise RobotError(f"cannot reach the UR10e at {self.host}:{RTDE_PORT} within {cfg.connect_timeout_s} s "
                             f"({exc}); check the address and that the robot is powered on and in remote "
                             "control") from None
        if len(reply) < 3 or reply[2] != RTDE_REQUEST_PROTOCOL_VERSION:
            raise RobotError(f"the host at {self.host}:{RTDE_PORT} does not speak RTDE (replied {reply!r})")

    def disconnect(self) -> None:
        """Stop the script and close both interfaces, each step on its own: never raises (a failure is logged,
        and the other steps still run)."""
        steps = []
        if self.control is not None:
            steps += [("stop the control script", self.control.stopScript),
                      ("close the control interface", self.control.disconnect)]
        if self.receive is not None:
            steps.append(("close the receive interface", self.receive.disconnect))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001  a failing step must not skip the others
                logger.warning("UR10e at %s: could not %s: %s", self.host, what, exc)
        self.control = self.receive = None

    def __enter__(self) -> "UR10eRTDE":
        self.connect()
        self.enable()
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
            raise StopActiveError(f"emergency stop is active ({when})")
        if self.receive.isProtectiveStopped():
            raise StopActiveError(f"protective stop is active ({when}); clear it on the teach pendant")
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
    def _controller_accepts(self, target: list[float]) -> None:
        if self.control is None:
            raise RobotError("UR10e motion before enable(): the operator has not confirmed")
        if not self.control.isPoseWithinSafetyLimits(target):
            raise SafetyError(f"the controller rejects {np.round(target, 3).tolist()} as outside its safety limits")

    def check_linear(self, pose: np.ndarray, speed: float) -> None:
        self.gate.check_linear(pose, speed, self.config.linear_acceleration)
        self._controller_accepts(pose_to_ur(pose))

    def _linear_target(self, pose: np.ndarray, speed: float, kind: str) -> tuple[np.ndarray, list[float]]:
        """``pose`` passed through the safety gate and the controller's own limits: the checked pose and UR's
        [x, y, z, rx, ry, rz] for it. A dry run records and logs the move (``kind``) here instead of sending it."""
        T = self.gate.check_linear(pose, speed, self.config.linear_acceleration)
        target = pose_to_ur(T)
        self._controller_accepts(target)
        if self.dry_run:
            self.planned.append((kind, target, speed))
            self.log(f"would {kind} to {np.round(target, 4).tolist()} at {speed} m/s")
        return T, target

    def move_linear(self, pose: np.ndarray, speed: float) -> np.ndarray:
        cfg = self.config
        T, target = self._linear_target(pose, speed, "moveL")
        if self.dry_run:
            return T
        self._run("moveL", lambda: self.control.moveL(target, speed, cfg.linear_acceleration))
        return self.tcp_pose()

    def descend(self, pose: np.ndarray, speed: float) -> bool:
        """Guarded descent: the move is sent asynchronously and watched with the controller's contact detection
        (``toolContact``, from the arm's force sensing) every ``contact_poll_s``; on a contact the arm stops
        (``stopL``) and backs off ``contact_backoff`` the way it came, a checked move like any other. True when
        it stopped on contact, False when it reached ``pose``."""
        cfg = self.config
        T, target = self._linear_target(pose, speed, "moveL until contact")
        if self.dry_run:
            return False
        start = self.tcp_pose()
        contact = False
        patience = 2.0 * float(np.linalg.norm(T[:3, 3] - start[:3, 3])) / speed + 2.0  # seconds

        def watch() -> bool:
            nonlocal contact
            if not self.control.moveL(target, speed, cfg.linear_acceleration, True):
                return False
            give_up = time.monotonic() + patience
            while True:
                if self.control.toolContact([0.0] * 6) > 0:
                    self.control.stopL(cfg.contact_deceleration)
                    contact = True
                    return True
                done = self.control.getAsyncOperationProgress() < 0
                if done and np.linalg.norm(np.subtract(self.receive.getActualTCPPose()[:3], target[:3])) \
                        <= cfg.reached_tolerance:
                    return True
                if self.receive.isProtectiveStopped() or self.receive.isEmergencyStopped():
                    return False  # ``_run`` names the stop
                if time.monotonic() > give_up:
                    raise RobotError(f"the guarded descent to {np.round(target, 3).tolist()} did not finish within "
                                     f"{patience:.1f} s")
                time.sleep(cfg.contact_poll_s)

        self._run("guarded moveL", watch)
        if contact:
            self.move_linear(backed_off(start, self.tcp_pose(), cfg.contact_backoff), speed)
        return contact

    def move_joints(self, q, speed: float) -> np.ndarray:
        cfg = self.config
        q = self.gate.check_joints(q, speed, cfg.joint_acceleration).tolist()
        if self.control is None:
            raise RobotError("UR10e motion before enable(): the operator has not confirmed")
        if not self.control.isJointsWithinSafetyLimits(q):
            raise SafetyError(f"the controller rejects joints {np.round(q, 3).tolist()} as outside its safety limits")
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
        """Decelerate the arm to a stop (the gripper keeps what it holds). Never raises."""
        if self.control is not None:
            try:
                self.control.stopL(10.0)
            except Exception as exc:  # noqa: BLE001  stopping must not mask the fault that asked for it
                logger.warning("UR10e at %s: stopL failed: %s", self.host, exc)
