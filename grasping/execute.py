"""Execute a top-down pick: pre-grasp above, descend, close, lift, hold, verify, place aside.

Works over any ``Robot`` + ``Gripper``. Success is decided by ``verify`` when given (in simulation: the object
was lifted and is still held, judged from physics); otherwise by the gripper's own object detection. The
gripper's report is logged beside the verdict either way.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from grasping.detect import Grasp
from grasping.kinematics import IKError
from grasping.robot import Gripper, LimitError, Robot, RobotError, StopActiveError, top_down_pose
from grasping.safety import SafetyError


@dataclass(frozen=True)
class PickConfig:
    approach_height: float = 0.10  # pre-grasp above the grasp point, metres
    transit_z: float = 0.35  # travel over the scene at this height (base frame), above the tallest object
    lift_height: float = 0.10
    approach_speed: float = 0.25  # m/s (the real arm is limited to 0.25 by default)
    descend_speed: float = 0.1
    grip_force: float = 40.0  # newtons
    hold_s: float = 0.5
    place_xy: tuple[float, float] = (0.45, -0.45)  # where picked objects are put down (base frame)
    place_z: float = 0.25
    # The fingers closed on nothing after a descent that met nothing (completed depth can put an object's top
    # centimetres high): open, go this much lower and close again, up to ``lower_closes`` times, never below
    # the grasp's ``floor``
    lower_step: float = 0.02
    lower_closes: int = 2


@dataclass
class PickResult:
    success: bool
    reason: str  # "ok" or why it failed
    gripper_holding: bool | None = None  # the gripper's own report
    timings: dict[str, float] = field(default_factory=dict)
    stop_active: bool = False  # a protective or emergency stop ended the pick: the session must end too
    contact: bool | None = None  # the guarded descent stopped on a contact before the grasp pose (None: no descent)
    lower_closes: int = 0  # closes made lower after the fingers met nothing

    def to_dict(self) -> dict:
        return asdict(self)


class PickExecutor:
    def __init__(self, robot: Robot, gripper: Gripper, config: PickConfig = PickConfig(),
                 wait: Callable[[float], None] | None = None):
        self.robot, self.gripper, self.config = robot, gripper, config
        self.wait = wait or time.sleep

    def pick(self, grasp: Grasp | None, verify: Callable[[], tuple[bool, str]] | None = None,
             check_approach: Callable[[], tuple[bool, str]] | None = None) -> PickResult:
        """``check_approach`` (optional) judges the descent before the fingers close: an object pushed or
        knocked over by the open gripper ends the attempt (back up, open, report why)."""
        if grasp is None:
            return PickResult(False, "no grasp found")
        cfg = self.config
        x, y, z = grasp.center
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        holding = None
        try:
            if not np.isfinite([x, y, z, grasp.yaw, grasp.width]).all():
                raise SafetyError(f"grasp holds NaN or infinite values: centre {list(grasp.center)}, yaw "
                                  f"{grasp.yaw}, width {grasp.width}")
            above = top_down_pose(x, y, z + cfg.approach_height, grasp.yaw)
            at = top_down_pose(x, y, z, grasp.yaw)
            lifted = top_down_pose(x, y, z + cfg.lift_height, grasp.yaw)
            transit = top_down_pose(x, y, max(cfg.transit_z, z + cfg.approach_height), grasp.yaw)
            place = top_down_pose(*cfg.place_xy, cfg.place_z, grasp.yaw)
            parked = top_down_pose(*cfg.place_xy, cfg.place_z, 0.0)
            lower = [top_down_pose(x, y, zl, grasp.yaw) for zl in self._lower_zs(grasp)]
            # every target passes the arm's checks before the first one is sent
            for target, speed in ((transit, cfg.approach_speed), (above, cfg.approach_speed),
                                  (at, cfg.descend_speed), *((t, cfg.descend_speed) for t in lower),
                                  (lifted, cfg.descend_speed), (place, cfg.approach_speed),
                                  (parked, cfg.approach_speed)):
                self.robot.check_linear(target, speed)
            self.gripper.open(grasp.width)
            # Travel high, then come straight down: a slanted path to the pre-grasp would sweep the open
            # fingers through the neighbours of the target.
            here = self.robot.tcp_pose()
            if here[2, 3] < cfg.transit_z:
                self.robot.move_linear(top_down_pose(here[0, 3], here[1, 3], cfg.transit_z, grasp.yaw),
                                       cfg.descend_speed)
            self.robot.move_linear(transit, cfg.approach_speed)
            self.robot.move_linear(above, cfg.approach_speed)
            # The guarded descent stops on the first contact. Where the fingers then close on nothing and met
            # nothing on the way, they open and the descent goes on to the next lower target.
            for closes, target in enumerate((at, *lower)):
                if closes:
                    self.gripper.open(grasp.width)
                contact = self.robot.descend(target, cfg.descend_speed)
                if not closes:
                    timings["approach_s"] = time.perf_counter() - t0
                if check_approach is not None:
                    ok, why = check_approach()
                    if not ok:
                        self.robot.move_linear(above, cfg.descend_speed)
                        timings["total_s"] = time.perf_counter() - t0
                        return PickResult(False, why, None, timings, contact=contact, lower_closes=closes)
                holding = self.gripper.close(cfg.grip_force)
                if holding or contact:
                    break
            self.robot.move_linear(lifted, cfg.descend_speed)
            self.wait(cfg.hold_s)
            timings["grasp_s"] = time.perf_counter() - t0
            if verify is not None:
                ok, why = verify()
            else:
                ok, why = (holding, "ok" if holding else "empty gripper")
            if ok:
                self.robot.move_linear(place, cfg.approach_speed)
            self.gripper.open()
            self.robot.move_linear(parked, cfg.approach_speed)
            timings["total_s"] = time.perf_counter() - t0
            return PickResult(ok, "ok" if ok else why, holding, timings, contact=contact, lower_closes=closes)
        except IKError as exc:
            self._safe_stop()
            return PickResult(False, f"IK failure: {exc}", holding, timings)
        except LimitError as exc:
            self._safe_stop()
            return PickResult(False, f"limit: {exc}", holding, timings)
        except StopActiveError as exc:
            self._safe_stop()
            return PickResult(False, f"aborted: {exc}", holding, timings, stop_active=True)
        except RobotError as exc:
            self._safe_stop()
            return PickResult(False, f"aborted: {exc}", holding, timings)
        except BaseException:  # anything else (a lost connection, Ctrl-C): stop the arm, then let it travel on
            self._safe_stop()
            raise

    def _lower_zs(self, grasp: Grasp) -> list[float]:
        """TCP heights of the closes made lower where the fingers meet nothing: ``lower_step`` apart below the
        grasp, down to its ``floor`` (none where the grasp has no floor or sits on it)."""
        cfg, z = self.config, grasp.center[2]
        if grasp.floor is None or cfg.lower_step <= 0:
            return []
        zs = [max(z - (i + 1) * cfg.lower_step, grasp.floor) for i in range(cfg.lower_closes)]
        return [zl for i, zl in enumerate(zs) if zl < (zs[i - 1] if i else z) - 1e-3]

    def _safe_stop(self) -> None:
        try:
            self.robot.stop()
        except Exception:  # noqa: BLE001  stopping must never mask the original failure
            pass
