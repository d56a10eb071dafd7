"""run.py --sim end to end on a small image."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_run_sim_writes_previews_and_summary(tmp_path):  # uses the oracle: no weights needed
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "run.py", "--sim", "--depth", "gt", "--trials", "1", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "scene 0:" in proc.stdout and "picks succeeded" in proc.stdout
    assert (out / "scene-0.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gt"]["trials"] == 1
    assert len((out / "attempts.jsonl").read_text().splitlines()) == 1


def test_run_reports_missing_weights_clearly(tmp_path, monkeypatch):
    import run
    from pipeline import completion

    monkeypatch.setattr(completion, "default_weights", lambda name: tmp_path / f"{name}.safetensors")
    assert run.main(["--sim", "--depth", "student", "--trials", "1", "--out", str(tmp_path / "o")]) == 2


def test_run_requires_a_mode():
    proc = subprocess.run([sys.executable, "run.py"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--sim" in proc.stderr
