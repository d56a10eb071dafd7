"""The clutter-removal protocol: a round's stop rules, its summary, resume of an interrupted run, one protocol
per folder, the clutter scenes, and one real round through the command."""

import json
from dataclasses import dataclass

import numpy as np
import pytest

from grasping import clutter
from grasping.cell import Cell
from grasping.clutter import RoundRules, play_round, run_clutter
from grasping.report import clutter_markdown_table, plot_clutter, summarise_clutter, wilson_interval

PROVENANCE = {"sensor": "d435", "camera": "d435", "renderer": "fast"}


@dataclass
class FakeAttempt:
    success: bool
    reason: str
    stop_active: bool = False
    grasp: object = None

    def record(self) -> dict:
        return {"success": self.success, "reason": self.reason, "perception_ms": 5.0, "sensor": "d435",
                "renderer": "fast", "camera": "d435"}


class FakeCell(Cell):
    """No physics: ``objects`` on the table; each pick's outcome is the next of ``outcomes`` (then failures);
    at the picks listed in ``knock`` one object is knocked off the table."""

    sensor, renderer = "d435", "fast"

    def __init__(self, seed: int = 0, objects: int = 3, outcomes=(), knock=(), stop_at=None):
        self.seed, self.left, self.outcomes = seed, objects, list(outcomes)
        self.knock, self.stop_at, self.picks, self.held = set(knock), stop_at, 0, False

    def capture(self):
        raise AssertionError("the fake pick never captures")

    def verify(self):
        return self.held, "ok" if self.held else "empty gripper"

    def describe(self) -> dict:
        return {"camera": "d435", "objects": ["cup"] * self.left}

    def objects_left(self) -> int:
        return self.left

    def remove_picked(self) -> dict:
        removed, gone = ("cup" if self.held else None), []
        self.left -= bool(self.held)
        if self.picks - 1 in self.knock and self.left:
            self.left -= 1
            gone = ["tumbler"]
        self.held = False
        return {"removed": removed, "gone": gone}


def fake_pick(cell: FakeCell) -> FakeAttempt:
    ok = cell.outcomes.pop(0) if cell.outcomes else False
    cell.held, cell.picks = ok, cell.picks + 1
    return FakeAttempt(ok, "ok" if ok else "empty gripper", stop_active=cell.picks == cell.stop_at)


def test_a_round_stops_when_the_table_is_empty():
    picks, end = play_round(FakeCell(objects=3, outcomes=[True, False, True, True]), fake_pick)
    assert [p["objects_left"] for p in picks] == [3, 2, 2, 1] and [p["pick"] for p in picks] == [0, 1, 2, 3]
    assert [p["removed"] for p in picks] == ["cup", None, "cup", "cup"] and picks[-1]["objects_after"] == 0
    assert end == {"objects_placed": 3, "objects_removed": 3, "objects_gone": 0, "objects_left": 0, "picks": 4,
                   "successes": 3, "end": "table empty"}


def test_a_round_stops_after_two_failures_in_a_row():
    picks, end = play_round(FakeCell(objects=5, outcomes=[True, False, True, False, False, True]), fake_pick)
    assert len(picks) == 5 and end["end"] == "2 failures in a row"
    assert (end["objects_removed"], end["objects_left"]) == (2, 3)


def test_a_round_stops_after_ten_attempts():
    picks, end = play_round(FakeCell(objects=20, outcomes=[False, True] * 10), fake_pick)
    assert len(picks) == 10 and end["end"] == "10 attempts" and end["successes"] == 5 and end["objects_left"] == 15
    _, end = play_round(FakeCell(objects=20, outcomes=[True] * 10), fake_pick, RoundRules(max_picks=4))
    assert end["picks"] == 4 and end["end"] == "4 attempts"


def test_an_object_knocked_off_is_gone_not_cleared():
    # the second pick fails and knocks the last object off the table: the table is empty, one object cleared
    picks, end = play_round(FakeCell(objects=2, outcomes=[True, False], knock=[1]), fake_pick)
    assert picks[1]["gone"] == ["tumbler"] and picks[1]["objects_after"] == 0
    assert end["end"] == "table empty" and (end["objects_removed"], end["objects_gone"]) == (1, 1)


def test_a_protective_stop_ends_the_round():
    _, end = play_round(FakeCell(objects=5, outcomes=[True] * 5, stop_at=2), fake_pick)
    assert end["picks"] == 2 and end["end"] == "stop"


def _pick(depth, seed, n, ok):
    return {"protocol": "clutter", "depth": depth, "scene_seed": seed, "round": seed, "pick": n, "success": ok,
            "reason": "ok" if ok else "empty gripper", "perception_ms": 10.0 + n}


def _end(depth, seed, placed, removed, end):
    return {"protocol": "clutter", "depth": depth, "scene_seed": seed, "round": seed, "round_end": True,
            "objects_placed": placed, "objects_removed": removed, "objects_gone": 0, "end": end}


def test_clutter_summary_arithmetic(tmp_path):
    recs = [_pick("raw", 0, n, True) for n in range(5)] + [_end("raw", 0, 5, 5, "table empty")]
    recs += [_pick("raw", 1, 0, True), _pick("raw", 1, 1, False), _pick("raw", 1, 2, False),
             _end("raw", 1, 5, 1, "2 failures in a row")]
    recs += [_pick("raw", 2, 0, False), _pick("raw", 2, 1, True)]  # a round with no end line does not count
    recs += [_pick("gt", 0, 0, True), _end("gt", 0, 1, 1, "table empty")]
    s = summarise_clutter(recs)
    assert list(s) == ["raw", "gt"]
    raw = s["raw"]
    assert (raw["rounds"], raw["attempts"], raw["successes"], raw["rate"]) == (2, 8, 6, 0.75)
    assert raw["rate_ci95"] == list(wilson_interval(6, 8))
    assert (raw["objects"], raw["removed"], raw["cleared"]) == (10, 6, 0.6)
    assert raw["cleared_ci95"] == list(wilson_interval(6, 10))
    assert raw["rounds_cleared"] == 1 and raw["failures"] == {"empty gripper": 2}
    assert raw["ends"] == {"table empty": 1, "2 failures in a row": 1}
    assert s["gt"]["cleared_ci95"] == [wilson_interval(1, 1)[0], 1.0]
    lo, hi = wilson_interval(6, 8)
    assert (f"| raw | 2 | 6/8 | 75% | {lo:.0%}-{hi:.0%} | 6/10 (60%) | 31%-83% | 1/2 | 2 empty gripper |"
            in clutter_markdown_table(s))
    plot_clutter(s, tmp_path / "success.png")
    assert (tmp_path / "success.png").stat().st_size > 1000


def _fake_run(monkeypatch, out, interrupt_at=None, rounds=3, **kw):
    """``rounds`` rounds of 3 objects, every pick a success, on fake cells; the ``interrupt_at``-th pick of the
    run stops it (as a Ctrl-C would). Returns the summary and how many picks were made."""
    made = []

    def attempt(cell, completer, detector, failed=()):
        made.append(1)
        if len(made) == interrupt_at:
            raise KeyboardInterrupt
        return fake_pick(cell)

    monkeypatch.setattr(clutter, "attempt", attempt)
    summary = run_clutter(lambda seed: FakeCell(seed, objects=3, outcomes=[True] * 3), ["gt"], rounds, 0, out,
                          progress=False, provenance=PROVENANCE, **kw)
    return summary, len(made)


def test_a_pick_avoids_the_grasps_that_failed_since_the_last_success(tmp_path, monkeypatch):
    seen = []

    def attempt(cell, completer, detector, failed=()):
        seen.append(list(failed))
        ok = cell.outcomes.pop(0)
        cell.held, cell.picks = ok, cell.picks + 1
        return FakeAttempt(ok, "ok" if ok else "empty gripper", grasp=f"grasp {cell.picks}")

    monkeypatch.setattr(clutter, "attempt", attempt)
    run_clutter(lambda seed: FakeCell(seed, objects=3, outcomes=[False, True, False, False]), ["gt"], 1, 0,
                tmp_path, progress=False, provenance=PROVENANCE)
    assert seen == [[], ["grasp 1"], [], ["grasp 3"]]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_an_interrupted_round_is_set_aside_and_played_again(tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        _fake_run(monkeypatch, tmp_path, interrupt_at=6)  # round 0 done (3 picks), round 1 stopped at its 3rd
    log = _lines(tmp_path / "attempts.jsonl")
    assert [(r["round"], r.get("pick"), bool(r.get("round_end"))) for r in log] == \
        [(0, 0, False), (0, 1, False), (0, 2, False), (0, None, True), (1, 0, False), (1, 1, False)]
    summary, made = _fake_run(monkeypatch, tmp_path)
    assert made == 6  # rounds 1 and 2 from their start; round 0 is not played again
    aside = _lines(tmp_path / "interrupted.jsonl")
    assert [(r["round"], r["pick"]) for r in aside] == [(1, 0), (1, 1)]
    log = _lines(tmp_path / "attempts.jsonl")
    assert [r["round"] for r in log if r.get("round_end")] == [0, 1, 2]
    assert [(r["round"], r["pick"]) for r in log if not r.get("round_end")] == [(n, k) for n in range(3) for k in range(3)]
    assert all(r["protocol"] == "clutter" and r["scene"] == "pile" and r["scene_objects"] == 5 for r in log)
    s = summary["gt"]
    assert (s["rounds"], s["attempts"], s["objects"], s["removed"], s["cleared"]) == (3, 9, 9, 9, 1.0)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    _, made = _fake_run(monkeypatch, tmp_path)  # all logged: nothing to do
    assert made == 0 and len(_lines(tmp_path / "attempts.jsonl")) == len(log)


def test_one_protocol_scene_and_object_count_per_folder(tmp_path, monkeypatch, capsys):
    from distillgrasp.cells import sim_cell_factory
    from distillgrasp.trials import main
    from grasping.trials import run_trials

    single = tmp_path / "single"
    single.mkdir()
    (single / "attempts.jsonl").write_text(json.dumps({"scene_seed": 0, "depth": "gt", "success": True,
                                                       "reason": "ok"}) + "\n")  # an old single-pick log
    with pytest.raises(ValueError, match="holds trials with the single protocol; use another --out for clutter"):
        _fake_run(monkeypatch, single)
    assert main(["--sim", "--protocol", "clutter", "--rounds", "1", "--depth", "gt", "--out", str(single)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "single protocol" in err and "clutter" in err

    _fake_run(monkeypatch, tmp_path / "c", rounds=1)
    with pytest.raises(ValueError, match="holds trials with the clutter protocol; use another --out for single"):
        run_trials(sim_cell_factory(), ["gt"], 1, 0, tmp_path / "c", progress=False, provenance=PROVENANCE)
    with pytest.raises(ValueError, match="holds clutter rounds of the pile scene; use another --out for the packed"):
        _fake_run(monkeypatch, tmp_path / "c", rounds=1, scene="packed")
    with pytest.raises(ValueError, match="rounds of the 5 objects; use another --out for the 3 objects"):
        _fake_run(monkeypatch, tmp_path / "c", rounds=1, objects=3)
    with pytest.raises(SystemExit):  # the clutter options are refused without --protocol clutter
        main(["--sim", "--rounds", "1", "--depth", "gt", "--out", str(tmp_path / "x")])
    capsys.readouterr()
    with pytest.raises(SystemExit):  # a detector setting that does not exist, refused in one line before any work
        main(["--sim", "--depth", "gt", "--detector", "palm=0.03", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--detector" in err and "'palm' is not a detector setting" in err and not (tmp_path / "x").exists()


def test_clutter_scenes():
    from scipy.spatial.transform import Rotation

    from sim.world import SimWorld, WorldConfig

    for layout in ("packed", "pile"):
        with SimWorld(0, WorldConfig().with_layout(layout, 5)) as world:
            objs = world.scene.objects
            assert 1 <= world.objects_left() == len(objs) <= 5 and not world.config.glass_is_target
            assert sum(o.transparent for o in objs) >= 1
            if layout == "packed":  # upright, each a few centimetres at most from a neighbour
                for o in objs:
                    (x, y, _), q = world.scene.pose(o.body)
                    assert Rotation.from_quat(q).apply([0, 0, 1])[2] > 0.98
                    gaps = [np.hypot(x - world.scene.pose(b.body)[0][0], y - world.scene.pose(b.body)[0][1])
                            - o.model.max_radius - b.model.max_radius for b in objs if b is not o]
                    assert min(gaps) < 0.03
    # the single-pick scenes are built as before (the layout only applies to clutter worlds)
    with SimWorld(5) as a, SimWorld(5, WorldConfig().with_layout("scatter")) as b:
        assert [a.scene.pose(o.body)[0] for o in a.scene.objects] == [b.scene.pose(o.body)[0] for o in b.scene.objects]


def test_one_real_round_through_the_command(tmp_path, capsys):
    from distillgrasp.trials import main

    args = ["--sim", "--protocol", "clutter", "--scene", "pile", "--objects", "3", "--rounds", "1", "--seed", "0",
            "--depth", "gt", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "| gt | 1 |" in capsys.readouterr().out
    log = _lines(tmp_path / "attempts.jsonl")
    *picks, end = log
    assert end["round_end"] and end["scene_seed"] == 0 and 1 <= end["objects_placed"] <= 3 and picks
    assert end["picks"] == len(picks) and end["end"] in ("table empty", "2 failures in a row", "10 attempts")
    for p in picks:
        assert p["protocol"] == "clutter" and p["scene"] == "pile" and p["depth"] == "gt" and p["round"] == 0
        assert (p["removed"] is not None) == p["success"]
        assert p["objects_after"] == p["objects_left"] - p["success"] - len(p["gone"])
    summary = json.loads((tmp_path / "summary.json").read_text())["gt"]
    assert summary["attempts"] == len(picks) and summary["objects"] == end["objects_placed"]
    assert (tmp_path / "success.png").is_file()
    assert main(args) == 0 and len(_lines(tmp_path / "attempts.jsonl")) == len(log)  # resumed: nothing to redo
