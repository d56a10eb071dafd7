"""Small helpers shared by the command-line entry points."""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import subprocess
import sys
from pathlib import Path

PACKAGES = ("distillgrasp", "pipeline", "grasping", "sim", "hardware")  # the loggers setup_logging sets up


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every command's help: the module docstring as written, and each option's default, options without a help
    text included (lists as ``a,b``; nothing for required options, switches and options without a default)."""

    @staticmethod
    def _default_text(action: argparse.Action) -> str | None:
        default = action.default
        if (action.required or default is None or default is False or default is argparse.SUPPRESS
                or not action.option_strings or "%(default)" in (action.help or "")):
            return None
        if isinstance(default, (list, tuple)):
            default = (" " if isinstance(action.nargs, int) else ",").join(str(v) for v in default)
        return f"(default: {str(default).replace('%', '%%')})"

    def _format_action(self, action: argparse.Action) -> str:
        if not (action.help or "").strip() and self._default_text(action):
            action = copy.copy(action)
            action.help = self._default_text(action)
            action.default_only = True
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        extra = self._default_text(action)
        if not extra or getattr(action, "default_only", False):
            return action.help
        return f"{action.help} {extra}"


class _LogFormatter(logging.Formatter):
    """Progress notes as plain lines, anything else prefixed with its level (``warning: ...``)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).rstrip()
        return text if record.levelno == logging.INFO else f"{record.levelname.lower()}: {text}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirected stream)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def setup_logging(verbose: bool = False) -> None:
    """Diagnostics to stderr, one line each: this project's progress notes and everyone's warnings by default,
    the project's debug lines too with ``verbose``. Python warnings go the same way. Safe to call twice."""
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_LogFormatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in PACKAGES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)


def split_list(values: list[str] | str) -> list[str]:
    """A list option's items, separated by spaces or commas alike: ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    if isinstance(values, str):
        values = [values]
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def list_argument(parser: argparse.ArgumentParser, flag: str, choices=None, **kwargs) -> None:
    """An option taking a list, its items separated by spaces or commas (``--depth raw,gt`` = ``--depth raw gt``),
    checked against ``choices`` with a one-line error."""

    class _List(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            items = split_list(values)
            if not items:
                parser.error(f"{option_string} needs at least one item")
            bad = [i for i in items if choices is not None and i not in choices]
            if bad:
                parser.error(f"{option_string}: unknown {', '.join(bad)}; choose from {', '.join(choices)}")
            setattr(namespace, self.dest, items)

    if isinstance(kwargs.get("default"), str):
        kwargs["default"] = split_list(kwargs["default"])
    parser.add_argument(flag, nargs="+", action=_List, **kwargs)


def parse_size(text: str) -> tuple[int, int]:
    """'320x240' -> (320, 240), with a clear error for anything else."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 320x240), got {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise ValueError(f"size {w}x{h} is outside 16-4096 pixels per side")
    return w, h


def finite_json(obj):
    """``obj`` with NaN and infinite floats as None (null), numpy scalars as Python ones: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:
        return finite_json(obj.item())
    return obj


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented strict JSON (NaN as null), creating the parent folder."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name for the JSON")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite_json(obj), indent=2, allow_nan=False) + "\n")


def git_commit() -> str | None:
    """The checkout's HEAD commit, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parents[1])
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
