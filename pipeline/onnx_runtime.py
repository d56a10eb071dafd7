"""ONNX export of a depth network and onnxruntime sessions, shared by the completers, the export command and
the benchmark. It imports nothing else of the project's, so everything may import it.

An exported graph takes ``rgb`` (1x3xHxW float in [0, 1]) and ``depth`` (1x1xHxW metres, 0 = none) and returns
``completed`` (1x1xHxW metres) at the one frame size it was exported for.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

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
    # Idle worker threads sleep instead of spinning: a spinning pool keeps the cores busy after every run and
    # slows the OpenCV and NumPy work around the network (and any other session's pool) to a crawl.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
