"""evaluate and bench commands on tiny inputs write the documented JSON."""

import json

import pytest

from pipeline import bench, evaluate
from pipeline.models.student import Student
from pipeline.weights import save


def test_evaluate_writes_schema(generated_d435, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate.main(["--data", str(generated_d435), "--models", "fill,raw,gt", "--limit", "3",
                          "--size", "160x120", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 3
    for model in ("fill", "raw", "gt"):
        for region in ("transparent", "all"):
            assert set(result["results"][model][region]) == {"rmse", "rel", "mae", "d105", "d110", "d125"}
    assert result["results"]["gt"]["transparent"]["rmse"] == 0.0
    assert result["results"]["fill"]["transparent"]["rmse"] < result["results"]["raw"]["transparent"]["rmse"]
    assert "| fill | transparent |" in capsys.readouterr().out


def test_evaluate_rejects_bad_input(tmp_path, capsys):
    assert evaluate.main(["--data", str(tmp_path), "--models", "raw"]) == 2
    assert "no frames found" in capsys.readouterr().err
    assert evaluate.main(["--data", str(tmp_path), "--models", "magic"]) == 2


def test_bench_writes_schema(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(bench, "SIZES", ((64, 48),))
    save(Student(widths=(8, 8, 16, 16), depth_widths=(4, 4, 8, 8)), tmp_path / "student.safetensors", {})
    out = tmp_path / "bench.json"
    assert bench.main(["--models", "student", "--weights-dir", str(tmp_path), "--runs", "3", "--json", str(out)]) == 0
    r = json.loads(out.read_text())["student"]
    assert r["params"] > 0 and r["64x48"]["torch_ms"] > 0 and r["64x48"]["onnx_ms"] > 0
