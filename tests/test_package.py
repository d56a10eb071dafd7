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
                    "calibrate", "stats", "complete"):
        assert f"\n  {command} " in proc.stdout, command
    weights = venv / "share" / "distillgrasp" / "weights" / "student.safetensors"
    assert weights.is_file()
    # without its dependencies a subcommand says what is missing, in one line
    proc = subprocess.run([str(venv / "bin" / "distillgrasp"), "stats", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "error: distillgrasp stats needs the Python package 'numpy', which is not installed "
        "(install distillgrasp with its dependencies)"]


def test_the_weights_folder_is_found_installed_or_in_a_checkout(monkeypatch, tmp_path):
    from pipeline import weights

    assert weights.weights_dir() == ROOT / "weights"
    monkeypatch.setattr(weights, "__file__", str(tmp_path / "site-packages" / "pipeline" / "weights.py"))
    assert weights.weights_dir() == Path(sys.prefix) / "share" / "distillgrasp" / "weights"  # installed
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


# One flag vocabulary: --ip, --out DIR, named files (--json, --onnx, --image, --calibration), lists by spaces or
# commas, defaults in every help.

OWN_COMMANDS = ("generate", "preview", "evaluate", "bench", "export", "ship", "calibrate", "stats", "look",
                "heights")


@pytest.mark.parametrize("command", OWN_COMMANDS)
def test_every_help_names_its_command_and_shows_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0 and out.startswith(f"usage: distillgrasp {command} ")
    assert "(default: " in out and "(default: None)" not in out and "(default: False)" not in out


@pytest.mark.parametrize("argv, old", [
    (["calibrate", "--ip", "1.2.3.4", "--calibration", "c.json", "--robot-ip", "1.2.3.4"], "--robot-ip"),
    (["calibrate", "--ip", "1.2.3.4", "--calibration", "c.json", "--out", "c.json"], "--out"),
    (["preview", "--image", "p.png", "--out", "p.png"], "--out"),
    (["ship", "--run", "r", "--name", "student", "--test", "t", "--out-dir", "w"], "--out-dir"),
])
def test_the_old_flags_are_refused(argv, old, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and old in capsys.readouterr().err


def test_the_help_formatter_and_list_options():
    import argparse

    from pipeline.cli import HelpFormatter, list_argument

    ap = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    list_argument(ap, "--models", default="student,teacher", help="names")
    ap.add_argument("--size", default="320x240")  # no help text: the default still shows
    ap.add_argument("--json", metavar="FILE", help="output")  # default None: nothing added
    ap.add_argument("--quiet", action="store_true", help="hush")
    ap.add_argument("--out", required=True, help="folder")
    ap.add_argument("--centre", type=float, nargs=3, default=(0.7, 0.0, 0.35), help="centre")
    text = " ".join(ap.format_help().split())
    assert "names (default: student,teacher)" in text and "--size SIZE (default: 320x240)" in text
    assert "centre (default: 0.7 0.0 0.35)" in text
    assert "output --quiet hush --out OUT folder --centre" in text  # none for None, switches, required
    assert ap.parse_args(["--out", "o", "--models", "a,b", "c"]).models == ["a", "b", "c"]
    assert ap.parse_args(["--out", "o", "--models", "a", "b,c"]).models == ["a", "b", "c"]
    assert ap.parse_args(["--out", "o"]).models == ["student", "teacher"]


def test_setup_logging_writes_notes_and_warnings_to_stderr(capsys):
    import logging

    from pipeline.cli import setup_logging

    setup_logging()
    setup_logging()  # twice: still one line per record
    logging.getLogger("sim.generate").info("a progress note")
    logging.getLogger("pipeline.evaluate").warning("a warning")
    logging.getLogger("pipeline.evaluate").debug("a debug line")
    logging.getLogger("some.library").info("someone else's note")
    assert capsys.readouterr().err.splitlines() == ["a progress note", "warning: a warning"]
    setup_logging(verbose=True)
    logging.getLogger("pipeline.evaluate").debug("a debug line")
    assert capsys.readouterr().err.splitlines() == ["debug: a debug line"]
    setup_logging()


def test_preview_writes_its_image_and_stats_its_json(tmp_path, capsys):
    import json

    from sim.generate import GenerateConfig, generate

    image = tmp_path / "pictures" / "preview.png"
    assert main(["preview", "--size", "96x72", "--image", str(image)]) == 0
    assert image.is_file() and str(image) in capsys.readouterr().out
    generate(tmp_path / "data", 2, GenerateConfig(seed=1, width=96, height=72), progress=False)
    assert main(["stats", str(tmp_path / "data"), "--json", str(tmp_path / "stats.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "stats.json").read_text())["frames"] == 2
