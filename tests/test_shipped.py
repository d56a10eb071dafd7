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
    for name in ("student", "teacher", "student-l515"):
        card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
        assert card["arch"] == name.split("-")[0] and card["params"] > 0
        assert "pipeline.train" in card["recipe"] and card["test"]["transparent"]["rmse"] > 0
    assert json.loads((WEIGHTS_DIR / "student-l515.json").read_text())["sensor"] == "l515"


def test_shipped_lidar_student_completes_lidar_frames(tmp_path):
    """Lidar frames go to student-l515, which finds glass the lidar reads as the table behind it."""
    from pipeline.completion import SensorRoutedCompleter
    from sim.generate import GenerateConfig, generate

    generate(tmp_path, 6, GenerateConfig(seed=4243, sensor="l515", width=320, height=240), progress=False)
    frames = load_frames([str(tmp_path)], None, (320, 240))
    assert all(f.sensor == "l515" for f in frames)
    student = make_completer("student")
    assert isinstance(student, SensorRoutedCompleter) and set(student.by_sensor) == {"l515"}
    completers = {"student": student, "d435 student": student.default, "fill": make_completer("fill"),
                  "raw": make_completer("raw")}
    result = evaluate_frames(frames, completers, progress=False)["results"]
    rmse = {name: result[name]["transparent"]["rmse"] for name in completers}
    assert rmse["student"] < 0.7 * min(rmse["d435 student"], rmse["fill"], rmse["raw"]), rmse


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
