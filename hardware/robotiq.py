"""Robotiq 2F-85 through the Robotiq URCap's text protocol (TCP port 63352 on the robot controller).

Requests are lines such as ``SET POS 255 SPE 128 FOR 64 GTO 1`` (answered ``ack``) and ``GET OBJ``
(answered ``OBJ 2``). Variables: ACT activate, GTO go to, ATR auto-release, POS/SPE/FOR 0-255 (POS 255 =
closed), STA status (0 reset, 1 activating, 3 active), PRE echo of the requested position, OBJ object detection
(0 moving, 1 contact while opening, 2 contact while closing = object held, 3 reached the position = nothing
held), FLT fault code.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from grasping.robot import Gripper, LimitError, RobotError
from pipeline.config import DEFAULT_GRIPPER, GripperConfig

URCAP_PORT = 63352


class GripperError(RobotError):
    """The gripper faulted, timed out or cannot be reached."""


@dataclass(frozen=True)
class RobotiqConfig:
    port: int = URCAP_PORT
    connect_timeout_s: float = 3.0
    reply_timeout_s: float = 2.0
    motion_timeout_s: float = 5.0
    activation_timeout_s: float = 10.0
    speed: int = 128  # 0-255
    min_force_n: float = 20.0  # FOR 0
    max_force_n: float = 235.0  # FOR 255
    poll_s: float = 0.02


class RobotiqGripper(Gripper):
    def __init__(self, host: str, config: RobotiqConfig = RobotiqConfig(), gripper: GripperConfig = DEFAULT_GRIPPER):
        self.host, self.config, self.gripper = host, config, gripper
        self._sock: socket.socket | None = None
        self._buf = b""

    # -------------------------------------------------------------------------------- connection
    def connect(self) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.config.port), timeout=self.config.connect_timeout_s)
        except OSError as exc:
            raise GripperError(f"cannot reach the Robotiq URCap at {self.host}:{self.config.port} ({exc}); "
                               "is the URCap installed and the robot on?") from None
        self._sock.settimeout(self.config.reply_timeout_s)

    def disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "RobotiqGripper":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    def _request(self, line: str) -> str:
        if self._sock is None:
            raise GripperError("gripper used before connect()")
        try:
            self._sock.sendall((line + "\n").encode())
            while b"\n" not in self._buf:
                chunk = self._sock.recv(1024)
                if not chunk:
                    raise GripperError(f"the URCap closed the connection after {line!r}")
                self._buf += chunk
        except socket.timeout:
            raise GripperError(f"no reply from the gripper to {line!r} within {self.config.reply_timeout_s} s") from None
        except OSError as exc:
            raise GripperError(f"gripper connection lost during {line!r} ({exc})") from None
        reply, self._buf = self._buf.split(b"\n", 1)
        return reply.decode().strip()

    def set(self, **values: int) -> None:
        """``set(POS=255, SPE=128, FOR=64, GTO=1)`` in one request (order kept)."""
        line = "SET " + " ".join(f"{k} {int(v)}" for k, v in values.items())
        reply = self._request(line)
        if reply != "ack":
            raise GripperError(f"gripper refused {line!r}: {reply!r}")

    def get(self, name: str) -> int:
        reply = self._request(f"GET {name}")
        parts = reply.split()
        if len(parts) != 2 or parts[0] != name:
            raise GripperError(f"unexpected reply to GET {name}: {reply!r}")
        return int(parts[1])

    def _check_fault(self) -> None:
        flt = self.get("FLT")
        if flt != 0:
            raise GripperError(f"gripper fault FLT {flt} (see the Robotiq manual's fault table); reset and "
                               "re-activate")

    def _wait(self, done, what: str, timeout: float) -> int:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            value = done()
            if value is not None:
                return value
            time.sleep(self.config.poll_s)
        raise GripperError(f"gripper did not {what} within {timeout} s")

    # -------------------------------------------------------------------------------- operation
    def activate(self) -> None:
        """Reset then activate (ACT 0, ATR 0, wait STA 0; ACT 1, wait STA 3)."""
        self.set(ACT=0, ATR=0)
        self._wait(lambda: 0 if self.get("STA") == 0 else None, "reset", self.config.activation_timeout_s)
        self.set(ACT=1)
        self._wait(lambda: 3 if self.get("STA") == 3 else None, "activate", self.config.activation_timeout_s)
        self._check_fault()

    def width_to_pos(self, width: float) -> int:
        stroke = self.gripper.stroke_m
        if not 0.0 <= width <= stroke + 1e-9:
            raise LimitError(f"gripper opening {width * 1000:.1f} mm is outside the {stroke * 1000:.0f} mm stroke")
        return int(round((1.0 - width / stroke) * 255))

    def force_to_for(self, force: float) -> int:
        lo, hi = self.config.min_force_n, self.config.max_force_n
        if not lo <= force <= hi:
            raise LimitError(f"gripper force {force} N is outside {lo}-{hi} N")
        return int(round((force - lo) / (hi - lo) * 255))

    def _move(self, pos: int, force_code: int) -> int:
        self.set(POS=pos, SPE=self.config.speed, FOR=force_code, GTO=1)
        self._wait(lambda: 1 if self.get("PRE") == pos else None, "accept the target", self.config.reply_timeout_s)

        def settled():
            self._check_fault()
            obj = self.get("OBJ")
            return obj if obj != 0 else None

        obj = self._wait(settled, "finish moving", self.config.motion_timeout_s)
        self._check_fault()
        return obj

    def open(self, width: float | None = None) -> None:
        self._move(self.width_to_pos(self.gripper.stroke_m if width is None else width), self.force_to_for(60.0))

    def close(self, force: float = 40.0) -> bool:
        """Close with ``force`` N; True when the gripper stopped on an object (OBJ 2)."""
        return self._move(255, self.force_to_for(force)) == 2

    def width(self) -> float:
        return (1.0 - self.get("POS") / 255.0) * self.gripper.stroke_m

    def holding(self) -> bool:
        """The gripper's own object detection: stopped on an object while closing (OBJ 2)."""
        return self.get("OBJ") == 2
