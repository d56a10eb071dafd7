"""Shared fixtures: the real frames in ../shared/data and a small generated set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DISTILLGRASP_SHARED", ROOT.parent / "shared")) / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample frames not found at {SHARED_DATA} (set DISTILLGRASP_SHARED)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def generated_d435(tmp_path_factory) -> Path:
    """16 simulated D435 frames at 320x240 (seed 7)."""
    from sim.generate import GenerateConfig, generate

    out = tmp_path_factory.mktemp("gen_d435")
    generate(out, 16, GenerateConfig(seed=7, sensor="d435", width=320, height=240), progress=False)
    return out


@pytest.fixture(scope="session")
def generated_l515(tmp_path_factory) -> Path:
    from sim.generate import GenerateConfig, generate

    out = tmp_path_factory.mktemp("gen_l515")
    generate(out, 16, GenerateConfig(seed=7, sensor="l515", width=320, height=240), progress=False)
    return out
