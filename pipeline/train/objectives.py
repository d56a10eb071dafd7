"""What a training step minimises, from the run's configuration (the terms are in ``pipeline.losses``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.losses import DistillWeights, distillation_loss, gate_loss, supervised_loss
from pipeline.train.batch import Batch
from pipeline.train.config import TrainConfig


@dataclass(frozen=True)
class Objective:
    """The supervised loss against the truth, or with the teacher's depth in the batch the distillation loss
    (its terms weighted by ``weights``); plus ``gate`` times the trust gate's cross-entropy (0: no gate)."""

    weights: DistillWeights
    gate: float = 0.0

    @classmethod
    def from_config(cls, config: TrainConfig, model: torch.nn.Module) -> Objective:
        weights = DistillWeights(silog=config.w_silog, ssim=config.w_ssim, edge=config.w_edge,
                                 supervised=config.w_supervised, depth=config.w_depth,
                                 transparent=config.w_transparent, edges=config.w_edges)
        has_gate = getattr(model, "gate", None) is not None
        return cls(weights, config.gate_weight if has_gate else 0.0)

    def __call__(self, pred: torch.Tensor, batch: Batch, gate_logits: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of prediction ``pred`` for ``batch``; ``gate_logits``: the gate's, when ``gate`` > 0."""
        if batch.teacher is not None:
            loss, _ = distillation_loss(pred, batch.teacher, batch.gt, batch.mask, self.weights)
        else:
            loss = supervised_loss(pred, batch.gt, batch.mask, edge_weight=self.weights.edges)
        if self.gate:
            loss = loss + self.gate * gate_loss(gate_logits, batch.depth, batch.gt)
        return loss
