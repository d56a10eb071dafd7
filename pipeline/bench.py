"""Latency of the networks: median milliseconds per frame, batch 1, after warm-up, inference mode, 2 threads.

    distillgrasp bench [--models student,teacher] [--weights-dir DIR] [--runs N] [--threads N] [--no-onnx]
                       [--completer student|teacher|none] [--inputs WxH,...] [--json FILE]

Measures student and teacher at 320x240 and 640x480, with torch and with onnxruntime (exported on the
fly to a temporary file). The models are timed in alternating blocks of calls, so that load on a shared machine
weighs on each alike; "teacher_over_student" holds the ratios.
JSON: {MODEL: {"params": n, "320x240": {"torch_ms": .., "onnx_ms": ..}, ...}}.
Untrained architectures are measured when no weights exist (latency does not depend on the values).

``--completer student`` (the default) also times what a camera frame costs end to end, per ``--inputs`` size
(a D435's colour stream: 320x240, 640x480, 848x480, 1280x720): the frame brought to the network's working scale,
completed, and its depth returned at the frame's resolution. JSON: ``"completer": {"WxH": {"ms": ..,
"working_size": .., "over_320x240": ..}}``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pipeline.cli import HelpFormatter, list_argument, parse_size, setup_logging, write_json
from pipeline.device import DeviceError, resolve_device, synchronize
from pipeline.models.common import count_parameters
from pipeline.weights import WEIGHTS_DIR, build, load

SIZES = ((320, 240), (640, 480))


def interleaved_median_ms(fns: dict[str, Callable[[], object]], runs: int, block: int = 10,
                          warmup: int = 3) -> dict[str, float]:
    """Median milliseconds per call of each function, timed in alternating blocks (a x10, b x10, a x10, ...).

    Alternating makes a slow spell of a shared machine fall on every model alike, so the ratio between
    models holds even when the absolute figures drift. Each block starts with a few untimed calls: an
    onnxruntime session's threads keep spinning for a moment after its run and would slow the other
    model's first calls.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    while any(len(t) < runs for t in times.values()):
        for name, fn in fns.items():
            for _ in range(warmup):
                fn()
            for _ in range(min(block, runs - len(times[name]))):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t) * 1000.0) for name, t in times.items()}


def bench_models(models: dict[str, torch.nn.Module], threads: int, runs: int, onnx: bool = True,
                 device: torch.device | None = None) -> dict:
    """{NAME: {"params": n, "WxH": {"torch_ms": .., "onnx_ms": ..}}} for every size in SIZES. On a GPU
    ``device`` each timed call waits for the GPU to finish (one frame in, its depth out); onnxruntime runs on
    the CPU and is timed there only."""
    from pipeline.onnx_runtime import export_onnx, onnx_session

    device = device or torch.device("cpu")
    torch.set_num_threads(threads)
    out: dict = {name: {"params": count_parameters(m)} for name, m in models.items()}
    for m in models.values():
        m.eval().to(device)
    rng = np.random.default_rng(0)
    for w, h in SIZES:
        rgb = torch.from_numpy(rng.random((1, 3, h, w), dtype=np.float32))
        depth = torch.from_numpy(rng.uniform(0.4, 1.2, (1, 1, h, w)).astype(np.float32))
        depth[..., h // 3 : h // 2, w // 3 : w // 2] = 0
        size = f"{w}x{h}"
        x_rgb, x_depth = rgb.to(device), depth.to(device)

        def call(m, x_rgb=x_rgb, x_depth=x_depth):
            y = m(x_rgb, x_depth)
            synchronize(device)
            return y

        with torch.inference_mode():
            torch_fns = {name: (lambda m=m: call(m)) for name, m in models.items()}
            for name, ms in interleaved_median_ms(torch_fns, runs).items():
                out[name][size] = {"torch_ms": ms}
        if not onnx or device.type != "cpu":
            continue
        feeds = {"rgb": rgb.numpy(), "depth": depth.numpy()}
        onnx_fns = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, m in models.items():
                try:
                    sess = onnx_session(export_onnx(m, Path(tmp) / f"{name}.onnx", (w, h)), threads)
                except Exception as exc:  # noqa: BLE001  an export failure is a result to report, not a crash
                    out[name][size]["onnx_error"] = f"{type(exc).__name__}: {exc}"[:300]
                else:
                    onnx_fns[name] = lambda sess=sess: sess.run(None, feeds)
            for name, ms in interleaved_median_ms(onnx_fns, runs).items():
                out[name][size]["onnx_ms"] = ms
    return out


# A RealSense D435's colour stream at the sizes it offers (its focal length scales with the width).
INPUT_SIZES = ((320, 240), (640, 480), (848, 480), (1280, 720))
D435_FX_AT_1280 = 921.0


def bench_completer(completer, runs: int, sizes=INPUT_SIZES) -> dict:
    """{"WxH": {"ms": .., "working_size": "WxH", "over_320x240": ..}}: what one ``complete`` call costs per camera
    frame size, everything included (resize to the working scale, network, upsampling, raw readings kept)."""
    from pipeline.types import CameraIntrinsics, RGBDFrame

    rng = np.random.default_rng(0)
    out: dict = {}
    fns = {}
    net = completer.for_sensor("d435") if hasattr(completer, "for_sensor") else completer
    for w, h in sizes:
        fx = D435_FX_AT_1280 * w / 1280 if w / h > 1.5 else D435_FX_AT_1280 * 640 / 960 * w / 640
        K = CameraIntrinsics(w, h, fx, fx, (w - 1) / 2, (h - 1) / 2)
        depth = rng.uniform(0.5, 0.9, (h, w)).astype(np.float32)
        depth[h // 3 : h // 2, w // 3 : w // 2] = 0
        frame = RGBDFrame(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), depth, K, sensor="d435")
        working = net.working_size(K) if hasattr(net, "working_size") else (w, h)
        out[f"{w}x{h}"] = {"fx": round(fx, 1), "working_size": f"{working[0]}x{working[1]}"}
        fns[f"{w}x{h}"] = lambda frame=frame: completer.complete(frame)
    for size, ms in interleaved_median_ms(fns, runs).items():
        out[size]["ms"] = ms
    base = out.get("320x240", {}).get("ms")
    for size in out:
        if base:
            out[size]["over_320x240"] = round(out[size]["ms"] / base, 2)
    return out


def ratios(results: dict, slow: str = "teacher", fast: str = "student") -> dict:
    """How many times slower ``slow`` is than ``fast``, per size and backend (where both were measured)."""
    r = {}
    for w, h in SIZES:
        size = f"{w}x{h}"
        a, b = results.get(slow, {}).get(size, {}), results.get(fast, {}).get(size, {})
        r[size] = {k[:-3]: round(a[k] / b[k], 2) for k in ("torch_ms", "onnx_ms") if k in a and k in b}
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp bench", description=__doc__,
                                 formatter_class=HelpFormatter)
    list_argument(ap, "--models", metavar="NAME", default="student,teacher", help="weights names in --weights-dir")
    ap.add_argument("--weights-dir", metavar="DIR", default=str(WEIGHTS_DIR), help="folder holding NAME.safetensors")
    ap.add_argument("--runs", metavar="N", type=int, default=30, help="timed calls per model and size")
    ap.add_argument("--threads", metavar="N", type=int, default=2, help="CPU threads")
    ap.add_argument("--no-onnx", action="store_true", help="time torch only")
    ap.add_argument("--device", metavar="DEV", default="auto",
                    help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N; on a GPU torch only")
    ap.add_argument("--completer", metavar="NAME", default="student", choices=("student", "teacher", "none"),
                    help="also time this completer on camera frames of every --inputs size (none: skip)")
    list_argument(ap, "--inputs", metavar="WxH", default=",".join(f"{w}x{h}" for w, h in INPUT_SIZES),
                  help="camera frame sizes for --completer")
    ap.add_argument("--json", dest="json_out", metavar="FILE", default=None, help="write the figures to this file")
    args = ap.parse_args(argv)
    try:
        inputs = [parse_size(s) for s in args.inputs]
    except ValueError as exc:
        ap.error(str(exc))
    models, sources = {}, {}
    for name in args.models:
        path = Path(args.weights_dir) / f"{name}.safetensors"
        if path.is_file():
            models[name], _ = load(path)
            sources[name] = str(path)
        else:
            models[name] = build(name)
            sources[name] = "untrained architecture (no weights file)"
    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        ap.error(str(exc))
    results = bench_models(models, args.threads, args.runs, onnx=not args.no_onnx, device=device)
    for name, r in results.items():
        r["weights"] = sources[name]
        cells = "  ".join(f"{s}: torch {r[s]['torch_ms']:.1f} ms" + (f", onnx {r[s]['onnx_ms']:.1f} ms"
                                                                   if "onnx_ms" in r[s] else "")
                          for s in (f"{w}x{h}" for w, h in SIZES))
        print(f"{name} ({r['params'] / 1e6:.2f} M params)  {cells}")
    results["threads"] = args.threads
    results["device"] = str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})"
    if "teacher" in results and "student" in results:
        results["teacher_over_student"] = ratios(results)
        print("teacher / student: " + "  ".join(f"{size}: " + ", ".join(f"{k} {v:.2f}x" for k, v in r.items())
                                                  for size, r in results["teacher_over_student"].items()))
    if args.completer != "none":
        from pipeline.completion import make_completer

        torch.set_num_threads(args.threads)
        completer = make_completer(args.completer, Path(args.weights_dir),
                                   backend="torch" if args.no_onnx else "auto", device=str(device))
        timed = bench_completer(completer, args.runs, inputs)
        results["completer"] = {"name": args.completer, "backend": "torch" if args.no_onnx else "auto", **timed}
        print(f"{args.completer} on camera frames (resize, network, upsampling): " + "  ".join(
            f"{size}: {r['ms']:.1f} ms (works at {r['working_size']}"
            + (f", {r['over_320x240']:.2f}x 320x240)" if "over_320x240" in r else ")") for size, r in timed.items()))
    if args.json_out:
        write_json(args.json_out, results)
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(main())
