"""A training run's settings: ``TrainConfig``, its command line, and the checks made before anything loads."""

from __future__ import annotations

import argparse
import inspect
import json
import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from pipeline.cli import HelpFormatter, parse_size
from pipeline.errors import DistillGraspError
from pipeline.weights import ARCHITECTURES, WeightsError, read_card

ARCHS = ("teacher", "student")
SHARES = ("jpeg", "blur", "glint")  # augmentation shares, 0-1
TEACHER_TERMS = ("w_silog", "w_ssim", "w_edge", "w_depth")  # the distillation terms against the teacher's depth
DEFAULT_GATE_WEIGHT = 0.05


class ConfigError(DistillGraspError, ValueError):
    """A training option has a value that cannot work (named in the message)."""


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run; the command-line flag of a field is its name with dashes."""

    arch: str  # "teacher" or "student"
    data: tuple[str, ...]  # training folders
    out: str  # run folder: last.pt, log.jsonl, best.safetensors and its card
    val: tuple[str, ...] | None = None  # validation folders
    teacher: tuple[str, ...] | None = None  # teacher weights to distil the student from (several: their mean)
    no_distill: bool = False  # train the student on ground truth only
    steps: int = 2000
    batch: int = 8
    lr: float = 1e-3
    warmup: int = 100  # steps of linear learning-rate warm-up (then cosine decay to 0 at ``steps``)
    size: str = "320x240"  # frames are resized to this when loaded
    crop: str = "160x128"  # random training crop; "" for whole frames
    limit: int | None = None  # only the first N training frames
    val_limit: int | None = None  # only the first N validation frames
    val_every: int = 200
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # auto (the GPU when there is one), cpu, cuda or cuda:N
    max_minutes: float | None = None  # stop (checkpointed, resumable) after this long
    model_config: dict | None = None  # architecture keyword arguments (added to --init's)
    w_silog: float = 1.0
    w_ssim: float = 1.0
    w_edge: float = 1.0
    w_supervised: float = 1.0
    w_depth: float = 0.0
    w_transparent: float = 4.0
    w_edges: float = 1.0
    w_gate: float | None = None  # None: DEFAULT_GATE_WEIGHT for a student with a trust gate
    init: str | None = None  # weights to start from (fine-tuning)
    bf16: bool = False
    teacher_flip: bool = False
    jpeg: float = 0.0
    blur: float = 0.0
    glint: float = 0.0
    restart: bool = False
    quiet: bool = False
    argv: tuple[str, ...] = field(default=(), compare=False)  # the command line it was read from, if any

    def __post_init__(self) -> None:
        for name in ("data", "val", "teacher"):  # lists are kept as tuples, however they were given
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.teacher, str):
            object.__setattr__(self, "teacher", (self.teacher,))

    @classmethod
    def from_args(cls, argv: Sequence[str]) -> TrainConfig:
        """The configuration of a ``pipeline.train`` command line (argparse exits 2 on unknown options)."""
        argv = tuple(argv)
        opts = vars(build_parser().parse_args(list(argv)))
        opts["model_config"] = _json_object(opts["model_config"])
        return cls(**opts, argv=argv)

    def to_args(self) -> list[str]:
        """A command line that gives this configuration (options at their defaults left out)."""
        args = [self.arch]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("arch", "argv") or value == f.default:
                continue
            flag = _flag(f.name)
            if isinstance(value, bool):
                args.append(flag)
            elif isinstance(value, tuple):
                args += [flag, *value]
            elif isinstance(value, dict):
                args += [flag, json.dumps(value)]
            else:
                args += [flag, str(value)]
        return args

    @property
    def recipe(self) -> str:
        """The command, as the card of the run's weights records it."""
        return "python -m pipeline.train " + " ".join(shlex.quote(a) for a in (self.argv or self.to_args()))

    @property
    def frame_size(self) -> tuple[int, int]:
        return parse_size(self.size)

    @property
    def crop_size(self) -> tuple[int, int] | None:
        return parse_size(self.crop) if self.crop else None

    @property
    def distils(self) -> bool:
        """Whether the run learns from the teacher's depth maps."""
        return self.arch == "student" and not self.no_distill

    @property
    def gate_weight(self) -> float:
        """Weight of the trust gate's cross-entropy, for a network that has a gate."""
        return DEFAULT_GATE_WEIGHT if self.w_gate is None else self.w_gate

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first option whose value cannot work; reads no frames, builds no model."""
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        for name in ("steps", "batch", "val_every", "threads", "limit", "val_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{_flag(name)} must be a positive integer, got {value}")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise ConfigError(f"--max-minutes must be a positive number of minutes, got {self.max_minutes}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must not be negative, got {self.warmup}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        for name in SHARES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{_flag(name)} is a share of the training frames, 0-1; got {value}")
        for name in ("w_silog", "w_ssim", "w_edge", "w_supervised", "w_depth", "w_transparent", "w_gate"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{_flag(name)} must not be negative, got {value}")
        if not (math.isfinite(self.w_edges) and self.w_edges >= 1.0):
            raise ConfigError(f"--w-edges must be at least 1 (1 = no extra weight), got {self.w_edges}")
        size = _size("--size", self.size)
        if self.crop:
            crop = _size("--crop", self.crop)
            if crop[0] > size[0] or crop[1] > size[1]:
                raise ConfigError(f"--crop {self.crop} is larger than --size {self.size}")
        if not self.data:
            raise ConfigError("--data needs at least one folder")
        for flag, folders in (("--data", self.data), ("--val", self.val or ())):
            for folder in folders:
                if not Path(folder).is_dir():
                    raise ConfigError(f"{flag} {folder}: " + ("not a folder" if Path(folder).exists()
                                                             else "no such folder"))
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise ConfigError(f"--out {self.out} is a file, not a run folder")
        self._validate_teacher()
        self._validate_network()

    def _validate_teacher(self) -> None:
        teachers = " ".join(self.teacher or ())
        if self.arch == "teacher" and self.teacher:
            raise ConfigError(f"--teacher {teachers} distils a student; the teacher learns from ground truth")
        if self.teacher and self.no_distill:
            raise ConfigError(f"--teacher {teachers} and --no-distill contradict each other: distil the student "
                              "or train it on ground truth only")
        if self.distils and not self.teacher:
            raise ConfigError("distilling the student needs --teacher WEIGHTS (or --no-distill)")
        if self.teacher_flip and not self.teacher:
            raise ConfigError("--teacher-flip needs --teacher WEIGHTS")
        for teacher in self.teacher or ():
            arch = _card("--teacher", teacher).get("arch", "teacher")
            if arch != "teacher":
                raise ConfigError(f"--teacher {teacher} holds a {arch}, not a teacher")
        if self.distils and not any(getattr(self, name) > 0 for name in TEACHER_TERMS):
            raise ConfigError(f"--teacher {teachers} with {', '.join(_flag(n) for n in TEACHER_TERMS)} all 0 "
                              "teaches nothing: give one a weight, or use --no-distill")

    def _validate_network(self) -> None:
        options = {}
        if self.init:
            card = _card("--init", self.init)
            if card.get("arch") != self.arch:
                raise ConfigError(f"--init {self.init} holds a {card.get('arch')}, not a {self.arch}")
            options.update(card.get("config") or {})
        if self.model_config is not None:
            if not isinstance(self.model_config, dict):
                raise ConfigError(f"--model-config must be a JSON object of architecture options, "
                                  f"got {self.model_config!r}")
            known = set(inspect.signature(ARCHITECTURES[self.arch]).parameters)
            unknown = sorted(set(self.model_config) - known)
            if unknown:
                raise ConfigError(f"--model-config: the {self.arch} has no option(s) {', '.join(unknown)}; it takes "
                                  f"{', '.join(sorted(known))}")
            options.update(self.model_config)
        if self.w_gate is not None and not (self.arch == "student" and options.get("gate")):
            raise ConfigError("--w-gate trains a student's trust gate: add --model-config '{\"gate\": true}'")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _size(flag: str, text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _json_object(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--model-config is not valid JSON ({exc}): {text}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--model-config must be a JSON object of architecture options, got {text}")
    return value


def _card(flag: str, weights: str) -> dict:
    """The card beside a weights file (as ``pipeline.weights.load`` finds them)."""
    path = Path(weights)
    path = path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")
    if not path.is_file():
        raise ConfigError(f"{flag} {weights}: no such weights file")
    try:
        return read_card(path)
    except WeightsError as exc:
        raise ConfigError(f"{flag} {weights}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    d = {f.name: f.default for f in fields(TrainConfig)}
    ap = argparse.ArgumentParser(prog="distillgrasp train", description=sys.modules[__package__].__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("arch", choices=ARCHS)
    ap.add_argument("--data", metavar="DIR", nargs="+", required=True, help="training folders, any supported layout")
    ap.add_argument("--val", metavar="DIR", nargs="+", default=d["val"], help="validation folders")
    ap.add_argument("--out", metavar="DIR", required=True, help="run folder (checkpoints, log, best weights)")
    ap.add_argument("--teacher", metavar="FILE", nargs="+", default=d["teacher"],
                    help="teacher weights for distillation (student only); several: the mean of their depth maps")
    ap.add_argument("--no-distill", action="store_true", help="train the student on ground truth only")
    ap.add_argument("--steps", metavar="N", type=int, default=d["steps"])
    ap.add_argument("--batch", metavar="N", type=int, default=d["batch"])
    ap.add_argument("--lr", metavar="LR", type=float, default=d["lr"])
    ap.add_argument("--warmup", metavar="N", type=int, default=d["warmup"],
                    help="steps of linear learning-rate warm-up before the cosine decay")
    ap.add_argument("--size", metavar="WxH", default=d["size"], help="frames are resized to this first")
    ap.add_argument("--crop", metavar="WxH", default=d["crop"], help="random training crop (empty for whole frames)")
    ap.add_argument("--limit", metavar="N", type=int, default=d["limit"], help="use only the first N training frames")
    ap.add_argument("--val-limit", metavar="N", type=int, default=d["val_limit"],
                    help="use only the first N validation frames")
    ap.add_argument("--val-every", metavar="N", type=int, default=d["val_every"])
    ap.add_argument("--seed", metavar="S", type=int, default=d["seed"])
    ap.add_argument("--threads", metavar="K", type=int, default=d["threads"], help="CPU threads per process")
    ap.add_argument("--device", metavar="DEV", default=d["device"],
                    help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N; on a GPU the frames live in "
                         "its memory, and the forward passes run under bfloat16 autocast in channels-last layout")
    ap.add_argument("--max-minutes", metavar="M", type=float, default=d["max_minutes"],
                    help="stop after M minutes with the checkpoint written (rerun to go on)")
    ap.add_argument("--model-config", metavar="JSON", default=None, help="JSON of architecture keyword arguments")
    ap.add_argument("--w-silog", metavar="W", type=float, default=d["w_silog"])
    ap.add_argument("--w-ssim", metavar="W", type=float, default=d["w_ssim"])
    ap.add_argument("--w-edge", metavar="W", type=float, default=d["w_edge"])
    ap.add_argument("--w-supervised", metavar="W", type=float, default=d["w_supervised"])
    ap.add_argument("--w-depth", metavar="W", type=float, default=d["w_depth"],
                    help="weight of an absolute depth term against the teacher (the supervised loss's form)")
    ap.add_argument("--w-transparent", metavar="W", type=float, default=d["w_transparent"],
                    help="weight of glass pixels relative to the rest in the distillation terms (1 = uniform)")
    ap.add_argument("--w-edges", metavar="W", type=float, default=d["w_edges"],
                    help="weight of pixels near depth discontinuities of the truth (outlines, rims, walls) in the "
                         "supervised term, relative to the rest (1 = no extra weight)")
    ap.add_argument("--w-gate", metavar="W", type=float, default=d["w_gate"],
                    help=f"weight of the trust gate's cross-entropy (students with a gate only; default "
                         f"{DEFAULT_GATE_WEIGHT})")
    ap.add_argument("--init", metavar="FILE", default=d["init"],
                    help="start from these weights (fine-tuning; same architecture, --model-config may add "
                         "modules)")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the forward passes on the CPU (about 1.5x faster on CPUs with AVX512-BF16; "
                         "always on on a GPU)")
    ap.add_argument("--teacher-flip", action="store_true",
                    help="distil towards the mean of the teacher's depth for the frame and for its mirror image")
    ap.add_argument("--jpeg", metavar="P", type=float, default=d["jpeg"],
                    help="share of training frames re-encoded as JPEG (quality 40-95), as real captures are")
    ap.add_argument("--blur", metavar="P", type=float, default=d["blur"],
                    help="share of training crops slightly blurred")
    ap.add_argument("--glint", metavar="P", type=float, default=d["glint"],
                    help="share of training crops whose glass gets a veil of reflected light and a bright partial "
                         "rim, as glass under room lights looks in real captures")
    ap.add_argument("--restart", action="store_true", help="ignore an existing last.pt")
    ap.add_argument("--quiet", action="store_true")
    return ap
