"""Latency of the networks: median milliseconds per frame, batch 1, after warm-up, inference mode, 2 threads.

    python -m pipeline.bench [--weights-dir weights] [--runs 30] [--threads 2] --json OUT

Measures student and teacher at 320x240 and 640x480, with torch and with onnxruntime (exported on the
fly to a temporary file). JSON: {MODEL: {"params": n, "320x240": {"torch_ms": .., "onnx_ms": ..}, ...}}.
Untrained architectures are measured when no weights exist (latency does not depend on the values).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.cli import write_json
from pipeline.models.common import count_parameters
from pipeline.weights import WEIGHTS_DIR, build, load

SIZES = ((320, 240), (640, 480))


def _median_ms(fn, runs: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def bench_model(model: torch.nn.Module, threads: int, runs: int, onnx: bool = True) -> dict:
    from pipeline.export import export_onnx, onnx_session

    torch.set_num_threads(threads)
    model.eval()
    out: dict = {"params": count_parameters(model)}
    rng = np.random.default_rng(0)
    for w, h in SIZES:
        rgb = torch.from_numpy(rng.random((1, 3, h, w), dtype=np.float32))
        depth = torch.from_numpy(rng.uniform(0.4, 1.2, (1, 1, h, w)).astype(np.float32))
        depth[..., h // 3 : h // 2, w // 3 : w // 2] = 0
        with torch.inference_mode():
            entry = {"torch_ms": _median_ms(lambda: model(rgb, depth), runs)}
        if onnx:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    path = export_onnx(model, Path(tmp) / "m.onnx", (w, h))
                    sess = onnx_session(path, threads)
                except Exception as exc:  # noqa: BLE001  an export failure is a result to report, not a crash
                    entry["onnx_error"] = f"{type(exc).__name__}: {exc}"[:300]
                else:
                    feeds = {"rgb": rgb.numpy(), "depth": depth.numpy()}
                    entry["onnx_ms"] = _median_ms(lambda: sess.run(None, feeds), runs)
        out[f"{w}x{h}"] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="student,teacher")
    ap.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)
    results = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        path = Path(args.weights_dir) / f"{name}.safetensors"
        if path.is_file():
            model, _ = load(path)
            source = str(path)
        else:
            model = build(name)
            source = "untrained architecture (no weights file)"
        results[name] = {**bench_model(model, args.threads, args.runs, onnx=not args.no_onnx), "weights": source}
        r = results[name]
        cells = "  ".join(f"{s}: torch {r[s]['torch_ms']:.1f} ms" + (f", onnx {r[s]['onnx_ms']:.1f} ms"
                                                                   if "onnx_ms" in r[s] else "")
                          for s in (f"{w}x{h}" for w, h in SIZES))
        print(f"{name} ({r['params'] / 1e6:.2f} M params)  {cells}")
    results["threads"] = args.threads
    if args.json_out:
        write_json(args.json_out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
