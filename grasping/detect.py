"""Top-down parallel-jaw grasps from a segmented point cloud.

For each object cluster, candidate grasps close across the object's narrow side (from the principal axes of
its footprint, plus nearby yaws), the pads 20-40 mm below its top with the palm clear of its highest points.
A vessel too wide for the stroke gets rim pinches; touching objects that segment as one cluster get grasps on
one part, opened for what the descending fingers pass and centred between the two contacts, where the pads
must meet the part's outline within the friction cone; a whole-object grasp must close across the object's widest
part (not where two touching objects meet). A candidate is kept when the opening needed fits the stroke and the
open fingers and palm, coming straight down to the grasp height, touch no point of the scene and keep clear of
other objects. Candidates
are scored by how much of the object's depth had to be repaired (glass the camera could not see is the
target), how round the footprint of an object grasped whole is (an upright vessel seen from above; an
elongated cluster is an object on its side or neighbours joined into one), how centred the grasp is on the
object's narrow side, how little of the stroke it needs, how high it grasps, whether its pads close on a
wall that narrows upwards (a bottle's shoulder, which slips out) and whether the object's top is much narrower
than its body (a bottle's or a vase's neck: grasped whole, such a vessel is held below a slope the completed
depth may not show); the list comes back best first.
``docs/architecture.md`` gives the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from scipy.spatial import ConvexHull, Delaunay, QhullError, cKDTree

from grasping.cloud import CloudConfig, SceneCloud, cluster_footprint, fit_circle, highs, lows, upper_share
from grasping.kinematics import UR10E
from pipeline.config import DEFAULT_GRIPPER, GripperConfig


@dataclass(frozen=True)
class Grasp:
    """A top-down grasp: TCP centre (base frame, metres), yaw of the closing direction (radians), opening
    width (metres), score (higher is better), the index of the object cluster it grasps, and how the detector
    found it (``kind``: "whole" across an object, "rim" pinching a vessel's wall, "part" of a cluster taken for
    several objects, "top" on what rests on top of a heap; the trial log keeps it). ``floor``: the lowest TCP
    height (base frame) the detector allows this grasp, its fingertips clear of the table (and a whole-object
    grasp's palm clear of the object's top); None where unknown. The executor closes again lower, never below
    it, where the fingers met nothing."""

    center: tuple[float, float, float]
    yaw: float
    width: float
    score: float
    cluster: int
    kind: str = ""
    floor: float | None = None


@dataclass(frozen=True)
class DetectorConfig:
    gripper: GripperConfig = DEFAULT_GRIPPER
    width_margin: float = 0.02  # opening beyond the object's width
    min_width_margin: float = 0.008  # an object wider than the stroke less this is not grasped across
    palm_headroom: float = 0.02  # the palm stays this far above the object's own top (repaired depth of a rim
    # can sit centimetres low)
    part_palm_headroom: float = 0.02  # part grasps: the palm's underside checked this much lower against the
    # cluster's own points (their tops are uncertain too); apart from ``palm_headroom`` so that each can be tried
    # alone (``distillgrasp trials --detector``)
    neighbour_clearance: float = 0.006  # fingers and palm keep this far from other objects' points (their
    # hidden far sides reach further than the camera sees)
    # how far below the object's top the pads' centre goes (the deepest that clears the scene)
    grasp_depths: tuple[float, ...] = (0.04, 0.03, 0.02)
    max_percentile: float = 98.0  # the object's highest points, robust to stray ones
    top_percentile: float = 90.0  # the object's top height: robust to completed depth bleeding past its edge
    tip_clearance: float = 0.004  # fingertips stay this far above the table
    collision_points: int = 3  # more scene points than this inside a finger = collision
    yaw_offsets_deg: tuple[float, ...] = (0.0, -20.0, 20.0, -40.0, 40.0, 90.0)
    rim_opening: float = 0.035  # rim pinch: opening around the vessel wall
    rim_depths: tuple[float, ...] = (0.015, 0.01, 0.006)  # rim pinch: pad centre this far below the rim
    rim_band: float = 0.01  # rim points: this close to the top
    rim_min_radius: float = 0.03  # the inner finger must fit inside
    rim_max_radius: float = 0.10
    rim_fit_rms: float = 0.005
    rim_angles: int = 12
    waist_bin: float = 0.004  # a cluster's cross-sections along its long axis, this long each (metres)
    waist_ratio: float = 0.6  # a cross-section this much narrower than the widest on both sides: two objects
    waist_side_points: int = 30  # ... when each side holds this many points (fewer: stray points past a completed
    # glass's edge; chosen on development clouds, docs/experiments.md)
    part_step: float = 0.015  # grasps on part of a wide cluster: centres on a grid this fine (metres)
    part_yaw_step_deg: float = 30.0
    part_neighbourhood: float = 0.03  # part grasps this close and parallel compete for the widest run
    part_axis_share: float = 0.9  # a part grasp's run is at least this share of the widest one near it
    friction_cone_deg: float = 45.0  # a part grasp's pads meet the part's outline at both contacts no more than
    # this far from its normal (``contact_angles``): a rubber pad on glass, friction about 1 (the simulated pads'
    # 1.5 times glass's 0.67); development pile sets 10 and 12, docs/experiments.md
    contact_radius: float = 0.01  # ... the outline's direction at a contact from the points this close to it
    slant_weight: float = 0.2  # ... and loses up to this much as its larger contact angle nears the cone's edge
    whole_span_share: float = 0.85  # whole-object grasps: the pads' strip through the grasp centre spans at least
    # this share of what they pass (the points above the fingertips) along the closing direction, so that they close
    # across the object's widest part; a cluster that is two objects touching, grasped where they meet, spans less
    # (development pile sets, docs/experiments.md). 0: no check
    repaired_weight: float = 1.0  # preference for objects whose depth was repaired (transparent ones)
    wrist_radius: float = UR10E.link_radii[5]  # the arm's last wrist, a cylinder on the tool's axis above the
    # flange (wider than the gripper's body across the closing direction): scene points there are in the way too
    top_layers: tuple[float, ...] = (0.015, 0.03, 0.045)  # nothing else graspable: the object resting on top
    # of a cluster, found from its points this far below the cluster's top (``_top_grasps``)
    top_column_margin: float = 0.004  # ... and every point of the cluster below that layer, its outline grown
    # by this much
    shoulder_weight: float = 0.4  # a whole-object grasp whose pads close on a wall that narrows upwards (a
    # bottle's shoulder) loses up to this much (``shoulder``), so that a vessel with straight or flaring walls
    # is picked first where there is one
    shoulder_free: float = 0.01  # ... nothing while the narrowing over the pads' height, both sides together,
    # stays under this (cups, tumblers, wine glasses and vases measure 0-8 mm on true depth), all of it from
    # twice this
    neck_weight: float = 0.4  # a whole-object grasp on a vessel whose top is narrower than its body (``neck``:
    # bottles and vases) loses up to this much, so that one with straight or flaring walls is picked first;
    # completed depth smooths a shoulder away, the neck stays. Where both terms apply, the larger one counts
    neck_band: float = 0.02  # the top: points this far below the object's top height
    neck_free: float = 0.85  # nothing lost while the top is at least this share of the whole width (tumblers
    # 0.93-0.99, bowls 0.92-0.99, wine glasses 0.81-0.91 and cups 0.80-0.96 on the student's depth) ...
    neck_full: float = 0.65  # ... all of ``neck_weight`` from this share down (bottles 0.58-0.87, vases 0.63-0.86;
    # development sets 7 and 8, docs/experiments.md)
    roundness_weight: float = 0.6  # whole-object grasps and rim pinches: preference for round footprints
    # (``roundness``); an elongated cluster is an object lying down or, more often, neighbours that completed
    # depth joined without a waist, grasped across the gap between them (development sets 7 and 8,
    # docs/experiments.md)


def detector_config(spec: str | None) -> DetectorConfig:
    """The shipped ``DetectorConfig`` with the numbers ``spec`` names changed (``"KEY=VALUE[,KEY=VALUE...]"``, e.g.
    ``"palm_headroom=0.03"``; ``distillgrasp trials --detector``): how a development run tries a value before it
    ships. Only fields holding one number can be set; an unknown name, a field of another kind, a value that is not a
    finite number or a name given twice is a ``ValueError`` that says which."""
    shipped = DetectorConfig()
    numbers = {name: type(value) for name, value in vars(shipped).items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    changes: dict[str, float | int] = {}
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        name, sep, text = (s.strip() for s in item.partition("="))
        if not sep or not name or not text:
            raise ValueError(f"detector setting {item!r}: write KEY=VALUE, e.g. palm_headroom=0.03")
        if name not in numbers:
            what = "is not a number" if name in vars(shipped) else "is not a detector setting"
            raise ValueError(f"detector setting {name!r} {what}; settable: {', '.join(sorted(numbers))}")
        if name in changes:
            raise ValueError(f"detector setting {name!r} is given twice")
        try:
            value = numbers[name](text)  # int or float, as the shipped value
        except ValueError:
            kind = "an integer" if numbers[name] is int else "a number"
            raise ValueError(f"detector setting {name}={text!r}: not {kind}") from None
        if not np.isfinite(value):
            raise ValueError(f"detector setting {name}={text!r}: not a finite number")
        changes[name] = value
    return replace(shipped, **changes)


def detector_changes(config: DetectorConfig) -> str:
    """What ``config`` changes of the shipped detector, as ``detector_config`` reads it back ("" for the shipped
    one): a trial log records it, so that runs of different detectors never share a folder."""
    shipped = DetectorConfig()
    return ",".join(f"{name}={value!r}" for name, value in sorted(vars(config).items())
                    if value != getattr(shipped, name))


def roundness(xy: np.ndarray) -> float:
    """How round a footprint is: the ratio of its spreads along its principal axes (the square root of the
    smaller covariance eigenvalue over the larger), 1 for a disc or a ring, about 0.5 for two touching ones, towards
    0 for a line."""
    if len(xy) < 3:
        return 0.0
    small, large = np.linalg.eigvalsh(covariance(xy))
    return float(np.sqrt(max(small, 0.0) / large)) if large > 0 else 0.0


def shoulder(pts: np.ndarray, h: np.ndarray, directions: np.ndarray, z_h: float, pad: float) -> np.ndarray:
    """How much an object narrows upwards where a grasp's pads close on it, per closing direction (rows of
    ``directions``, M x 2; metres, 0 for a straight or flaring wall): the extent along the direction of the
    object's footprint seen from above at the pads' lower edge less that at their upper edge (``h``: the
    heights of ``pts`` above the table; ``z_h``: the pads' centre; ``pad``: their height). Pads that close on a
    shoulder slide up the cone as they squeeze, and the bottle slips out on the lift (docs/experiments.md)."""
    def extents(level: float) -> np.ndarray:
        xy = pts[h > level, :2]
        return spans(xy, directions) if len(xy) else np.zeros(len(directions))

    return np.maximum(extents(z_h - pad / 2) - extents(z_h + pad / 2), 0.0)


def neck(pts: np.ndarray, h: np.ndarray, directions: np.ndarray, top: float, band: float) -> np.ndarray:
    """How wide an object's top is against its whole body, per closing direction (rows of ``directions``,
    M x 2): the width of the points within ``band`` below ``top`` over the width of all ``pts`` (``h``: their
    heights above the table), a width being the larger of the extents along the direction and across it. About
    1 for a tumbler or a bowl, well under 1 for a bottle or a vase; 0 where fewer than three points make
    either."""
    across = np.column_stack([-directions[:, 1], directions[:, 0]])

    def widths(xy: np.ndarray) -> np.ndarray:
        if len(xy) < 3:
            return np.zeros(len(directions))
        return np.maximum(spans(xy, directions), spans(xy, across))

    whole = widths(pts[:, :2])
    return widths(pts[h > top - band, :2]) / np.maximum(whole, 1e-6)


def contact_angles(xy: np.ndarray, at: np.ndarray, yaws: np.ndarray, radius: float, h: np.ndarray | None = None,
                   levels: np.ndarray | None = None) -> np.ndarray:
    """Per point of ``at`` (M x 2, on the outline of the footprint ``xy``), the angle in degrees between the closing
    direction ``yaws`` and the outline's normal there: the outline runs along the principal axis of the footprint's
    points within ``radius`` (a strip of wall seen from above, or the edge of a face), and a pad pressing at more than
    the friction cone's angle to its normal slides off (90 where fewer than three points are near). With ``h`` (the
    heights of ``xy``'s points) and ``levels`` (one per point of ``at``), only points above that level count."""
    near = cKDTree(xy).query_ball_point(at, radius, return_sorted=False)
    counts = np.array([len(n) for n in near])
    idx = np.concatenate([np.asarray(n, dtype=np.int64) for n in near]) if counts.sum() else np.zeros(0, np.int64)
    group = np.repeat(np.arange(len(at)), counts)
    if h is not None:
        keep = h[idx] > levels[group]
        idx, group = idx[keep], group[keep]
        counts = np.bincount(group, minlength=len(at))
    n = np.maximum(counts, 1)
    mean = np.column_stack([np.bincount(group, xy[idx, j], len(at)) for j in (0, 1)]) / n[:, None]
    dx, dy = xy[idx, 0] - mean[group, 0], xy[idx, 1] - mean[group, 1]
    sxx, syy, sxy = (np.bincount(group, v, len(at)) for v in (dx * dx, dy * dy, dx * dy))
    along = 0.5 * np.arctan2(2 * sxy, sxx - syy)  # the outline's direction (principal axis)
    angle = np.degrees(np.arcsin(np.clip(np.abs(np.cos(along - yaws)), 0.0, 1.0)))
    return np.where(counts >= 3, angle, 90.0)


def strip_spans(xy: np.ndarray, directions: np.ndarray, width: float, along: np.ndarray | None = None) -> np.ndarray:
    """Per direction (rows of ``directions``, unit vectors), the extent along it of the 2-D points ``xy`` that lie
    in the strip ``width`` wide along it through the origin (where a pad of that width sweeps when the gripper closes
    along the direction through the origin); -inf where the strip holds none. ``along``: ``directions @ xy.T``, where
    the caller has it. Through the middle of one object's footprint the strip spans all of it; through the notch
    where two touching objects meet, less."""
    if along is None:
        along = directions @ xy.T
    inside = np.abs(np.column_stack([-directions[:, 1], directions[:, 0]]) @ xy.T) <= width / 2
    return np.where(inside, along, -np.inf).max(1) - np.where(inside, along, np.inf).min(1)


def spans(xy: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The extent of the 2-D points ``xy`` (N x 2, N >= 1) along each of ``directions`` (rows, M x 2)."""
    along = directions @ xy.T
    return along.max(1) - along.min(1)


def covariance(xy: np.ndarray) -> np.ndarray:
    """``np.cov(xy.T)`` of N x 2 points (N >= 2), a column at a time: the same matrix at a quarter of the cost
    (``np.cov``'s own checks are most of it for the short arrays of a grasp search)."""
    x, y = xy[:, 0] - xy[:, 0].mean(), xy[:, 1] - xy[:, 1].mean()
    xy_ = x @ y
    return np.array([[x @ x, xy_], [xy_, y @ y]]) / (len(xy) - 1)


HITS_CHUNK = 64  # grasps checked together against a cloud (``GraspDetector._hits``)


class GraspDetector:
    def __init__(self, config: DetectorConfig = DetectorConfig()):
        self.config = config

    def detect(self, scene: SceneCloud) -> list[Grasp]:
        """Ranked grasps over all clusters (empty when nothing graspable is found)."""
        grasps: list[Grasp] = []
        for k, cluster in enumerate(scene.clusters):
            found = [] if self._is_several(cluster) else (self._cluster_grasps(scene, k, cluster)
                                                          or self._rim_grasps(scene, k, cluster))
            if found and self.config.roundness_weight:  # (not part grasps: their cluster is taken for several
                # objects or is too wide for one, and how round it is says nothing of either)
                bonus = self.config.roundness_weight * roundness(cluster[:, :2])
                found = [replace(g, score=g.score + bonus) for g in found]
            grasps.extend(found or self._part_grasps(scene, k, cluster))
        if not grasps:  # nothing graspable as it stands: what rests on top of a heap
            for k, cluster in enumerate(scene.clusters):
                grasps.extend(self._top_grasps(scene, k, cluster))
        if not grasps:  # nor on top: a vessel holding something, pinched at the rim of its outline
            for k, cluster in enumerate(scene.clusters):
                grasps.extend(self._rim_grasps(scene, k, cluster, outline=True))
        return sorted(grasps, key=lambda g: -g.score)

    def _top_grasps(self, scene: SceneCloud, k: int, pts: np.ndarray) -> list[Grasp]:
        """Grasp an object resting on or in others: a cup dropped into a bowl or a glass lying across
        another segments with them as one cluster, too wide for the stroke, with no waist, and with two rims
        at different heights. The cluster's points within a ``top_layers`` depth of its top, clustered in
        plan, each give a top object: the points of the cluster inside that layer's outline (grown by
        ``top_column_margin``) are the object, and fingers and palm must clear the rest of the cluster as they
        clear the object's own points (``below`` of ``_cluster_grasps`` and ``_rim_grasps``). The first layer
        depth that gives grasps wins."""
        cfg, cloud = self.config, CloudConfig()
        h = scene.height(pts)
        top = _percentile(h, cfg.max_percentile)
        for layer in cfg.top_layers:
            upper = np.compress(h > top - layer, pts, axis=0)
            if len(upper) < cloud.cluster_min_points:
                continue
            labels = cluster_footprint(upper[:, :2], cloud.cluster_eps, cloud.cluster_min_points,
                                       cloud.footprint_cell)
            found = []
            for blob in range(labels.max() + 1):
                inside = _inside_outline(upper[labels == blob, :2], pts[:, :2], cfg.top_column_margin)
                if inside is None or inside.all() or inside.sum() < cloud.cluster_min_points:
                    continue  # no outline, or the whole cluster again
                obj, rest = np.compress(inside, pts, axis=0), np.compress(~inside, pts, axis=0)
                found += [replace(g, kind="top") for g in (self._cluster_grasps(scene, k, obj, rest)
                                                            or self._rim_grasps(scene, k, obj, rest))]
            if found:
                return found
        return []

    def _is_several(self, pts: np.ndarray) -> bool:
        """Whether a cluster's footprint has a waist: along its long axis, a cross-section narrower than
        ``waist_ratio`` of the widest on both sides of it, each side holding at least ``waist_side_points``
        points, as where two touching objects meet. One object grasped across the waist would be two objects in
        the hand; a few stray points beyond a glass's edge are not a second object."""
        xy = pts[:, :2] - np.array([pts[:, 0].mean(), pts[:, 1].mean()])  # (see ``cloud.lows``)
        if len(xy) < 20:
            return False
        _, vecs = np.linalg.eigh(covariance(xy))
        along, across = xy @ vecs[:, 1], xy @ vecs[:, 0]
        bins = np.floor((along - along.min()) / self.config.waist_bin).astype(int)
        order = np.argsort(bins, kind="stable")  # each cross-section's points together
        binned, across = bins[order], across[order]
        starts = np.flatnonzero(np.concatenate(([True], binned[1:] != binned[:-1])))
        counts = np.diff(np.concatenate((starts, [len(binned)])))
        widths = np.zeros(bins.max() + 1)  # per cross-section, the extent across (0 for fewer than 3 points)
        widths[binned[starts]] = np.where(counts >= 3, np.maximum.reduceat(across, starts)
                                          - np.minimum.reduceat(across, starts), 0.0)
        if len(widths) < 3:
            return False
        left, right = np.maximum.accumulate(widths), np.maximum.accumulate(widths[::-1])[::-1]
        inner = widths[1:-1] < self.config.waist_ratio * np.minimum(left[:-2], right[2:])
        per_bin = np.bincount(bins, minlength=len(widths))
        before, after = np.cumsum(per_bin)[:-2], len(bins) - np.cumsum(per_bin)[1:-1]  # points either side
        inner &= np.minimum(before, after) >= self.config.waist_side_points
        return bool(inner.any())

    def _part_grasps(self, scene: SceneCloud, k: int, pts: np.ndarray) -> list[Grasp]:
        """Grasp one part of a cluster that is too wide to grasp whole: objects touching each other (a pile, a
        row) come out of segmentation as one cluster. Grasp centres lie on a grid over the cluster's footprint
        with closing directions every ``part_yaw_step_deg``. Under the pads' strip through a centre, the run of
        points that holds it, up to the first gap a finger fits into, is a part; what must fit between the
        fingers is what of it they pass on the way down (its points above the fingertips). The first and last of
        those along the closing direction are the contacts: the grasp is centred between them, and the pads must
        meet the part's outline there within ``friction_cone_deg`` of its normal. The rest of the cluster is an
        obstacle like any neighbour."""
        cfg, g = self.config, self.config.gripper
        h = scene.height(pts)
        xy = pts[:, :2]
        others = scene.others(k, self._reach())
        gap = g.finger_thickness + 2 * cfg.neighbour_clearance  # a finger fits into a gap this wide
        cells = np.round(xy / cfg.part_step).astype(np.int64)
        lo, span = lows(cells), np.ptp(cells[:, 1]) + 1  # occupied grid cells, in (x, y) order
        keys = np.unique((cells[:, 0] - lo[0]) * span + (cells[:, 1] - lo[1]))
        centres = (np.column_stack([keys // span, keys % span]) + lo) * cfg.part_step
        # every run under a pad strip: its closing direction, the centre of the run, its extent, and where its points
        # are (the direction's index, the first and last of the run's points in that direction's strips)
        yaws, mids, extents, who, firsts, lasts, strips = [], [], [], [], [], [], []
        for yaw in np.radians(np.arange(0.0, 180.0, cfg.part_yaw_step_deg)):
            d, n = np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])
            order = np.argsort(xy @ d)  # the points in order along the closing direction, once per direction
            along_all, across_all = xy[order] @ d, xy[order] @ n
            # all centres at once: (row = centre, col = point in order) under the centre's pad strip
            offset = np.subtract(across_all[None, :], (centres @ n)[:, None])
            row, col = np.nonzero(np.abs(offset, out=offset) < g.finger_depth / 2)  # (in place: the matrix is large)
            a = along_all[col] - (centres @ d)[row]
            # runs without a finger-wide gap, each within one centre's strip
            starts = np.flatnonzero(np.concatenate(([True], (row[1:] != row[:-1]) | (np.diff(a) > gap))))
            ends = np.concatenate((starts[1:] - 1, [len(a) - 1]))
            mids_here = (a[starts] + a[ends]) / 2
            by_row = np.lexsort((np.abs(mids_here), row[starts]))  # per centre, the run nearest it first
            nearest = by_row[np.concatenate(([True], np.diff(row[starts][by_row]) != 0))]
            strip_size = np.bincount(row, minlength=len(centres))
            nearest = nearest[(strip_size[row[starts[nearest]]] >= 10) & (ends[nearest] - starts[nearest] >= 10)]
            yaws.append(np.full(len(nearest), yaw))
            mids.append(centres[row[starts[nearest]]] + d * mids_here[nearest, None])
            extents.append(a[ends[nearest]] - a[starts[nearest]])
            who.append(np.full(len(nearest), len(strips)))
            firsts.append(starts[nearest])
            lasts.append(ends[nearest])
            strips.append(order[col])  # the cluster's points in this direction's strips, strip by strip
        yaws, mids, extents, who, firsts, lasts = (np.concatenate(v) for v in (yaws, mids, extents, who, firsts,
                                                                                lasts))
        if not len(yaws):
            return []

        def part(i: int) -> np.ndarray:  # the points of run i
            return strips[who[i]][firsts[i]:lasts[i] + 1]

        # through a part's axis, not along a chord near its edge or through a waist: a run at least
        # ``part_axis_share`` of the widest among the parallel ones nearby
        widests = np.zeros(len(yaws))
        for w in range(len(strips)):
            same = np.flatnonzero(who == w)
            dx, dy = (mids[same, None, j] - mids[None, same, j] for j in (0, 1))
            gap2 = dx * dx + dy * dy
            widests[same] = np.where(gap2 < cfg.part_neighbourhood ** 2, extents[None, same], 0.0).max(1)
        axial = np.flatnonzero(extents >= cfg.part_axis_share * widests)
        if not len(axial):
            return []
        # What the descending fingers pass is a run's points above the fingertips at its deepest grasp (not a
        # vase's belly below the neck they close on): the first and last of them along the closing direction are
        # the contacts, their distance the opening, the grasp's centre lies between them
        runs = [part(i) for i in axial]
        run_hs = [h[run] for run in runs]
        tops = np.array([_percentile(run_h, cfg.top_percentile) for run_h in run_hs])
        # per run, the pads' centre above the table at each grasp depth (deepest first), and the fingertips' level
        # at the deepest
        lowest = g.finger_length / 2 + cfg.tip_clearance
        z_hs = np.maximum(tops[:, None] - np.asarray(cfg.grasp_depths)[None, :], lowest)
        levels = z_hs[:, 0] - g.finger_length / 2
        passed = [run[run_h > level] for run, run_h, level in zip(runs, run_hs, levels)]
        enough = np.array([len(p) >= 3 for p in passed], dtype=bool)
        axial, z_hs, levels = axial[enough], z_hs[enough], levels[enough]
        contacts = np.array([[p[0], p[-1]] for p in passed if len(p) >= 3], dtype=np.int64).reshape(-1, 2)
        openings = ((xy[contacts[:, 1]] - xy[contacts[:, 0]])
                    * np.column_stack([np.cos(yaws[axial]), np.sin(yaws[axial])])).sum(1)
        fit = openings + cfg.min_width_margin <= g.stroke_m
        axial, z_hs, levels, contacts, openings = (v[fit] for v in (axial, z_hs, levels, contacts, openings))
        if not len(axial):
            return []
        # the pads meet the part square to its outline at both contacts: not a run grazing a wall, or two walls
        # where they meet
        slant = contact_angles(xy, xy[contacts.ravel()], np.repeat(yaws[axial], 2), cfg.contact_radius, h,
                               np.repeat(levels, 2)).reshape(-1, 2).max(1)
        square = slant <= cfg.friction_cone_deg
        fitting, z_hs, contacts, openings, slant = (v[square] for v in (axial, z_hs, contacts, openings, slant))
        if not len(fitting):
            return []
        grasp_at = xy[contacts].mean(1)  # between the two contacts
        # every fitting run at each pad depth, checked at once; per run, the deepest grasp that clears the rest of
        # the cluster and the other objects
        per = len(cfg.grasp_depths)
        group = np.repeat(np.arange(len(fitting)), per)  # per candidate: its run, then its pad height above the table
        z_hs = z_hs.ravel()
        at, yaws_c = grasp_at[group], yaws[fitting][group]
        widths = np.minimum(openings[group] + cfg.width_margin, g.stroke_m)
        zs = self._zs_at(scene, at, z_hs)
        cluster_repaired = scene.repaired_share(k)
        part_repaired = scene.point_repaired[k] if k < len(scene.point_repaired) else None
        out = []
        for j in self._first_clear(others, pts, group, at, yaws_c, zs, widths, headroom=cfg.part_palm_headroom):
            f, width, z_h, z = group[j], widths[j], z_hs[j], zs[j]
            i = fitting[f]  # the run
            yaw, mid, extent, widest, points = yaws[i], grasp_at[f], extents[i], widests[i], part(i)
            # an opaque part of a cluster that is mostly glass counts as opaque; a glass part as its cluster does
            # (so part grasps gain nothing on whole-object grasps elsewhere)
            repaired = (cluster_repaired if part_repaired is None
                        else min(upper_share(h[points], part_repaired[points]), cluster_repaired))
            score = (0.5 * extent / widest + 0.2 * min(z_h / 0.05, 1.0) + cfg.repaired_weight * repaired
                     - cfg.slant_weight * slant[f] / cfg.friction_cone_deg)
            out.append(Grasp((float(mid[0]), float(mid[1]), float(z)), float(_wrap(yaw)), float(width),
                             float(score), k, "part", self._floor(scene, z, z_h, lowest)))
        return out

    def _rim_grasps(self, scene: SceneCloud, k: int, pts: np.ndarray, below: np.ndarray | None = None,
                    outline: bool = False) -> list[Grasp]:
        """Pinch the wall of an open vessel too wide to grasp across (bowls, wide wine glasses): one finger
        inside, one outside, closing radially at a point of the rim. The rim is the circle fitted to the
        cluster's top points; the inside must be lower than the rim (an opening, not a lid). ``below``: the rest
        of a heap the vessel rests on or in (``_top_grasps``), whose points the fingers must clear even between
        them. With ``outline``, the rim is the circle through the corners of the cluster's outline seen from
        above and its top the height of the points within ``rim_band`` inside it: a bowl holding a ball, whose
        top points are the ball's; whatever lies inside is an obstacle to the inner finger like any other."""
        cfg, g = self.config, self.config.gripper
        h = scene.height(pts)
        if outline:
            try:
                centre, radius, rms = fit_circle(pts[ConvexHull(pts[:, :2]).vertices, :2])
            except (QhullError, ValueError):
                return []
        else:
            top = _percentile(h, cfg.top_percentile)
            rim = pts[h > top - cfg.rim_band]
            if len(rim) < 10:
                return []
            centre, radius, rms = fit_circle(rim[:, :2])
        if not (cfg.rim_min_radius <= radius <= cfg.rim_max_radius) or rms > cfg.rim_fit_rms:
            return []
        r_xy = np.linalg.norm(pts[:, :2] - centre, axis=1)
        if outline:  # the top of the points along the outline's circle
            ring = h[r_xy > radius - cfg.rim_band]
            if len(ring) < 10:
                return []
            top = _percentile(ring, cfg.top_percentile)
        inner = h[r_xy < radius - g.finger_thickness - cfg.rim_opening / 2]
        if not outline and len(inner) and _percentile(inner, 90) > top - g.finger_length / 2:
            return []  # something high inside the rim: not an opening the finger can enter
        # a rim pinch may lie outside the footprint box: every neighbour the open gripper can reach from the rim
        others = scene.others(k)
        if below is not None:  # (neighbours here get no clearance either)
            others = np.concatenate([others, below])
        others = np.compress(np.hypot(others[:, 0] - centre[0], others[:, 1] - centre[1]) <= radius + self._reach(),
                             others, axis=0)
        repaired = scene.repaired_share(k)
        # every angle at every depth (deepest first) at once; the obstacles are the neighbours and the vessel's
        # own points outside the opening
        thetas = np.linspace(-np.pi, np.pi, cfg.rim_angles, endpoint=False)
        dirs = np.column_stack([np.cos(thetas), np.sin(thetas)])
        mids = centre + radius * dirs
        # (sloped bowl walls allow only a shallow pinch)
        lowest = g.finger_length / 2 + cfg.tip_clearance
        z_hs = [max(top - depth, lowest) for depth in cfg.rim_depths]
        # per angle, the vessel's points between the fingers (closing radially through the rim point)
        between = np.abs(dirs @ (pts[:, :2] - centre).T - radius) <= cfg.rim_opening / 2
        per = len(z_hs)
        at, yaws = np.repeat(mids, per, axis=0), np.repeat(thetas, per)
        zs = self._zs_at(scene, at, np.tile(z_hs, len(mids)))
        widths = np.full(len(zs), cfg.rim_opening)
        n = (self._hits(others, at, yaws, zs, widths)
             + self._hits(pts, at, yaws, zs, widths, ignore=np.repeat(between, per, axis=0)))
        out = []
        for a, theta in enumerate(thetas):
            clear = np.flatnonzero(n[a * per:(a + 1) * per] <= cfg.collision_points)
            if not len(clear):
                continue
            z_h, z, mid = z_hs[clear[0]], zs[a * per + clear[0]], mids[a]  # the deepest pinch that clears
            score = 0.25 + 0.2 * min(z_h / 0.05, 1.0) + cfg.repaired_weight * repaired
            out.append(Grasp((float(mid[0]), float(mid[1]), float(z)), float(_wrap(theta)), cfg.rim_opening,
                             float(score), k, "rim", self._floor(scene, z, z_h, lowest)))
        return out

    def _cluster_grasps(self, scene: SceneCloud, k: int, pts: np.ndarray,
                        below: np.ndarray | None = None) -> list[Grasp]:
        """Grasps across the object ``pts`` whole (cluster ``k``'s points, or the part ``_top_grasps`` took for
        one object, with the rest of the cluster in ``below``: the fingers and the palm must clear those points as
        they clear the object's own, but what lies between the fingers there may be the object's own body)."""
        cfg = self.config
        h = scene.height(pts)
        top = _percentile(h, cfg.top_percentile)
        g = cfg.gripper
        # pad centre heights above the table, deepest first: never lower than the fingertips allow, nor so low
        # that the palm comes within ``palm_headroom`` of the object's highest points (a bottle's neck)
        lowest = max(g.finger_length / 2 + cfg.tip_clearance,
                     _percentile(h, cfg.max_percentile) + cfg.palm_headroom - g.palm_above_tcp)
        heights = sorted({max(top - depth, lowest) for depth in cfg.grasp_depths})
        # Everything the descending fingers pass must fit between them: the footprint of all points above the
        # fingertips (the top view sees the top faces, which a band of wall points alone would miss).
        footprints = []  # (height, footprint, the centre of its box, the footprint about that centre)
        for z_h in heights:
            above = np.compress(h > z_h - g.finger_length / 2, pts, axis=0)
            xy = (above if len(above) >= 5 else pts)[:, :2]
            centre_xy = (highs(xy) + lows(xy)) / 2
            footprints.append((z_h, xy, centre_xy, xy - centre_xy))
        xy = footprints[0][1]  # the closing directions follow the deepest footprint's principal axes
        cov = covariance(xy) if len(xy) > 2 else np.eye(2)
        w, v = np.linalg.eigh(cov)
        minor = v[:, 0]
        base_yaw = float(np.arctan2(minor[1], minor[0]))
        others = scene.others(k, self._reach())
        repaired = scene.repaired_share(k)
        # every closing direction at every height (deepest first) whose opening fits the stroke, checked at once;
        # per direction, the deepest grasp the neighbours allow
        offsets = np.radians(cfg.yaw_offsets_deg)
        dirs = np.column_stack([np.cos(base_yaw + offsets), np.sin(base_yaw + offsets)])
        # per direction (rows) and footprint (columns), the footprint's extent along the direction, and that of its
        # points in the pads' strip through the grasp's centre (every grasp is centred on its footprint's box)
        los, his, strips = (np.empty((len(dirs), len(footprints))) for _ in range(3))
        for f, (_, _, _, centred_xy) in enumerate(footprints):
            along = dirs @ centred_xy.T
            los[:, f], his[:, f] = along.min(1), along.max(1)
            if cfg.whole_span_share:
                strips[:, f] = strip_spans(centred_xy, dirs, g.finger_depth, along)
        # the pairs whose opening fits the stroke and whose pads close across the object's widest part (not where
        # two touching objects meet: ``whole_span_share``), direction by direction, deepest first within each
        fits = (his - los) + cfg.min_width_margin <= g.stroke_m
        if cfg.whole_span_share:
            fits &= strips >= cfg.whole_span_share * (his - los)
        group, f = np.nonzero(fits)
        if not len(group):
            return []
        yaws = base_yaw + offsets[group]
        centres = np.array([footprints[j][2] for j in f])
        mids = centres + dirs[group] * ((los + his)[group, f] / 2)[:, None]
        widths = np.minimum((his - los)[group, f] + cfg.width_margin, g.stroke_m)  # a wide object: the whole stroke
        z_hs = np.array([footprints[j][0] for j in f])
        zs = self._zs_at(scene, mids, z_hs)  # the grasp point height in the base frame
        out = []
        own = pts if below is None else np.concatenate([pts, below])
        chosen = self._first_clear(others, own, group, mids, yaws, zs, widths)
        # the shoulder's penalty per direction (rows) and footprint height (columns), the neck's per direction
        penalty, necked = np.zeros((len(dirs), len(footprints))), np.zeros(len(dirs))
        if chosen and cfg.shoulder_weight:
            narrowing = np.column_stack([shoulder(pts, h, dirs, z_h, g.finger_length) for z_h, *_ in footprints])
            penalty = cfg.shoulder_weight * np.clip(narrowing / cfg.shoulder_free - 1.0, 0.0, 1.0)
        if chosen and cfg.neck_weight:
            ratio = neck(pts, h, dirs, top, cfg.neck_band)
            necked = cfg.neck_weight * np.clip((cfg.neck_free - ratio) / (cfg.neck_free - cfg.neck_full), 0.0, 1.0)
        for j in chosen:
            i, mid, yaw, width, z_h, z = group[j], mids[j], yaws[j], widths[j], z_hs[j], zs[j]
            centred = 1.0 - min(abs(cfg.yaw_offsets_deg[i]) / 90.0, 1.0)
            score = (0.5 * centred + 0.3 * (1 - width / g.stroke_m) + 0.2 * min(z_h / 0.05, 1.0)
                     + cfg.repaired_weight * repaired)
            # the shoulder and the neck are two signs of one shape: the larger of the two counts, so that a
            # bottle loses no more than either weight and stays above opaque objects it ranked above before
            score -= max(float(penalty[i, f[j]]), float(necked[i]))
            out.append(Grasp((float(mid[0]), float(mid[1]), float(z)), float(_wrap(yaw)), float(width),
                             float(score), k, "whole", self._floor(scene, z, z_h, lowest)))
        return out

    def _reach(self) -> float:
        """How far from a cluster's footprint box the open gripper can touch anything: a grasp centre lies in
        the box, and a finger reaches half the stroke plus its thickness along the closing direction and half
        its depth across; the palm half its width and depth (plus the clearance kept from neighbours)."""
        cfg, g = self.config, self.config.gripper
        along = max(g.stroke_m / 2 + g.finger_thickness, g.palm_width / 2)
        across = max(g.finger_depth / 2, g.palm_depth / 2)
        return float(np.hypot(along, across)) + cfg.neighbour_clearance + 0.01

    @staticmethod
    def _floor(scene: SceneCloud, z: float, z_h: float, lowest: float) -> float:
        """The TCP height (base frame) of a grasp at TCP height ``z`` whose pads' centre is ``z_h`` above the
        table, lowered until that centre is ``lowest`` above it."""
        return float(z - (z_h - min(lowest, z_h)) / scene.plane[2])

    @staticmethod
    def _zs_at(scene: SceneCloud, xy: np.ndarray, heights: np.ndarray) -> np.ndarray:
        """TCP heights in the base frame of grasps at ``xy`` (M x 2) whose pads' centre lies ``heights`` (M)
        above the table."""
        n, d = scene.plane[:3], scene.plane[3]
        # point on the plane below (x, y): n . (x, y, z) + d = 0, then raise by height along z
        z_plane = -(n[0] * xy[:, 0] + n[1] * xy[:, 1] + d) / n[2]
        return z_plane + np.asarray(heights, dtype=np.float64) / n[2]

    def _first_clear(self, others: np.ndarray, pts: np.ndarray, group: np.ndarray, mids: np.ndarray,
                     yaws: np.ndarray, zs: np.ndarray, widths: np.ndarray, headroom: float = 0.0) -> list[int]:
        """Candidate grasps in groups (``group``: each candidate's group, groups contiguous, each in order of
        preference): per group, the index of its first candidate that clears the scene, for the groups that
        have one, in group order. A candidate clears when the object's own points (``pts``, with the palm's
        ``headroom``) and the other objects' (``others``, kept ``neighbour_clearance`` away and out from
        between the fingers) put no more than ``collision_points`` in its way. All groups' next candidates are
        checked together, and a group's later ones only while it has none that clears; the object's own points
        only for candidates its neighbours leave clear."""
        cfg = self.config
        firsts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
        ends = np.concatenate((firsts[1:], [len(group)]))
        at, chosen = firsts.copy(), np.full(len(firsts), -1)
        todo = np.arange(len(firsts))  # groups still without a clear candidate
        while len(todo):
            idx = at[todo]
            n = self._hits(others, mids[idx], yaws[idx], zs[idx], widths[idx], cfg.neighbour_clearance, between=True)
            near = n <= cfg.collision_points
            if near.any():
                sub = idx[near]
                n[near] += self._hits(pts, mids[sub], yaws[sub], zs[sub], widths[sub], headroom=headroom)
            clear = n <= cfg.collision_points
            chosen[todo[clear]] = idx[clear]
            at[todo] += 1
            todo = todo[~clear & (at[todo] < ends[todo])]
        return [int(j) for j in chosen if j >= 0]

    def _hits(self, points: np.ndarray, mids: np.ndarray, yaws, zs, widths, clearance: float = 0.0,
              between: bool = False, headroom: float = 0.0, ignore: np.ndarray | None = None) -> np.ndarray:
        """Per grasp, the scene points in the way of the open gripper coming straight down to it (grasp i at
        ``mids[i]`` (x, y), ``yaws[i]``, TCP height ``zs[i]``, opening ``widths[i]``): inside either finger's
        footprint above the fingertips, or inside the palm's footprint above the palm's underside, both grown
        by ``clearance``, or inside the wrist's circle (``wrist_radius``, grown alike) above the flange; with
        ``between``, also points in the space between the fingers (another object there would be grasped with the
        target); ``headroom`` lowers the palm's underside further (for a top whose depth is uncertain). Every
        point counts all the way up (the descent sweeps through it), and
        what the camera sees of an object stands on the table with solid matter below it, which the finger
        would meet too. ``ignore`` (grasps x points, bool): points that do not count for that grasp."""
        g = self.config.gripper
        zs = np.asarray(zs, dtype=np.float64)
        if len(zs) > HITS_CHUNK:  # a grasp per row of points: a few rows at a time bounds the memory
            return np.concatenate([self._hits(points, mids[i:i + HITS_CHUNK], yaws[i:i + HITS_CHUNK],
                                              zs[i:i + HITS_CHUNK], widths[i:i + HITS_CHUNK], clearance, between,
                                              headroom, None if ignore is None else ignore[i:i + HITS_CHUNK])
                                   for i in range(0, len(zs), HITS_CHUNK)])
        m = clearance
        tip = -g.finger_length / 2 - m  # the fingertips' lowest reach below the TCP
        underside = g.palm_above_tcp - m - headroom  # the palm's underside above it (higher than the tips)
        high = points[:, 2] > zs.min() + tip if len(points) and len(zs) else np.zeros(len(points), bool)
        pts = np.compress(high, points, axis=0)
        if len(pts) == 0:
            return np.zeros(len(zs), int)
        if ignore is not None:
            ignore = np.compress(high, ignore, axis=1)
        # the few points high enough to reach the wrist go last (their columns then are views, not copies)
        tall = pts[:, 2] > zs.min() + g.tcp_offset - m
        low = len(pts) - np.count_nonzero(tall)
        if low < len(pts):
            order = np.argsort(tall, kind="stable")
            pts = pts[order]
            ignore = None if ignore is None else ignore[:, order]
        yaws, half = np.asarray(yaws, dtype=np.float64), np.asarray(widths, dtype=np.float64)[:, None] / 2
        c, s = np.cos(yaws), np.sin(yaws)
        # each point's coordinates along (u) and across (v) every grasp's closing direction, about its centre: one
        # matrix product for all grasps (a grasp per row)
        count = len(zs)
        axes = np.empty((2 * count, 2))  # (2 x grasps) x 2: the closing directions, then the directions across
        axes[:count, 0], axes[:count, 1], axes[count:, 0], axes[count:, 1] = c, s, -s, c
        uv = axes @ pts[:, :2].T
        uv -= np.concatenate([c * mids[:, 0] + s * mids[:, 1], -s * mids[:, 0] + c * mids[:, 1]])[:, None]
        u, v = np.abs(uv, out=uv)[:count], uv[count:]  # (in place: grasps x points arrays are most of the cost)
        dz = pts[None, :, 2] - zs[:, None]
        inner = 0.0 if between else half  # from the centre: the whole closing space counts
        finger = (u > inner) & (u < half + g.finger_thickness + m)
        finger &= v < g.finger_depth / 2 + m
        finger &= dz > tip
        palm = u < g.palm_width / 2 + m
        palm &= v < g.palm_depth / 2 + m
        palm &= dz > underside
        finger |= palm
        if low < len(pts):
            ut, vt = u[:, low:], v[:, low:]
            wrist = ut * ut + vt * vt < (self.config.wrist_radius + m) ** 2
            finger[:, low:] |= wrist & (dz[:, low:] > g.tcp_offset - m)
        if ignore is not None:
            finger &= ~ignore
        return np.count_nonzero(finger, axis=1)


def _inside_outline(outline: np.ndarray, xy: np.ndarray, margin: float) -> np.ndarray | None:
    """Which of the points ``xy`` lie inside the convex outline of the points ``outline`` (2-D) grown by
    ``margin``; None when they have no outline (fewer than three points, all on a line)."""
    try:
        corners = outline[ConvexHull(outline).vertices]
    except (QhullError, ValueError):
        return None
    centre = corners.mean(0)
    out = corners - centre
    corners = corners + out * (margin / np.maximum(np.linalg.norm(out, axis=1), 1e-9))[:, None]
    return Delaunay(corners).find_simplex(xy) >= 0


def _percentile(x: np.ndarray, q: float) -> float:
    """``np.percentile(x, q)`` (linear interpolation) of a 1-D array, from a partial sort: the same number at a
    fraction of the cost on the short arrays of a grasp search."""
    pos = (len(x) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(x) - 1)
    part = np.partition(x, (lo, hi))
    return float(part[lo] + (part[hi] - part[lo]) * (pos - lo))


def _wrap(yaw: float) -> float:
    """Yaw of a symmetric parallel-jaw grasp folded into (-pi/2, pi/2]."""
    yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2
    return yaw if yaw > -np.pi / 2 else yaw + np.pi
