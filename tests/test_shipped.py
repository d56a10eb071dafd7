"""The shipped weights: load by default, beat the classical baselines on freshly generated scenes."""

import json

import numpy as np
import pytest

from pipeline.completion import make_completer
from pipeline.evaluate import evaluate_frames, load_frames
from pipeline.weights import WEIGHTS_DIR


@pytest.fixture(scope="module")
def fresh_scenes(tmp_path_factory):
    from sim.generate import GenerateConfig, generate

    out = tmp_path_factory.mktemp("fresh")
    generate(out, 6, GenerateConfig(seed=4242, sensor="d435", width=320, height=240), progress=False)
    return load_frames([str(out)], None, (320, 240))


def test_cards_describe_the_weights():
    for name in ("student", "teacher"):
        card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
        assert card["arch"] == name and card["params"] > 0
        assert "pipeline.train" in card["recipe"] and card["test"]["transparent"]["rmse"] > 0


def test_shipped_student_beats_raw_and_fill(fresh_scenes):
    completers = {name: make_completer(name) for name in ("student", "fill", "raw")}
    result = evaluate_frames(fresh_scenes, completers, progress=False)["results"]
    rmse = {name: result[name]["transparent"]["rmse"] for name in completers}
    assert rmse["student"] < rmse["fill"] < rmse["raw"], rmse


def test_student_keeps_valid_depth_off_the_glass(fresh_scenes):
    frame = fresh_scenes[0]
    out = make_completer("student").complete(frame).depth
    keep = (frame.depth > 0) & ~frame.mask
    err = np.abs(out[keep] - frame.depth[keep])
    assert np.median(err) < 0.005
