"""Train the teacher, or distil the student from it.

    distillgrasp train teacher --data DIR [DIR ...] --val DIR --out runs/teacher --steps N
    distillgrasp train student --teacher weights/teacher.safetensors --data DIR ... --out runs/student
    distillgrasp train student --no-distill ...            (the same student, supervised only)

Frames are loaded once at ``--size`` into memory; each step takes random ``--crop`` windows with flips and
colour jitter. Distillation is offline: the teacher completes every whole frame once (``--teacher-flip``: the
mean with its mirrored frame) and those maps, cached in ``OUT/teacher-targets.pt``, are cropped and mirrored
with the frames; the student learns from them and from the ground truth. Every ``--val-every`` steps the model
is scored on ``--val`` (transparent-pixel RMSE etc.), one JSON line is appended to ``OUT/log.jsonl``,
``OUT/last.pt`` is written (model, optimiser, step, random state) and, when the validation RMSE improves,
``OUT/best.safetensors`` with its card. A rerun with the same ``--out`` resumes from ``last.pt``.
``--device auto`` trains on the GPU when there is one (frames held in its memory, bfloat16 autocast,
channels-last). Under ``torchrun`` it trains with DistributedDataParallel (nccl on GPUs, gloo on CPUs); a
``DistributedSampler`` splits every epoch between the processes, rank 0 validates and writes, and a run resumes on
any number of processes. ``--data`` takes folders of frames or of shards (``distillgrasp shard``).
"""

from __future__ import annotations

import json
import os
import sys

from pipeline.errors import DistillGraspError
from pipeline.train.config import ConfigError, TrainConfig
from pipeline.train.loop import train

__all__ = ["ConfigError", "TrainConfig", "main", "train"]


def main(argv: list[str] | None = None) -> int:
    """``distillgrasp train``: 0 when the run finished, 2 (``error: ...`` on stderr) when it cannot run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result = train(TrainConfig.from_args(argv))
    except (DistillGraspError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))
    return 0
