"""Generate a training or test set of simulated glass scenes in the ClearGrasp real-data layout.

    python -m sim.generate --out DIR --frames N --seed S [--sensor d435|l515] [--size WxH] [--workers K]

Frame i of seed S is a pure function of (S, i, sensor, size): the same bytes every time, whichever worker
makes it. Re-running skips frames already complete, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as p
from tqdm import tqdm

from pipeline.cli import git_commit, parse_size, write_json
from pipeline.config import DEFAULT_WORKSPACE
from pipeline.data.io import write_exr_depth, write_jpg, write_png
from pipeline.data.readers import write_intrinsics_yaml
from pipeline.types import RGBDFrame
from sim.camera import SimCamera, SimCameraConfig
from sim.camera_model import sample_camera_pose
from sim.scene import SceneConfig, TabletopScene
from sim.sensor import SENSORS

SUFFIXES = ("-transparent-rgb-img", "-transparent-depth-img.exr", "-opaque-depth-img.exr", "-mask.png")
MANIFEST = "generation.json"


@dataclass(frozen=True)
class GenerateConfig:
    seed: int
    sensor: str = "d435"
    width: int = 320
    height: int = 240
    rgb_format: str = "png"

    def camera(self) -> SimCameraConfig:
        return SimCameraConfig(width=self.width, height=self.height, sensor=self.sensor)


_CLIENT: int | None = None


def _client() -> int:
    """One DIRECT PyBullet client per process, reset for every frame."""
    global _CLIENT
    if _CLIENT is None or not p.isConnected(physicsClientId=_CLIENT):
        _CLIENT = p.connect(p.DIRECT)
    return _CLIENT


def simulate_frame(cfg: GenerateConfig, index: int, client: int | None = None,
                   scene_config: SceneConfig = SceneConfig()) -> tuple[RGBDFrame, SimCamera]:
    """Build, settle and capture scene ``index`` of ``cfg.seed``. Returns the frame and its camera."""
    client = _client() if client is None else client
    rng = np.random.default_rng([cfg.seed, index, SENSORS.index(cfg.sensor)])
    p.resetSimulation(physicsClientId=client)
    p.setGravity(0, 0, -9.81, physicsClientId=client)
    p.setPhysicsEngineParameter(numSolverIterations=50, deterministicOverlappingPairs=1, physicsClientId=client)
    scene = TabletopScene(client, DEFAULT_WORKSPACE)
    scene.populate(rng, scene_config)
    T_base_cam = sample_camera_pose(rng, DEFAULT_WORKSPACE)
    camera = SimCamera(scene, T_base_cam, cfg.camera(), rng=rng)
    with camera:
        frame = camera.read()
    return frame, camera


def frame_paths(out: Path, index: int, rgb_format: str) -> list[Path]:
    stem = out / f"{index:09d}"
    return [Path(f"{stem}{SUFFIXES[0]}.{rgb_format}")] + [Path(f"{stem}{s}") for s in SUFFIXES[1:]]


def _write_atomic(path: Path, writer, data) -> None:
    tmp = path.with_name(".tmp-" + path.name)
    writer(tmp, data)
    os.replace(tmp, path)


def write_frame(out: Path, index: int, frame: RGBDFrame, rgb_format: str) -> None:
    rgb_path, raw_path, gt_path, mask_path = frame_paths(out, index, rgb_format)
    _write_atomic(rgb_path, write_png if rgb_format == "png" else write_jpg, frame.rgb)
    _write_atomic(raw_path, write_exr_depth, frame.depth)
    _write_atomic(gt_path, write_exr_depth, frame.depth_gt)
    _write_atomic(mask_path, write_png, frame.mask.astype(np.uint8) * 255)


def _work(args) -> tuple[int, float]:
    cfg, out, index = args
    t0 = time.perf_counter()
    frame, _ = simulate_frame(cfg, index)
    write_frame(out, index, frame, cfg.rgb_format)
    return index, time.perf_counter() - t0


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def generate(out: str | Path, frames: int, cfg: GenerateConfig, workers: int = 1, progress: bool = True) -> dict:
    """Write frames 0..frames-1 into ``out`` (skipping complete ones). Returns timing figures."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"seed": cfg.seed, "sensor": cfg.sensor, "size": f"{cfg.width}x{cfg.height}",
                "rgb_format": cfg.rgb_format}
    mpath = out / MANIFEST
    old = json.loads(mpath.read_text()) if mpath.is_file() else {}
    if old:
        old_settings = {k: old.get(k) for k in manifest}
        if old_settings != manifest:
            raise ValueError(f"{out} holds frames made with {old_settings}; refusing to mix in {manifest} "
                             "(use another --out)")
    K = cfg.camera().intrinsics
    write_intrinsics_yaml(out / "camera_intrinsics.yaml", K, camera_name=f"sim-{cfg.sensor}")
    todo = [i for i in range(frames) if not all(f.is_file() for f in frame_paths(out, i, cfg.rgb_format))]
    commit = old.get("commit") if old else git_commit()  # the code that made the first frames
    mpath.write_text(json.dumps({**manifest, "frames": max(frames, old.get("frames", 0)), "commit": commit},
                                indent=2) + "\n")
    t0 = time.perf_counter()
    times = []
    jobs = [(cfg, out, i) for i in todo]
    with tqdm(total=frames, initial=frames - len(todo), desc=f"generate {out.name}", unit="frame",
              disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                times.append(_work(job)[1])
                bar.update(1)
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for _, dt in pool.imap_unordered(_work, jobs, chunksize=1):
                    times.append(dt)
                    bar.update(1)
    wall = time.perf_counter() - t0
    return {"frames_written": len(todo), "frames_skipped": frames - len(todo), "wall_s": wall,
            "frames_per_s": len(todo) / wall if todo and wall > 0 else None,
            "median_s_per_frame_per_worker": float(np.median(times)) if times else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.generate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (created; resumed if it exists)")
    ap.add_argument("--frames", type=int, required=True, help="number of frames")
    ap.add_argument("--seed", type=int, required=True, help="dataset seed")
    ap.add_argument("--sensor", choices=SENSORS, default="d435", help="sensor model (default d435)")
    ap.add_argument("--size", default="320x240", help="image size WxH (default 320x240)")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    ap.add_argument("--rgb-format", choices=("png", "jpg"), default="png", help="colour image format")
    ap.add_argument("--json", dest="json_out", help="write timing figures to this JSON file")
    args = ap.parse_args(argv)
    try:
        width, height = parse_size(args.size)
        if args.frames < 1:
            raise ValueError(f"--frames must be at least 1, got {args.frames}")
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        if args.seed < 0:
            raise ValueError(f"--seed must be non-negative, got {args.seed}")
        cfg = GenerateConfig(seed=args.seed, sensor=args.sensor, width=width, height=height,
                             rgb_format=args.rgb_format)
        result = generate(args.out, args.frames, cfg, workers=args.workers)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result.update({"size": args.size, "sensor": args.sensor, "workers": args.workers})
    fps = result["frames_per_s"]
    print(f"wrote {result['frames_written']} frames, skipped {result['frames_skipped']} already complete"
          + (f"; {fps:.2f} frames/s" if fps else ""))
    if args.json_out:
        write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
