"""The cell config file: good files load, flags override them, every bad value is one line naming the key."""

import pytest

from distillgrasp.config import CellConfigError, load_cell_config

GOOD = """\
robot:
  ip: 192.168.1.10
camera:
  serial: "f1230456"
  width: 848
  height: 480
calibration: calib.json
workspace:
  lo: [0.4, -0.4, 0.005]
  hi: [1.1, 0.4, 0.6]
gripper:
  force: 60
place: [0.5, -0.35, 0.25]
"""


def test_a_good_file_loads_and_flags_override_it(tmp_path):
    path = tmp_path / "cell.yaml"
    path.write_text(GOOD)
    cfg = load_cell_config(path)
    assert cfg.ip == "192.168.1.10" and cfg.serial == "f1230456" and (cfg.width, cfg.height, cfg.fps) == (848, 480, 30)
    assert cfg.calibration == str(tmp_path / "calib.json")  # relative to the file
    assert cfg.workspace.lo == (0.4, -0.4, 0.005) and cfg.pick.grip_force == 60.0
    assert cfg.pick.place_xy == (0.5, -0.35) and cfg.pick.place_z == 0.25
    over = cfg.with_overrides(ip="10.0.0.2", serial=None, calibration=None)
    assert over.ip == "10.0.0.2" and over.serial == "f1230456" and over.calibration == cfg.calibration


@pytest.mark.parametrize("text, key", [
    ("robot: {ip: ''}", "robot.ip"),
    ("robot: {address: 1.2.3.4}", "robot.address"),
    ("camera: {width: 0}", "camera.width"),
    ("camera: {fps: fast}", "camera.fps"),
    ("workspace: {lo: [0, 0]}", "workspace.lo"),
    ("workspace: {hi: [1, 1, .nan]}", "workspace.hi"),
    ("workspace: {lo: [1.2, -0.5, 0], hi: [1.0, 0.5, 0.7]}", "workspace"),
    ("gripper: {force: 500}", "gripper.force"),
    ("place: [5, 0, 0.2]", "place"),
    ("placement: [0.5, 0, 0.2]", "placement"),
    ("robot: 1.2.3.4", "robot"),
])
def test_bad_values_name_the_key(tmp_path, text, key):
    path = tmp_path / "cell.yaml"
    path.write_text(text + "\n")
    with pytest.raises(CellConfigError) as err:
        load_cell_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}:") and "\n" not in message


def test_unreadable_files(tmp_path):
    with pytest.raises(CellConfigError, match="not found"):
        load_cell_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("robot: [unclosed\n")
    with pytest.raises(CellConfigError, match="not valid YAML"):
        load_cell_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(CellConfigError, match="expected a mapping"):
        load_cell_config(tmp_path / "list.yaml")


def test_run_reads_the_config_and_reports_bad_keys_in_one_line(tmp_path, capsys):
    from distillgrasp import run

    path = tmp_path / "cell.yaml"
    path.write_text("gripper: {force: 5}\n")
    assert run.main(["--robot", "ur10e", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gripper.force" in err[0]
    path.write_text(GOOD)
    args = run.parse_args(["--robot", "ur10e", "--config", str(path), "--ip", "10.1.1.1"])
    assert args.ip == "10.1.1.1" and args.calibration == str(tmp_path / "calib.json")
