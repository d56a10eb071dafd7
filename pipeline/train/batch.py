"""``Batch``: the tensors of one training or validation step, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch


@dataclass(frozen=True)
class Batch:
    """B frames as float32 Bx?xHxW tensors: colour (3 channels, 0-1), raw depth, ground truth (metres, 0 =
    unknown), glass mask (0/1), and the teacher's depth when the run distils (else None)."""

    rgb: torch.Tensor
    depth: torch.Tensor
    gt: torch.Tensor
    mask: torch.Tensor
    teacher: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        """The batch with ``fn`` applied to every map alike (a crop, a mirror image)."""
        return replace(self, **{f.name: fn(t) for f in fields(self) if (t := getattr(self, f.name)) is not None})
