"""Calls into device libraries that can block for ever (a handshake with a host that accepts the connection and
never answers) run under a deadline here."""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def call_with_timeout(fn: Callable[[], T], timeout_s: float, error: Callable[[str], Exception]) -> T:
    """``fn()``'s result, or ``error(message)`` raised when it has not returned within ``timeout_s``. An
    exception ``fn`` raises travels on. (A call that never returns is left behind in a daemon thread: the
    libraries offer no way to cancel it, and the process can still exit.)"""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001  handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise error(f"no answer within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
