"""Generate a training or test set of simulated glass scenes in the ClearGrasp real-data layout.

    distillgrasp generate --out DIR --frames N --seed S [--sensor d435|l515|d415|d455|d405] [--size WxH] [--workers K]
                          [--renderer fast|mitsuba] [--spp N] [--stereo] [--views V] [--max-tilt DEG]
                          [--style tabletop|lab|pile|packed] [--room] [--rgb-format png|jpg] [--json FILE]

``--renderer fast`` composites two TinyRenderer passes (about 0.1 s a frame); ``--renderer mitsuba`` path
traces the glass (see ``sim.photoreal``). ``--views V`` photographs every settled scene from V camera poses
(frames i*V .. i*V+V-1 share scene i), which spreads the cost of building and settling a scene. ``--stereo``
(mitsuba only) takes the raw depth from semi-global matching of a rendered stereo pair instead of the sensor
model. ``--style lab`` makes scenes like the real ClearPose captures: 3-10 pieces of mostly laboratory
glassware (funnels, Erlenmeyer flasks, beakers, tubes; half of them dropped lying down) spread over a wider
area, seen from 0.6-1.3 m, and with ``--renderer mitsuba`` a bright indoor room, wood, laminate or stone
table tops, grey floors, painted walls and more frosted glass. ``--room`` puts the default style's household
glass in that room (as the simulated grasping cell photographed by the path tracer sees it). ``--style pile``
and ``--style packed`` build the clutter-removal trials' scenes (``grasping.clutter``): 3-7 objects, a fifth of
them opaque, dropped one onto another in a heap or stood upright 5-20 mm apart.

Frame i of seed S is a pure function of (S, i and the settings above): the same bytes every time, whichever
worker makes it. Re-running skips frames already complete, so an interrupted run resumes where it stopped.
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

from pipeline.cli import HelpFormatter, git_commit, parse_size, setup_logging, write_json
from pipeline.config import DEFAULT_WORKSPACE, WorkspaceConfig
from pipeline.data.io import write_exr_depth, write_jpg, write_png
from pipeline.data.readers import write_intrinsics_yaml
from pipeline.types import RENDERERS, SIM_SENSORS, RGBDFrame
from sim.camera import SimCamera, SimCameraConfig
from sim.camera_model import CameraPoseConfig, sample_camera_pose
from sim.glassware import GLASS_KINDS, LAB_KINDS
from sim.scene import CLUTTER_LAYOUTS, SceneConfig, TabletopScene

DEFAULT_MAX_TILT = CameraPoseConfig().tilt_deg[1]
SUFFIXES = ("-transparent-rgb-img", "-transparent-depth-img.exr", "-opaque-depth-img.exr", "-mask.png")
MANIFEST = "generation.json"
STYLES = ("tabletop", "lab", *CLUTTER_LAYOUTS)
CLUTTER_OBJECTS = (3, 7)  # the pile and packed styles: this many objects (both included)
LAB_SCENE = SceneConfig(min_glass=3, max_glass=10, min_opaque=0, max_opaque=3, upright_prob=0.5,
                        glass_kinds=LAB_KINDS * 2 + GLASS_KINDS)
LAB_WORKSPACE = WorkspaceConfig(object_half_size=(0.25, 0.3))
LAB_DISTANCE = (0.6, 1.3)  # metres from the scene centre


@dataclass(frozen=True)
class GenerateConfig:
    seed: int
    sensor: str = "d435"
    width: int = 320
    height: int = 240
    rgb_format: str = "png"
    renderer: str = "fast"
    spp: int = 8  # mitsuba samples per pixel
    stereo: bool = False  # mitsuba: raw depth from a rendered stereo pair
    views: int = 1  # camera poses per settled scene
    max_tilt: float = DEFAULT_MAX_TILT  # degrees from looking straight down
    style: str = "tabletop"  # or "lab" (see the module docstring)
    room: bool | None = None  # mitsuba: the bright room (None: with the lab style only)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r}; choose one of {', '.join(STYLES)}")
        if self.room is not None and self.renderer != "mitsuba":
            raise ValueError("--room needs --renderer mitsuba (the fast renderer draws no room)")
        if self.stereo and self.renderer != "mitsuba":
            raise ValueError("--stereo needs --renderer mitsuba (the fast renderer has no second view)")
        self.camera()  # validates renderer, sensor, size and spp
        self.camera_pose()  # validates the tilt range
        if self.views < 1:
            raise ValueError(f"views must be at least 1, got {self.views}")

    def camera(self) -> SimCameraConfig:
        return SimCameraConfig(width=self.width, height=self.height, sensor=self.sensor, renderer=self.renderer,
                               spp=self.spp, room=self.in_room, stereo=self.stereo)

    @property
    def in_room(self) -> bool:
        """Whether the path tracer draws the bright room (``room``, else with the lab style); never the fast
        renderer."""
        return self.renderer == "mitsuba" and (self.style == "lab" if self.room is None else self.room)

    def camera_pose(self) -> CameraPoseConfig:
        distance = LAB_DISTANCE if self.style == "lab" else CameraPoseConfig().distance
        return CameraPoseConfig(distance=distance, tilt_deg=(0.0, self.max_tilt))

    def scene(self) -> SceneConfig:
        return LAB_SCENE if self.style == "lab" else SceneConfig()

    def workspace(self) -> WorkspaceConfig:
        return LAB_WORKSPACE if self.style == "lab" else DEFAULT_WORKSPACE

    def manifest(self) -> dict:
        """The settings that decide a frame's content (a folder never mixes two of them)."""
        m = {"seed": self.seed, "sensor": self.sensor, "size": f"{self.width}x{self.height}",
             "rgb_format": self.rgb_format}
        if self.renderer != "fast" or self.views != 1:  # older folders hold fast single-view frames
            m.update(renderer=self.renderer, views=self.views)
        if self.renderer == "mitsuba":
            m.update(spp=self.spp, stereo=self.stereo)
            if self.room is not None:
                m.update(room=self.room)
        if self.max_tilt != DEFAULT_MAX_TILT:
            m.update(max_tilt=self.max_tilt)
        if self.style != "tabletop":
            m.update(style=self.style)
        return m


_CLIENT: int | None = None


def _client() -> int:
    """One DIRECT PyBullet client per process, reset for every frame."""
    global _CLIENT
    if _CLIENT is None or not p.isConnected(physicsClientId=_CLIENT):
        _CLIENT = p.connect(p.DIRECT)
    return _CLIENT


def simulate_views(cfg: GenerateConfig, scene_index: int, views: list[int], client: int | None = None,
                   scene_config: SceneConfig | None = None):
    """Build and settle scene ``scene_index`` of ``cfg.seed`` once, then yield ``(view, frame, camera)`` for
    each requested view (0 <= view < cfg.views). ``camera`` is the fast renderer's ``SimCamera`` or None.
    ``scene_config`` replaces the style's scene settings."""
    client = _client() if client is None else client
    workspace = cfg.workspace()
    rng = np.random.default_rng([cfg.seed, scene_index, SIM_SENSORS.index(cfg.sensor)])
    p.resetSimulation(physicsClientId=client)
    p.setGravity(0, 0, -9.81, physicsClientId=client)
    p.setPhysicsEngineParameter(numSolverIterations=50, deterministicOverlappingPairs=1, physicsClientId=client)
    scene = TabletopScene(client, workspace)
    if cfg.style in CLUTTER_LAYOUTS:  # the clutter-removal trials' scenes (``grasping.clutter``)
        n = int(rng.integers(CLUTTER_OBJECTS[0], CLUTTER_OBJECTS[1] + 1))
        scene.populate_clutter(rng, cfg.style, n, scene_config or cfg.scene())
    else:
        scene.populate(rng, scene_config or cfg.scene())
    for view in views:
        if not 0 <= view < cfg.views:
            raise ValueError(f"view {view} outside 0..{cfg.views - 1}")
        # View 0 continues the scene's generator (single-view sets are unchanged); others get their own.
        vrng = rng if view == 0 else np.random.default_rng(
            [cfg.seed, scene_index, SIM_SENSORS.index(cfg.sensor), view])
        T_base_cam = sample_camera_pose(vrng, workspace, cfg.camera_pose())
        camera = SimCamera(scene, T_base_cam, cfg.camera(), rng=vrng)
        with camera:
            frame = camera.read()
        yield view, frame, camera if cfg.renderer == "fast" else None


def simulate_frame(cfg: GenerateConfig, index: int, client: int | None = None,
                   scene_config: SceneConfig | None = None) -> tuple[RGBDFrame, SimCamera | None]:
    """Build, settle and capture frame ``index`` of ``cfg.seed``. Returns the frame and its fast-renderer
    camera (None for the mitsuba renderer)."""
    scene_index, view = divmod(index, cfg.views)
    _, frame, camera = next(simulate_views(cfg, scene_index, [view], client, scene_config))
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
    """One scene: every missing view of it. Returns (frames written, seconds)."""
    cfg, out, scene_index, views = args
    t0 = time.perf_counter()
    for view, frame, _ in simulate_views(cfg, scene_index, views):
        write_frame(out, scene_index * cfg.views + view, frame, cfg.rgb_format)
    return len(views), time.perf_counter() - t0


def _init_worker(threads: int, mitsuba: bool) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if mitsuba and threads == 1:
        import drjit

        drjit.set_thread_count(1)  # Mitsuba's LLVM backend: one worker process per core


def _workers(text: str) -> int:
    """``--workers``: a number, or ``all`` for one per CPU core."""
    if text == "all":
        return os.cpu_count() or 1
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes or 'all', got {text!r}") from None


def generate(out: str | Path, frames: int, cfg: GenerateConfig, workers: int = 1, progress: bool = True) -> dict:
    """Write frames 0..frames-1 into ``out`` (skipping complete ones). Returns timing figures."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = cfg.manifest()
    mpath = out / MANIFEST
    old = json.loads(mpath.read_text()) if mpath.is_file() else {}
    if old:
        old_settings = {k: v for k, v in old.items() if k not in ("frames", "commit")}
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
    scenes: dict[int, list[int]] = {}
    for i in todo:
        scenes.setdefault(i // cfg.views, []).append(i % cfg.views)
    jobs = [(cfg, out, s, v) for s, v in scenes.items()]
    with tqdm(total=frames, initial=frames - len(todo), desc=f"generate {out.name}", unit="frame",
              disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                n, dt = _work(job)
                times.append(dt / n)
                bar.update(n)
        else:
            ctx = mp.get_context("spawn")
            threads = max(1, (os.cpu_count() or 1) // workers)
            with ctx.Pool(workers, initializer=_init_worker, initargs=(threads, cfg.renderer == "mitsuba")) as pool:
                for n, dt in pool.imap_unordered(_work, jobs, chunksize=1):
                    times.append(dt / n)
                    bar.update(n)
    wall = time.perf_counter() - t0
    return {"frames_written": len(todo), "frames_skipped": frames - len(todo), "wall_s": wall,
            "frames_per_s": len(todo) / wall if todo and wall > 0 else None,
            "median_s_per_frame_per_worker": float(np.median(times)) if times else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp generate", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--out", metavar="DIR", required=True, help="output folder (created; resumed if it exists)")
    ap.add_argument("--frames", metavar="N", type=int, required=True, help="number of frames")
    ap.add_argument("--seed", metavar="S", type=int, required=True, help="dataset seed")
    ap.add_argument("--sensor", choices=SIM_SENSORS, default="d435", help="camera model")
    ap.add_argument("--size", metavar="WxH", default="320x240", help="image size")
    ap.add_argument("--workers", metavar="K", type=_workers, default=1,
                    help="parallel processes; 'all': one per CPU core of this machine")
    ap.add_argument("--rgb-format", choices=("png", "jpg"), default="png", help="colour image format")
    ap.add_argument("--renderer", choices=RENDERERS, default="fast",
                    help="fast (TinyRenderer composite) or mitsuba (path-traced glass)")
    ap.add_argument("--spp", metavar="N", type=int, default=8, help="mitsuba samples per pixel")
    ap.add_argument("--stereo", action="store_true",
                    help="mitsuba: raw depth by SGBM matching of a rendered stereo pair, not the sensor model")
    ap.add_argument("--views", metavar="V", type=int, default=1, help="camera poses per settled scene")
    ap.add_argument("--max-tilt", metavar="DEG", type=float, default=DEFAULT_MAX_TILT,
                    help="largest camera tilt from straight down, degrees (real captures reach 60)")
    ap.add_argument("--style", choices=STYLES, default="tabletop",
                    help="tabletop; lab: ClearPose-like laboratory glassware, wider and farther views, "
                         "and with mitsuba a bright room and natural surfaces; pile or packed: 3-7 objects "
                         "dropped in a heap or stood side by side, as in the clutter-removal trials")
    ap.add_argument("--room", action="store_true", default=None,
                    help="mitsuba: the lab style's bright room for the default style's household glass")
    ap.add_argument("--json", dest="json_out", metavar="FILE", help="write timing figures to this JSON file")
    args = ap.parse_args(argv)
    try:
        width, height = parse_size(args.size)
        if args.frames < 1:
            raise ValueError(f"--frames must be at least 1, got {args.frames}")
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        if args.seed < 0:
            raise ValueError(f"--seed must be non-negative, got {args.seed}")
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise ValueError(f"--out {args.out} is a file; give a folder")
        cfg = GenerateConfig(seed=args.seed, sensor=args.sensor, width=width, height=height,
                             rgb_format=args.rgb_format, renderer=args.renderer, spp=args.spp,
                             stereo=args.stereo, views=args.views, max_tilt=args.max_tilt,
                             style=args.style, room=args.room)
        result = generate(args.out, args.frames, cfg, workers=args.workers)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fps = result["frames_per_s"]
    result.update({"size": args.size, "sensor": args.sensor, "workers": args.workers, "renderer": args.renderer,
                   "views": args.views, "frames_per_hour": fps * 3600 if fps else None})
    print(f"wrote {result['frames_written']} frames, skipped {result['frames_skipped']} already complete"
          + (f"; {fps:.2f} frames/s" if fps else ""))
    if args.json_out:
        write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(main())
