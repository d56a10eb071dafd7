"""Typed errors: each names the thing that is wrong (file, shape, unit, value)."""


class DistillGraspError(Exception):
    """Base class of the project's own errors."""


class FrameError(DistillGraspError, ValueError):
    """An image or depth map has the wrong shape, dtype or unit."""


class DataFormatError(DistillGraspError, ValueError):
    """A dataset file is missing, truncated, unreadable or inconsistent with its neighbours."""


class DeviceNotConnectedError(DistillGraspError, RuntimeError):
    """A device was used before ``connect()`` or after ``disconnect()``."""
