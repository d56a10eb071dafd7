"""The top-height report: matching clusters to objects, the error summary, and one simulated scene end to end."""

import json

import numpy as np
import pytest

from distillgrasp.heights import main
from grasping.heights import HIGH_MM, LOW_MM, match_clusters, summarise_errors


def _disc(x, y, r=0.03, n=200, top=0.1):
    a = np.linspace(0, 2 * np.pi, n)
    return np.column_stack([x + r * np.cos(a), y + r * np.sin(a), np.full(n, top)])


def test_a_cluster_is_matched_only_to_the_one_object_centre_inside_its_footprint():
    clusters = [_disc(0.0, 0.0), _disc(0.3, 0.0, r=0.06), _disc(0.0, 0.4)]
    centres = np.array([[0.001, -0.002],  # inside the first
                        [0.27, 0.0], [0.33, 0.0],  # two inside the second: several objects, no match
                        [0.5, 0.5]])  # in none
    assert match_clusters(clusters, centres) == [0, None, None]
    # a centre just outside the footprint box still counts (the camera sees a glass's near side only) ...
    assert match_clusters([_disc(0.0, 0.0)], np.array([[0.034, 0.0]])) == [0]
    # ... but not one a centimetre past it
    assert match_clusters([_disc(0.0, 0.0)], np.array([[0.04, 0.0]])) == [None]
    assert match_clusters([_disc(0.0, 0.0)], np.zeros((0, 2))) == [None]


def test_the_error_summary_counts_tops_too_low_too_high_and_held():
    e = np.array([-LOW_MM - 1, -LOW_MM, 0.0, 5.0, HIGH_MM - 0.1, HIGH_MM, 40.0, -2.0])
    s = summarise_errors(e)
    assert s["clusters"] == 8 and s["low"] == pytest.approx(1 / 8, abs=1e-3)
    assert s["high"] == pytest.approx(2 / 8, abs=1e-3) and s["held"] == pytest.approx(5 / 8, abs=1e-3)
    assert s["median_mm"] == pytest.approx(np.median(e), abs=0.05)
    assert summarise_errors(np.array([])) == {"clusters": 0}


def test_ground_truth_depth_finds_the_true_tops_of_a_simulated_scene(tmp_path, capsys):
    out = tmp_path / "heights.json"
    assert main(["--sim", "--depth", "gt", "--scenes", "1", "--seed", "7", "--percentiles", "98", "50",
                 "--out", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["seed"] == 7 and s["scenes"] == 1
    top98, middle = s["sources"]["gt"]["p98"], s["sources"]["gt"]["p50"]
    n = top98["glass"]["clusters"] + top98["opaque"]["clusters"]
    assert n >= 1 and sum(k["clusters"] for k in top98["kinds"].values()) == n
    for part in ("glass", "opaque"):
        if top98[part]["clusters"]:
            assert abs(top98[part]["median_mm"]) < 5.0 and top98[part]["held"] == 1.0
            assert middle[part]["median_mm"] < top98[part]["median_mm"]  # half way down is below the top
    assert "gt" in capsys.readouterr().out


def test_heights_refuses_what_it_cannot_measure(tmp_path, capsys):
    for argv, what in ((["--depth", "gt", "--out", "x.json"], "--sim"),
                       (["--sim", "--percentiles", "120", "--out", "x.json"], "--percentiles"),
                       (["--sim", "--scenes", "0", "--out", "x.json"], "--scenes")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and what in capsys.readouterr().err
