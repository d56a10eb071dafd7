"""Small helpers shared by the command-line entry points."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def parse_size(text: str) -> tuple[int, int]:
    """'320x240' -> (320, 240), with a clear error for anything else."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 320x240), got {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise ValueError(f"size {w}x{h} is outside 16-4096 pixels per side")
    return w, h


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON, creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def git_commit() -> str | None:
    """The checkout's HEAD commit, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parents[1])
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
