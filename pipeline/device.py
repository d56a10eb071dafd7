"""Where tensors live: ``--device auto|cpu|cuda[:N]`` of the training, evaluation and benchmark commands."""

from __future__ import annotations

import os

import torch

from pipeline.errors import DistillGraspError

DEVICES = ("auto", "cpu", "cuda")


class DeviceError(DistillGraspError, ValueError):
    """A device was asked for that does not exist on this machine, or is not a device name."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when PyTorch sees one, else the CPU. Under ``torchrun`` a bare ``cuda`` (or ``auto``
    on a GPU machine) is this process's GPU, ``cuda:$LOCAL_RANK``."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: PyTorch sees no CUDA GPU on this machine "
                              f"(torch {torch.__version__}); use --device cpu or auto")
        index = int(os.environ.get("LOCAL_RANK", "0")) if name == "cuda" else _index(name)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        return torch.device("cuda", index)
    raise DeviceError(f"--device {name!r}: use auto, cpu, cuda or cuda:N")


def _index(name: str) -> int:
    try:
        index = int(name.split(":", 1)[1])
    except ValueError:
        raise DeviceError(f"--device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if index < 0:
        raise DeviceError(f"--device {name!r}: the GPU index must not be negative")
    return index


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (timings); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
