"""Network weights on disk: ``NAME.safetensors`` plus ``NAME.json`` (the card: architecture, data, recipe,
commit, parameter count, evaluation figures)."""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pipeline.cli import git_commit
from pipeline.errors import DistillGraspError
from pipeline.models.common import DepthNet, count_parameters
from pipeline.models.student import Student
from pipeline.models.teacher import Teacher

logger = logging.getLogger(__name__)
ARCHITECTURES: dict[str, type[DepthNet]] = {"teacher": Teacher, "student": Student}


def weights_dir() -> Path:
    """Where the shipped weights are: ``$DISTILLGRASP_WEIGHTS`` if set, else the checkout's ``weights/``, else
    where an installed package put them (``PREFIX/share/distillgrasp/weights``)."""
    if os.environ.get("DISTILLGRASP_WEIGHTS"):
        return Path(os.environ["DISTILLGRASP_WEIGHTS"])
    checkout = Path(__file__).resolve().parents[1] / "weights"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "distillgrasp" / "weights"


WEIGHTS_DIR = weights_dir()


class WeightsError(DistillGraspError):
    """A weights file or its card is missing, corrupt or does not fit the architecture."""


def build(arch: str, config: dict | None = None) -> DepthNet:
    if arch not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if not isinstance(config or {}, dict):
        raise WeightsError(f"{arch} config must be a mapping of options, got {config!r}")
    known = set(inspect.signature(ARCHITECTURES[arch]).parameters)
    unknown = sorted(set(config or {}) - known)
    if unknown:
        raise WeightsError(f"{arch} has no option(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}")
    return ARCHITECTURES[arch](**(config or {}))


def _non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in ``state`` that hold NaN or infinite values."""
    return [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def _write_atomic(path: Path, write) -> None:
    """``write(tmp)`` then rename over ``path``: a reader never sees half a file, a failure leaves the old one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save(model: DepthNet, path: str | Path, card: dict) -> Path:
    """Write ``path`` (.safetensors) and its card beside it (.json)."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    arch = next(k for k, v in ARCHITECTURES.items() if isinstance(model, v))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    bad = _non_finite(state)
    if bad:
        raise WeightsError(f"refusing to save {path}: NaN or infinite values in {', '.join(bad[:5])}")
    full = {"arch": arch, "config": model.config, "params": count_parameters(model), "commit": git_commit(), **card}
    _write_atomic(path, lambda tmp: save_file(state, str(tmp), metadata={"arch": arch}))
    _write_atomic(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(full, indent=2) + "\n"))
    return path


def read_card(path: str | Path) -> dict:
    """The card beside weights ``path`` (``NAME.json`` beside ``NAME.safetensors``)."""
    card_path = Path(path).with_suffix(".json")
    if not card_path.is_file():
        raise WeightsError(f"weights card not found: {card_path}")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{card_path}: not a weights card ({exc})") from None
    if not isinstance(card, dict):
        raise WeightsError(f"{card_path}: not a weights card")
    return card


def load(path: str | Path) -> tuple[DepthNet, dict]:
    """Model (in eval mode) and card from ``path``; clear errors for missing or corrupt files."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    card_path = path.with_suffix(".json")
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path} (train one with `python -m pipeline.train`, "
                           "see the README)")
    card = read_card(path)
    try:
        arch, config = card["arch"], card.get("config", {})
    except (KeyError, TypeError) as exc:
        raise WeightsError(f"{card_path}: not a weights card ({exc})") from None
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: corrupt or truncated weights file ({exc})") from None
    state = _settle_overflowed_variances(state, path)
    bad = _non_finite(state)
    if bad:
        raise WeightsError(f"{path}: NaN or infinite values in {', '.join(bad[:5])}")
    try:
        model = build(arch, config)
    except WeightsError as exc:
        raise WeightsError(f"{card_path}: {exc}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the {arch} architecture of its card ({exc})") from None
    return model.eval(), card


def _settle_overflowed_variances(state: dict, path: Path) -> dict:
    """A batch norm whose running variance overflowed to +inf in float16 storage outputs its bias, whatever comes
    in (x / sqrt(inf) = 0). The same layer with that variance 1 and its scale 0 computes exactly the same, with
    finite numbers; anything else non-finite stays and is refused."""
    state = dict(state)
    for key in [k for k in state if k.endswith("running_var")]:
        var = state[key]
        overflowed = torch.isposinf(var)
        scale_key = key[: -len("running_var")] + "weight"
        if overflowed.any() and scale_key in state:
            scale = state[scale_key].clone()
            scale[overflowed] = 0
            state[key] = torch.where(overflowed, torch.ones_like(var), var)
            state[scale_key] = scale
            logger.debug("%s: %s overflowed in storage in %d channels; taken as the same layer with finite numbers",
                         path, key, int(overflowed.sum()))
    return state


def load_state(model: torch.nn.Module, path: str | Path) -> None:
    """Load only tensors (e.g. initialisation from a checkpoint) with the same checks."""
    model.load_state_dict(load(path)[0].state_dict())
