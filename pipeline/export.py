"""Export a network to ONNX and run it with onnxruntime.

    distillgrasp export --model student|teacher --onnx FILE.onnx [--weights FILE] [--size WxH]

The exported graph takes ``rgb`` (1x3xHxW float in [0, 1]) and ``depth`` (1x1xHxW metres, 0 = none) and
returns ``completed`` (1x1xHxW metres) at the fixed ``--size`` it was exported for. The export is checked
against torch on a random frame before the command reports success.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import HelpFormatter, setup_logging
from pipeline.completion import OnnxCompleter  # noqa: F401  (the completer for an exported file)
from pipeline.errors import DistillGraspError
from pipeline.onnx_runtime import ONNX_TOLERANCE_M, check_export, export_onnx, onnx_session  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import parse_size
    from pipeline.weights import WEIGHTS_DIR, WeightsError, load

    ap = argparse.ArgumentParser(prog="distillgrasp export", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--model", choices=("student", "teacher"), required=True, help="the network's architecture")
    ap.add_argument("--weights", metavar="FILE", default=None,
                    help="weights to export; default: the shipped MODEL.safetensors")
    ap.add_argument("--onnx", metavar="FILE.onnx", required=True, help="ONNX file to write")
    ap.add_argument("--size", metavar="WxH", default="320x240", help="size used for tracing and the check")
    args = ap.parse_args(argv)
    try:
        weights = args.weights or WEIGHTS_DIR / f"{args.model}.safetensors"
        model, card = load(weights)
        if card.get("arch") != args.model:
            raise WeightsError(f"{weights} is a {card.get('arch')} network, not the --model {args.model}")
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
    setup_logging()
    sys.exit(main())
