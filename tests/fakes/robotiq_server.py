"""A fake Robotiq URCap server on loopback that speaks the real text protocol, with a simple gripper model.

The fingers move towards the requested position at a rate set by SPE; an object of ``object_width`` metres
(None = nothing) stops a closing motion there (OBJ 2); reaching the request gives OBJ 3. ``fault`` sets FLT.
"""

from __future__ import annotations

import socket
import threading
import time


class FakeRobotiq:
    def __init__(self, object_width: float | None = None, stroke: float = 0.085, activation_s: float = 0.05,
                 silent: bool = False):
        self.object_width, self.stroke, self.activation_s, self.silent = object_width, stroke, activation_s, silent
        self.vars = {"ACT": 0, "GTO": 0, "ATR": 0, "POS": 0, "SPE": 0, "FOR": 0, "STA": 0, "PRE": 0, "OBJ": 3,
                     "FLT": 0}
        self.pos = 0.0  # 0-255
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, daemon=True),
                         threading.Thread(target=self._physics, daemon=True)]
        self._act_time = None

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._sock.close()

    def _object_pos(self) -> float | None:
        if self.object_width is None:
            return None
        return (1.0 - self.object_width / self.stroke) * 255

    def _physics(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                v = self.vars
                if v["ACT"] == 1 and v["STA"] != 3:
                    if self._act_time is None:
                        self._act_time = time.monotonic()
                        v["STA"] = 1
                    elif time.monotonic() - self._act_time > self.activation_s:
                        v["STA"] = 3
                if v["ACT"] == 0:
                    v["STA"], self._act_time = 0, None
                if v["STA"] == 3 and v["GTO"] == 1 and v["FLT"] == 0:
                    target = v["PRE"]
                    step = 5 + v["SPE"] / 10.0
                    obj = self._object_pos()
                    if abs(self.pos - target) <= step:
                        self.pos = float(target)
                        v["OBJ"] = 3
                    else:
                        nxt = self.pos + step * (1 if target > self.pos else -1)
                        if target > self.pos and obj is not None and self.pos <= obj <= nxt:
                            self.pos, v["OBJ"] = obj, 2  # stopped on the object while closing
                            v["GTO"] = 0
                        else:
                            self.pos, v["OBJ"] = nxt, 0
                v["POS"] = int(round(self.pos))
            time.sleep(0.005)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while not self._stop.is_set():
                    try:
                        data = conn.recv(1024)
                    except OSError:
                        break
                    if not data:
                        break
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        reply = self._handle(line.decode().strip())
                        if reply is not None and not self.silent:
                            conn.sendall((reply + "\n").encode())

    def _handle(self, line: str) -> str | None:
        self.requests.append(line)
        parts = line.split()
        with self._lock:
            if parts[:1] == ["GET"] and len(parts) == 2 and parts[1] in self.vars:
                return f"{parts[1]} {self.vars[parts[1]]}"
            if parts[:1] == ["SET"] and len(parts) >= 3 and len(parts) % 2 == 1:
                pairs = list(zip(parts[1::2], parts[2::2]))
                if not all(k in self.vars and v.isdigit() for k, v in pairs):
                    return "?"
                for k, val in pairs:
                    val = int(val)
                    if k == "POS":
                        self.vars["PRE"] = val
                        self.vars["OBJ"] = 0
                    if k == "GTO" and val == 1:
                        self.vars["OBJ"] = 0
                    self.vars[k] = val
                return "ack"
        return "?"
