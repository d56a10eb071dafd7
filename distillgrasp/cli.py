"""``distillgrasp``: one command, a subcommand per task. Each subcommand is a module's ``main`` and also runs as
``python -m MODULE``; ``distillgrasp --help`` imports none of them."""

from __future__ import annotations

import argparse
import importlib
import sys

from distillgrasp import __version__
from pipeline.cli import PACKAGES, setup_logging  # stdlib only: --help stays light

COMMANDS: dict[str, tuple[str, str]] = {  # subcommand -> (module with main(argv), what it does)
    "run": ("distillgrasp.run", "capture, repair depth, pick: in simulation, on a real cell, or on a recording"),
    "trials": ("distillgrasp.trials", "grasp-success trials of depth sources on the same simulated scenes"),
    "heights": ("distillgrasp.heights", "how far each depth source puts objects' tops from the truth (simulation)"),
    "generate": ("sim.generate", "make a data set of simulated RGB-D frames with ground truth"),
    "shard": ("pipeline.data.pack", "pack frames into shards, many per file, to train on another machine"),
    "preview": ("sim.preview", "draw one simulated frame (and a real one to compare)"),
    "train": ("pipeline.train", "train the teacher, or the student (distilled or supervised)"),
    "evaluate": ("pipeline.evaluate", "score depth completers on frames with ground truth"),
    "complete": ("pipeline.complete", "complete the depth of your own captures, at their own resolution"),
    "bench": ("pipeline.bench", "time the networks"),
    "export": ("pipeline.export", "export a network to ONNX"),
    "ship": ("pipeline.ship", "copy a training run's best weights into weights/ with their card"),
    "calibrate": ("hardware.calibrate", "hand-eye calibration of the camera against the UR10e"),
    "stats": ("pipeline.data.stats", "how a depth camera fails on glass, over a folder of frames"),
    "look": ("pipeline.data.look", "how glass looks against its surroundings, over a folder of frames"),
}


EXTRAS = {"pybullet": "sim", "mitsuba": "photoreal", "drjit": "photoreal", "pyoidn": "photoreal",
          "pyrealsense2": "hardware", "rtde_control": "hardware", "rtde_receive": "hardware"}


def parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<10} {what}" for name, (_, what) in COMMANDS.items())
    ap = argparse.ArgumentParser(
        prog="distillgrasp", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Repair the depth RGB-D cameras return on glass, and grasp it.",
        epilog=f"commands:\n{lines}\n\n`distillgrasp COMMAND --help` describes each one.")
    ap.add_argument("--version", action="version", version=f"distillgrasp {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="also log debug lines")
    ap.add_argument("command", metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    ap.add_argument("args", nargs=argparse.REMAINDER, help="the command's own options")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.command not in COMMANDS:
        ap.error(f"unknown command {args.command!r}; choose from {', '.join(COMMANDS)}")
    setup_logging(args.verbose)
    try:
        module = importlib.import_module(COMMANDS[args.command][0])
        return module.main(args.args)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if not top or top in PACKAGES:
            raise
        extra = EXTRAS.get(top)
        fix = f"pip install 'distillgrasp[{extra}]'" if extra else "install distillgrasp with its dependencies"
        print(f"error: distillgrasp {args.command} needs the Python package {top!r}, which is not installed "
              f"({fix})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
