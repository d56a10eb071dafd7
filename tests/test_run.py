"""run.py --sim end to end on a small image."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_run_sim_writes_previews_and_summary(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "run.py", "--sim", "--frames", "1", "--size", "160x120", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "scene 0:" in proc.stdout and "no depth" in proc.stdout
    assert (out / "sim-0-000.png").is_file()
    summary = json.loads((out / "sim-summary.json").read_text())
    assert summary["frames"] == 1 and 0 <= summary["missing"] <= 1


def test_run_requires_a_mode():
    proc = subprocess.run([sys.executable, "run.py"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--sim" in proc.stderr
