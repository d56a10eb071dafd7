"""The package: a wheel builds, installs into a fresh environment and its command lists every subcommand."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from distillgrasp.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of what the package is made of (a build leaves files behind in its source)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("pipeline", "grasping", "sim", "hardware", "distillgrasp", "weights"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out)], capture_output=True, text=True, timeout=300, cwd=out)
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("distillgrasp-*.whl")
    return path


def test_the_wheel_holds_the_packages_and_the_weights(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("pipeline", "grasping", "sim", "hardware", "distillgrasp"):
        assert f"{package}/__init__.py" in names
    assert not any(n.startswith("tests/") for n in names)
    data = [n for n in names if "/data/share/distillgrasp/weights/" in n]
    for name in ("student.safetensors", "student.json", "student-l515.safetensors", "teacher.safetensors"):
        assert any(n.endswith("/" + name) for n in data), name
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "distillgrasp = distillgrasp.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_wheel_installs_and_its_command_lists_the_subcommands(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # no pip in the fresh environment: this one installs the wheel into it, without dependencies
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                           "--no-deps", str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([str(venv / "bin" / "distillgrasp"), "--help"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "generate", "preview", "train", "evaluate", "bench", "export", "ship", "trials",
                    "calibrate", "stats"):
        assert f"\n  {command} " in proc.stdout, command
    weights = venv / "share" / "distillgrasp" / "weights" / "student.safetensors"
    assert weights.is_file()


def test_the_weights_folder_is_found_installed_or_in_a_checkout(monkeypatch, tmp_path):
    from pipeline import weights

    assert weights.weights_dir() == ROOT / "weights"
    monkeypatch.setenv("DISTILLGRASP_WEIGHTS", str(tmp_path))
    assert weights.weights_dir() == tmp_path


def test_subcommands_dispatch_and_unknown_ones_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--help"])
    assert exit_.value.code == 0 and "distillgrasp generate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["fly"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "unknown command 'fly'" in err and len(err.strip().splitlines()) == 2
    assert set(COMMANDS) >= {"run", "generate", "preview", "train", "evaluate", "bench", "export", "ship",
                             "trials", "calibrate", "stats"}


def test_python_dash_m_and_run_py_still_work():
    for cmd in ([sys.executable, "-m", "distillgrasp", "--version"], [sys.executable, "run.py", "--help"],
                [sys.executable, "-m", "grasping.trials", "--help"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 0, (cmd, proc.stderr)
