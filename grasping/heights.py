"""How far perception puts each object's top from the truth: the height a top-down grasp is planned from.

    measure(make_cell, {"student": completer, "gt": oracle}, scenes=100, seed=7, percentiles=[90, 95, 98])

Per simulated scene and depth source: complete the frame, build the cloud and segment it as a pick does
(the first three steps of ``grasping.trials.perceive``; its detection is not needed here), and set every
cluster that holds exactly one object's centre (seen from above) against that object's true top
(``Cell.objects``). The detector plans its pads from a percentile of a cluster's heights (``DetectorConfig.top_percentile``), so the summary gives, per source, per glass or opaque
and per kind of object, each percentile's error in millimetres and the share of clusters whose top is held: no
more than ``LOW_MM`` below the truth (lower, the palm meets the top) and less than ``HIGH_MM`` above it
(higher, the pads close over the rim). The command is ``distillgrasp heights`` (``distillgrasp/heights.py``).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from grasping.cloud import CloudConfig, PerceptionError, frame_points, segment

LOW_MM = 30.0  # a top this much too low puts the pads 70 mm down a glass: the palm (75 mm above them) meets it
HIGH_MM = 25.0  # a top this much too high leaves the pads' lower half, 19 mm, on the glass at most
MATCH_MARGIN_M = 0.005  # an object's centre may lie this far outside a cluster's footprint box


def match_clusters(clusters: list[np.ndarray], centres: np.ndarray) -> list[int | None]:
    """Per cluster (N x 3 points), the index of the one object whose centre (x, y in ``centres``, M x 2) lies
    in the cluster's footprint box, widened by ``MATCH_MARGIN_M``; None where none or several do."""
    out: list[int | None] = []
    for pts in clusters:
        lo, hi = pts[:, :2].min(0) - MATCH_MARGIN_M, pts[:, :2].max(0) + MATCH_MARGIN_M
        inside = np.flatnonzero(((centres >= lo) & (centres <= hi)).all(1)) if len(centres) else []
        out.append(int(inside[0]) if len(inside) == 1 else None)
    return out


def summarise_errors(errors_mm: np.ndarray) -> dict:
    """Count, median, 10th and 90th percentile of top errors (millimetres, estimate minus truth), and the shares
    below ``-LOW_MM`` (low), at or above ``HIGH_MM`` (high) and between (held)."""
    e = np.asarray(errors_mm, dtype=np.float64)
    if not len(e):
        return {"clusters": 0}
    return {"clusters": int(len(e)), "median_mm": round(float(np.median(e)), 1),
            "p10_mm": round(float(np.percentile(e, 10)), 1), "p90_mm": round(float(np.percentile(e, 90)), 1),
            "held": round(float(np.mean((e >= -LOW_MM) & (e < HIGH_MM))), 3),
            "low": round(float(np.mean(e < -LOW_MM)), 3), "high": round(float(np.mean(e >= HIGH_MM)), 3)}


def scene_rows(cell, completers: dict, percentiles: list[float], cloud: CloudConfig = CloudConfig()) -> list[dict]:
    """One capture of ``cell``; per source and matched cluster: the object's kind, whether it is glass, its true
    top and each percentile's height (metres above the table)."""
    frame = cell.capture()
    objects = cell.objects()
    centres = np.array([o["centre"] for o in objects]).reshape(-1, 2)
    rows = []
    for source, completer in completers.items():
        completed = completer.complete(frame)
        points, repaired = frame_points(completed, raw_depth=frame.depth)
        try:
            scene = segment(points, cloud, repaired=repaired)
        except PerceptionError:
            continue
        for pts, j in zip(scene.clusters, match_clusters(scene.clusters, centres)):
            if j is None:
                continue
            h = scene.height(pts)
            rows.append({"source": source, "kind": objects[j]["kind"], "glass": objects[j]["glass"],
                         "top": objects[j]["top"], "tops": [float(np.percentile(h, q)) for q in percentiles]})
    return rows


def summarise(rows: list[dict], percentiles: list[float]) -> dict:
    """Per source, per percentile: all clusters, glass, opaque, and each kind (``summarise_errors``)."""
    out: dict = {}
    for source in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == source]
        out[source] = {}
        for i, q in enumerate(percentiles):
            def errors(keep) -> np.ndarray:
                return np.array([(r["tops"][i] - r["top"]) * 1000.0 for r in mine if keep(r)])

            out[source][f"p{q:g}"] = {
                "glass": summarise_errors(errors(lambda r: r["glass"])),
                "opaque": summarise_errors(errors(lambda r: not r["glass"])),
                "kinds": {k: summarise_errors(errors(lambda r, k=k: r["kind"] == k))
                          for k in sorted({r["kind"] for r in mine})}}
    return out


def measure(make_cell, completers: dict, scenes: int, seed: int, percentiles: list[float]) -> dict:
    """``scene_rows`` over the first ``scenes`` scenes of set ``seed`` (cells from ``make_cell(scene_seed)``),
    summarised."""
    rows = []
    for t in tqdm(range(scenes), desc="scenes", unit="scene"):
        with make_cell(seed * 100000 + t) as cell:
            rows += scene_rows(cell, completers, percentiles)
    return {"seed": seed, "scenes": scenes, "held_span_mm": [-LOW_MM, HIGH_MM],
            "sources": summarise(rows, percentiles)}


if __name__ == "__main__":
    import sys

    from distillgrasp.heights import main

    sys.exit(main())
