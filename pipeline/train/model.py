"""The network a run trains: built fresh, or loaded from ``--init`` and grown by the modules ``--model-config``
adds (e.g. the student's trust gate), which start from their initialisation."""

from __future__ import annotations

import json
import logging

from pipeline.errors import DistillGraspError
from pipeline.models.common import DepthNet
from pipeline.train.config import TrainConfig
from pipeline.weights import build, load

logger = logging.getLogger(__name__)


def build_model(config: TrainConfig, announce: bool = True) -> tuple[DepthNet, dict | None]:
    """The network and the card of the weights it starts from (None when it starts fresh). ``announce``:
    log which modules of a grown network start fresh."""
    if not config.init:
        return build(config.arch, config.model_config), None
    model, card = load(config.init)
    if not config.model_config:
        return model, card
    grown = build(config.arch, {**card.get("config", {}), **config.model_config})
    wanted = json.dumps(config.model_config)
    try:
        keys = grown.load_state_dict(model.state_dict(), strict=False)
    except RuntimeError as exc:
        raise DistillGraspError(f"--model-config {wanted} changes the shape of tensors of --init {config.init}: "
                                f"only added modules start fresh ({exc})") from None
    if keys.unexpected_keys:
        raise DistillGraspError(f"--model-config {wanted} drops tensors of --init {config.init}: "
                                f"{', '.join(keys.unexpected_keys[:5])}")
    if announce and keys.missing_keys:
        new = sorted({k.split(".")[0] for k in keys.missing_keys})
        logger.info("--init %s: new modules start from their initialisation: %s", config.init, ", ".join(new))
    return grown, card
