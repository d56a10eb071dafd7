"""Fakes of the ur_rtde seam: the subset of RTDEControlInterface and RTDEReceiveInterface the driver calls,
over a simple kinematic state (the TCP jumps to each target). Faults can be injected."""

from __future__ import annotations


class FakeURState:
    def __init__(self):
        self.tcp = [0.6, 0.0, 0.45, 3.14159, 0.0, 0.0]
        self.q = [2.85, -1.76, 1.86, -1.67, -1.57, -1.87]
        self.protective_stop = False
        self.emergency_stop = False
        self.mode = 7
        self.sent: list[tuple] = []
        self.stop_calls = 0
        self.protective_stop_on_move: int | None = None  # raise a protective stop during the Nth motion
        self.unsafe = False
        self.tcp_set = None
        self.contact_z: float | None = None  # a surface at this height stops a linear move down onto it
        self.in_contact = False


class FakeControl:
    def __init__(self, state: FakeURState):
        self.s = state
        self.connected = True

    def setTcp(self, pose):
        self.s.tcp_set = list(pose)

    def setPayload(self, mass, cog):
        pass

    def isPoseWithinSafetyLimits(self, pose):
        return not self.s.unsafe

    def isJointsWithinSafetyLimits(self, q):
        return not self.s.unsafe

    def _motion(self, kind, target, speed, acc):
        self.s.sent.append((kind, list(target), speed, acc))
        if self.s.protective_stop_on_move is not None and len(self.s.sent) >= self.s.protective_stop_on_move:
            self.s.protective_stop = True
            return False
        if kind == "moveL":
            self.s.tcp = list(target)
            if self.s.contact_z is not None and target[2] < self.s.contact_z:
                self.s.tcp[2], self.s.in_contact = self.s.contact_z, True
            else:
                self.s.in_contact = False
        else:
            self.s.q = list(target)
        return True

    def moveL(self, pose, speed=0.25, acceleration=1.2, asynchronous=False):
        self.s.asynchronous = asynchronous
        return self._motion("moveL", pose, speed, acceleration)

    def moveJ(self, q, speed=1.05, acceleration=1.4, asynchronous=False):
        return self._motion("moveJ", q, speed, acceleration)

    def stopL(self, a=10.0):
        self.s.stop_calls += 1

    def toolContact(self, direction):
        return 3 if self.s.in_contact else 0

    def getAsyncOperationProgress(self):
        return -1  # every motion of the fake is over when its call returns

    def stopScript(self):
        pass

    def disconnect(self):
        self.connected = False


class FakeReceive:
    def __init__(self, state: FakeURState):
        self.s = state
        self.connected = True

    def getActualTCPPose(self):
        return list(self.s.tcp)

    def getActualQ(self):
        return list(self.s.q)

    def isProtectiveStopped(self):
        return self.s.protective_stop

    def isEmergencyStopped(self):
        return self.s.emergency_stop

    def getRobotMode(self):
        return self.s.mode

    def disconnect(self):
        self.connected = False


def factories(state: FakeURState):
    return (lambda host: FakeControl(state)), (lambda host: FakeReceive(state))
