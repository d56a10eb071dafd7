"""Ship a trained network: copy a run's best weights into ``weights/`` with a complete card.

    distillgrasp ship --run DIR --name student|teacher --test DIR [DIR ...] [--half] [--out DIR]
                      [--sensor d435|l515]

The card records the architecture, the training command (from the run), the data with the generator
commands that made it (from each folder's ``generation.json``), the commit, the parameter count and the
test-split figures measured here by ``pipeline.evaluate``. ``--half`` stores float16 tensors (half the
size; loading converts back to float32). ``--sensor`` ships a variant for one camera family
(``NAME-l515.safetensors``, its card says ``"sensor": "l515"``): frames of that family are completed by it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

from pipeline.cli import HelpFormatter, list_argument, setup_logging
from pipeline.completion import NetworkCompleter
from pipeline.errors import DistillGraspError
from pipeline.evaluate import evaluate_frames, load_frames
from pipeline.types import SENSOR_FAMILIES
from pipeline.weights import WEIGHTS_DIR, WeightsError, load, save


def generator_command(folder: str | Path) -> str | None:
    """The ``sim.generate`` command that made ``folder`` (None for data not made by the generator)."""
    manifest = Path(folder) / "generation.json"
    if not manifest.is_file():
        return None
    m = json.loads(manifest.read_text())
    cmd = (f"python -m sim.generate --out {folder} --frames {m['frames']} --seed {m['seed']} "
           f"--sensor {m['sensor']} --size {m['size']}")
    if m.get("renderer", "fast") != "fast":
        cmd += f" --renderer {m['renderer']} --spp {m['spp']}" + (" --stereo" if m.get("stereo") else "")
    if m.get("views", 1) != 1:
        cmd += f" --views {m['views']}"
    if "max_tilt" in m:
        cmd += f" --max-tilt {m['max_tilt']:g}"
    if m.get("style", "tabletop") != "tabletop":
        cmd += f" --style {m['style']}"
    if m.get("room"):
        cmd += " --room"
    return cmd


def ship(run: Path, name: str, test: list[str], half: bool, size=(320, 240), out_dir: Path = WEIGHTS_DIR,
         sensor: str | None = None) -> dict:
    """Writes ``out_dir/NAME.safetensors``, or with ``sensor`` the variant ``NAME-SENSOR.safetensors`` that
    completes that camera family's frames (``pipeline.completion.make_completer``)."""
    if sensor is not None and sensor not in SENSOR_FAMILIES:
        raise ValueError(f"unknown sensor family {sensor!r}; choose one of {', '.join(SENSOR_FAMILIES)}")
    model, card = load(run / "best.safetensors")
    if card.get("arch") != name:
        raise WeightsError(f"{run / 'best.safetensors'} is a {card.get('arch')} network; shipping it as {name!r} "
                           "would put it where the other network is expected")
    stored, kept = as_float16(model) if half else (model, [])
    if half:
        model = copy.deepcopy(stored).float()  # what the stored tensors will load as
    completer = NetworkCompleter.from_model(model, card)
    frames = load_frames(test, None, size)
    result = evaluate_frames(frames, {name: completer}, progress=True)
    data = card.get("data", {})
    card.update({
        "data": {**data, "generator": {str(f): generator_command(f) for f in data.get("train", []) + (data.get("val")
                                                                                                      or [])}},
        "test": {"data": test, "generator": {str(f): generator_command(f) for f in test},
                 "frames": result["frames"], "size": f"{size[0]}x{size[1]}",
                 **{k: result["results"][name][k] for k in ("transparent", "all")}},
        "stored_as": "float16" if half else "float32",
    })
    if kept:
        card["stored_as_float32"] = kept
    if sensor is not None:
        card["sensor"] = sensor
    for key in ("arch", "config", "params", "commit"):
        card.pop(key, None)
    stem = f"{name}-{sensor}" if sensor else name
    path = save(stored, out_dir / f"{stem}.safetensors", card)
    return {"weights": str(path), "test": card["test"]}


FLOAT16_MAX = float(torch.finfo(torch.float16).max)


def as_float16(model: torch.nn.Module) -> tuple[torch.nn.Module, list[str]]:
    """A float16 copy of ``model``, except the tensors holding values beyond float16's range (a batch norm's
    running variance can reach 1e7), which stay float32 rather than become infinite; and their names."""
    state = model.state_dict()
    kept = sorted(k for k, v in state.items() if v.is_floating_point() and v.abs().max() > FLOAT16_MAX)
    values = {k: state[k].detach().clone() for k in kept}
    out = copy.deepcopy(model).half()
    for key in kept:
        owner, _, attr = key.rpartition(".")
        module = out.get_submodule(owner)
        if attr in module._buffers:
            module._buffers[attr] = values[key]
        else:
            getattr(module, attr).data = values[key]
    return out, kept


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp ship", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--run", metavar="DIR", required=True, help="training run folder holding best.safetensors")
    ap.add_argument("--name", required=True, choices=("student", "teacher"), help="the network's architecture")
    list_argument(ap, "--test", metavar="DIR", required=True, help="test split folders")
    ap.add_argument("--half", action="store_true", help="store float16 tensors")
    ap.add_argument("--out", metavar="DIR", default=str(WEIGHTS_DIR), help="folder to write NAME.safetensors to")
    ap.add_argument("--sensor", choices=SENSOR_FAMILIES, default=None,
                    help="ship as NAME-SENSOR.safetensors, the variant for that camera family's frames")
    args = ap.parse_args(argv)
    try:
        result = ship(Path(args.run), args.name, args.test, args.half, out_dir=Path(args.out),
                      sensor=args.sensor)
    except DistillGraspError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(main())
