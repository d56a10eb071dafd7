"""Pack frames into shards (``pipeline.data.shards``), to train on them on another machine.

    distillgrasp shard DIR [DIR ...] --out SHARDS [--per-shard 256] [--size WxH] [--rgb jpg|png] [--quality 90]

Any folder the readers take (simulated sets, real captures in any supported layout) is packed, ``--per-shard``
frames a shard, resized to ``--size`` when given. A rerun keeps the shards already complete. ``SHARDS/shards.json``
records the frames, bytes per frame, and the ``generation.json`` of every source folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from pipeline.cli import HelpFormatter, parse_size
from pipeline.data.dataset import resize_frame
from pipeline.data.readers import discover
from pipeline.data.shards import SUFFIX, Shard, ShardError, write_shard
from pipeline.errors import DataFormatError


def _source_record(folder: Path) -> dict:
    record = {"folder": str(folder)}
    gen = folder / "generation.json"
    if gen.is_file():
        try:
            record["generation"] = json.loads(gen.read_text())
        except json.JSONDecodeError:
            pass
    return record


def pack(folders: list[str], out: str | Path, per_shard: int = 256, size: tuple[int, int] | None = None,
         rgb_format: str = "jpg", quality: int = 90, limit: int | None = None, progress: bool = True) -> dict:
    """Pack every frame of ``folders`` (any readable layout) into shards in ``out``, ``per_shard`` frames
    each, resized to ``size`` when given. A shard already complete from an earlier run is kept (resume).
    Returns the summary also written to ``out/shards.json``."""
    out = Path(out)
    if per_shard < 1:
        raise ShardError(f"--per-shard must be a positive number of frames, got {per_shard}")
    if rgb_format not in ("jpg", "png"):
        raise ShardError(f"--rgb must be jpg or png, got {rgb_format!r}")
    if not 1 <= quality <= 100:
        raise ShardError(f"--quality is a JPEG quality, 1-100; got {quality}")
    items = [(f, i) for path in folders for f in discover(path) for i in range(len(f))][:limit]
    if not items:
        raise ShardError(f"no frames in {folders}")
    out.mkdir(parents=True, exist_ok=True)
    chunks = [items[s : s + per_shard] for s in range(0, len(items), per_shard)]
    bar = tqdm(total=len(items), desc=f"shard {out.name}", unit="frame", disable=not progress)
    total = 0
    for n, chunk in enumerate(chunks):
        path = out / f"{n:05d}{SUFFIX}"
        if path.is_file():
            try:
                if len(Shard(path)) == len(chunk):
                    total += path.stat().st_size
                    bar.update(len(chunk))
                    continue
            except ShardError:
                pass  # damaged by an interrupted copy: write it again
        frames = []
        for folder, i in chunk:
            frame = folder.load(i)
            frames.append(resize_frame(frame, *size) if size else frame)
            bar.update(1)
        total += write_shard(path, frames, rgb_format, quality,
                             source={"folders": sorted({str(f.root) for f, _ in chunk})})
    bar.close()
    summary = {"frames": len(items), "shards": len(chunks), "bytes": total,
               "bytes_per_frame": round(total / len(items)), "rgb": rgb_format,
               "quality": quality if rgb_format == "jpg" else None, "size": None if size is None else list(size),
               "sources": [_source_record(Path(f)) for f in folders]}
    (out / "shards.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="distillgrasp shard", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("folders", metavar="DIR", nargs="+", help="folders of frames, any layout the readers take")
    ap.add_argument("--out", metavar="DIR", required=True, help="shard folder (resumed if it exists)")
    ap.add_argument("--per-shard", metavar="N", type=int, default=256, help="frames per shard")
    ap.add_argument("--size", metavar="WxH", default=None, help="resize every frame to this first")
    ap.add_argument("--rgb", choices=("jpg", "png"), default="jpg", help="colour as JPEG or lossless PNG")
    ap.add_argument("--quality", metavar="Q", type=int, default=90, help="JPEG quality of the colour")
    ap.add_argument("--limit", metavar="N", type=int, default=None, help="only the first N frames")
    args = ap.parse_args(argv)
    try:
        size = parse_size(args.size) if args.size else None
        summary = pack(args.folders, args.out, args.per_shard, size, args.rgb, args.quality, args.limit)
    except (DataFormatError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "sources"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
