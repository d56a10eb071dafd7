"""Export a network to ONNX and run it with onnxruntime.

    python -m pipeline.export --model student [--weights FILE] --onnx OUT.onnx [--size 320x240]

The exported graph takes ``rgb`` (1x3xHxW float in [0, 1]) and ``depth`` (1x1xHxW metres, 0 = none) and
returns ``completed`` (1x1xHxW metres) at the fixed ``--size`` it was exported for. The export is checked
against torch on a random frame before the command reports success.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import DistillGraspError
from pipeline.types import RGBDFrame

ONNX_TOLERANCE_M = 1e-3  # max |onnx - torch| in metres


def export_onnx(model: torch.nn.Module, path, size: tuple[int, int] = (320, 240)):
    """Trace ``model`` at ``size`` (W, H) into ``path`` (a file name, or a binary file object)."""
    if isinstance(path, (str, Path)):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    model.eval()
    rgb = torch.rand(1, 3, h, w)
    depth = torch.rand(1, 1, h, w) + 0.5
    with warnings.catch_warnings():  # shapes become constants on purpose: the graph is for one frame size
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, (rgb, depth), str(path) if isinstance(path, Path) else path,
                          input_names=["rgb", "depth"], output_names=["completed"], opset_version=17, dynamo=False)
    return path


def onnx_session(path: str | Path | bytes, threads: int = 2):
    """An onnxruntime CPU session from a model file or the model's bytes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def check_export(model: torch.nn.Module, path: str | Path, size: tuple[int, int]) -> float:
    """Largest |onnx - torch| (metres) on a random frame with holes."""
    return check_session(model, onnx_session(path), size)


def check_session(model: torch.nn.Module, session, size: tuple[int, int]) -> float:
    """Largest |onnx - torch| (metres) of an onnxruntime session on a random frame with holes."""
    w, h = size
    rng = np.random.default_rng(1)
    rgb = rng.random((1, 3, h, w), dtype=np.float32)
    depth = rng.uniform(0.4, 1.2, (1, 1, h, w)).astype(np.float32)
    depth[..., h // 4 : h // 2, w // 4 : w // 2] = 0
    with torch.inference_mode():
        ref = model(torch.from_numpy(rgb), torch.from_numpy(depth)).numpy()
    got = session.run(None, {"rgb": rgb, "depth": depth})[0]
    return float(np.abs(got - ref).max())


class OnnxCompleter:
    """A ``DepthCompleter`` running an exported network with onnxruntime (numpy in, numpy out)."""

    def __init__(self, path: str | Path, threads: int = 2):
        from pipeline.completion import DepthCompleter

        if not Path(path).is_file():
            raise DistillGraspError(f"ONNX file not found: {path}")
        self.session = onnx_session(path, threads)
        self.input_hw = tuple(self.session.get_inputs()[1].shape[2:])
        outer = self

        class _Impl(DepthCompleter):
            name = "onnx"

            def _complete(self, frame: RGBDFrame) -> np.ndarray:
                if frame.shape != outer.input_hw:
                    raise DistillGraspError(f"ONNX model was exported for {outer.input_hw[1]}x{outer.input_hw[0]} "
                                            f"frames, got {frame.shape[1]}x{frame.shape[0]}; resize the frame "
                                            "or export again with --size")
                rgb = (frame.rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
                return outer.session.run(None, {"rgb": rgb, "depth": frame.depth[None, None]})[0][0, 0]

        self._impl = _Impl()

    def complete(self, frame: RGBDFrame) -> RGBDFrame:
        return self._impl.complete(frame)


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import parse_size
    from pipeline.weights import WEIGHTS_DIR, load

    ap = argparse.ArgumentParser(prog="python -m pipeline.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("student", "teacher"), required=True)
    ap.add_argument("--weights", default=None, help="default: weights/MODEL.safetensors")
    ap.add_argument("--onnx", required=True, help="output .onnx file")
    ap.add_argument("--size", default="320x240", help="size used for tracing and the check")
    args = ap.parse_args(argv)
    try:
        model, _ = load(args.weights or WEIGHTS_DIR / f"{args.model}.safetensors")
        size = parse_size(args.size)
        path = export_onnx(model, args.onnx, size)
        err = check_export(model, path, size)
    except (DistillGraspError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if err > ONNX_TOLERANCE_M:
        print(f"error: onnxruntime differs from torch by {err:.2e} m (> {ONNX_TOLERANCE_M} m)", file=sys.stderr)
        return 1
    print(f"wrote {path}; max |onnx - torch| = {err:.2e} m")
    return 0


if __name__ == "__main__":
    sys.exit(main())
