"""The glass-look statistics (``pipeline.data.look``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.data.look import glass_look, main


def _scene(outline_level: float, inside_level: float, texture: float = 0.0):
    rng = np.random.default_rng(0)
    lum = 100.0 + rng.normal(0.0, 5.0, (120, 160))  # a textured table
    mask = np.zeros((120, 160), bool)
    mask[30:70, 40:100] = True
    inner = np.zeros_like(mask)
    inner[33:67, 43:97] = True
    lum[mask & ~inner] = outline_level
    lum[inner] = inside_level + rng.normal(0.0, texture, inner.sum()) if texture else inside_level
    small = np.zeros_like(mask)
    small[100:105, 10:15] = True  # 25 pixels: too small to count
    return np.repeat(lum.clip(0, 255).astype(np.uint8)[..., None], 3, -1), mask | small


def test_light_rims_and_dark_glass_are_told_apart():
    rgb, mask = _scene(outline_level=130, inside_level=100, texture=10.0)
    (piece,) = glass_look(rgb, mask)
    assert piece["pixels"] == 60 * 40
    assert piece["outline"] == pytest.approx(1.3, abs=0.03) and piece["highlight"] >= piece["outline"]
    assert piece["inside"] == pytest.approx(1.0, abs=0.03)
    assert piece["texture"] == pytest.approx(2.0, abs=0.3)  # std 10 inside against 5 on the table
    (dark,) = glass_look(*_scene(outline_level=60, inside_level=85))
    assert dark["outline"] < 0.65 and dark["inside"] < 0.9 and dark["texture"] < 0.1


def test_command_measures_a_folder_and_refuses_bad_input(generated_l515, tmp_path, capsys):
    out = tmp_path / "look.json"
    assert main([str(generated_l515), "--every", "4", "--json", str(out), "--quiet"]) == 0
    plain = json.loads(out.read_text())
    assert plain["frames"] == 4 and plain["pieces"] > 0 and 0.2 < plain["inside"] < 2.0
    assert main([str(generated_l515), "--every", "4", "--glint", "--json", str(out), "--quiet"]) == 0
    lit = json.loads(out.read_text())
    assert lit["glint"] and lit["pieces"] == plain["pieces"]
    assert lit["outline"] > plain["outline"] and lit["highlight"] > plain["highlight"]
    capsys.readouterr()
    assert main([str(tmp_path / "missing"), "--quiet"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main([str(generated_l515), "--every", "0", "--quiet"]) == 2
    assert "--every" in capsys.readouterr().err
