"""Depth -> points in the robot base frame, table plane removal (RANSAC) and object clustering (DBSCAN).

All points are Nx3 float64 metres in the robot ``base`` frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from pipeline.errors import DistillGraspError
from pipeline.metrics import MOVED_M
from pipeline.types import CameraIntrinsics, RGBDFrame, check_depth


class PerceptionError(DistillGraspError):
    """The scene cannot be segmented (no points, no table)."""


@dataclass(frozen=True)
class CloudConfig:
    voxel: float = 0.004  # metres
    max_range: float = 2.0  # depth beyond this is ignored (metres)
    plane_distance: float = 0.006  # RANSAC inlier distance to the table plane
    plane_iterations: int = 200
    min_table_share: float = 0.2  # the table must hold this share of the points
    min_height: float = 0.008  # object points must be this far above the table
    cluster_eps: float = 0.009  # in the table plane
    footprint_cell: float = 0.002  # clustering counts the points in footprint cells this wide (metres)
    cluster_min_points: int = 15
    min_cluster_points: int = 60  # fewer voxels than this is a fragment (edge pixels), not an object
    min_cluster_extent: float = 0.015  # metres: a footprint smaller than this in both directions is a fragment
    arc_gap: float = 0.025  # clusters closer than this whose tops lie on one circle are one open vessel's rim
    arc_top_band: float = 0.012  # rim points: this close to the cluster's top
    arc_fit_rms: float = 0.004  # metres: largest RMS distance of rim points from the fitted circle
    arc_max_radius: float = 0.09  # metres: no glass is wider


@dataclass
class SceneCloud:
    """Segmented scene: table plane (n . p + d = 0, n up), object points and their cluster labels.

    ``repaired`` holds, per cluster, the share of its upper half's points whose depth the completer supplied or
    changed (no raw reading, or one more than 1 cm away): high for glass the camera could not see.
    """

    plane: np.ndarray
    object_points: np.ndarray
    labels: np.ndarray  # per object point, -1 = noise
    clusters: list[np.ndarray] = field(default_factory=list)
    repaired: list[float] = field(default_factory=list)
    cluster_labels: list[int] = field(default_factory=list)  # the DBSCAN label of each cluster
    point_repaired: list[np.ndarray] = field(default_factory=list)  # per cluster, each point's repaired share

    def height(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.plane[:3] + self.plane[3]

    def others(self, k: int, reach: float | None = None) -> np.ndarray:
        """Every object point that is not cluster ``k``'s (what its grasps must not touch); with ``reach``
        (metres), only those within that distance of the cluster's footprint box in x and y."""
        pts = self.object_points
        if self.cluster_labels:
            pts = np.compress(self.labels != self.cluster_labels[k], pts, axis=0)
        if reach is not None and k < len(self.clusters) and len(pts):
            xy = self.clusters[k][:, :2]
            lo, hi = lows(xy) - reach, highs(xy) + reach
            x, y = pts[:, 0], pts[:, 1]
            pts = np.compress((x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]), pts, axis=0)
        return pts

    def repaired_share(self, k: int) -> float:
        """Cluster ``k``'s repaired share (0 for a cluster without one)."""
        return self.repaired[k] if k < len(self.repaired) else 0.0


REPAIR_THRESHOLD_M = MOVED_M
# A pixel the camera left empty between two surfaces it did measure (the shadow a stereo camera leaves along an
# object's edge): the measured readings in the BETWEEN_WINDOW-pixel square around it span more than
# BETWEEN_JUMP_M in depth, and the completed depth there lies more than BETWEEN_GAP_M from both ends of that span.
BETWEEN_WINDOW = 5
BETWEEN_JUMP_M = 0.02
BETWEEN_GAP_M = 0.006


def lows(a: np.ndarray) -> np.ndarray:
    """``a.min(0)`` of an N x D array, column by column: NumPy reduces a tall, narrow array along its first axis
    an order of magnitude slower (2 ms against 0.1 ms for a 320x240 frame's points)."""
    return np.array([a[:, j].min() for j in range(a.shape[1])])


def highs(a: np.ndarray) -> np.ndarray:
    """``a.max(0)`` of an N x D array, column by column (see ``lows``)."""
    return np.array([a[:, j].max() for j in range(a.shape[1])])


def frame_points(frame: RGBDFrame, raw_depth: np.ndarray | None = None, max_range: float = 2.0,
                 drop_bridged: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Valid depth pixels of ``frame`` as Nx3 points in the base frame (in pixel order), and per point whether
    the depth was repaired (``raw_depth`` missing there or more than 1 cm away; all False without
    ``raw_depth``). ``drop_bridged`` (with ``raw_depth``): the holes the completer bridged between two measured
    surfaces (``filled_between``) are left out."""
    if frame.T_base_cam is None:
        raise PerceptionError("frame has no camera pose (T_base_cam); cannot place points in the robot frame")
    K, depth = frame.intrinsics, frame.depth
    check_depth(depth, "depth", (K.height, K.width))
    keep = (depth > 0) & (depth < max_range)
    if drop_bridged and raw_depth is not None:
        keep &= ~filled_between(depth, np.asarray(raw_depth))
    keep = keep.ravel()  # (flat: np.compress costs a fraction of a 2-D index)
    every = bool(keep.all())  # a completed frame: every pixel holds a point, nothing to select

    def kept(values: np.ndarray) -> np.ndarray:
        return values if every else np.compress(keep, values)

    z = kept(depth.ravel()).astype(np.float64)
    T = np.ascontiguousarray(frame.T_base_cam, dtype=np.float64)
    pts = np.empty((len(z), 3))
    for i, ray in enumerate(_base_rays(K, T.tobytes())):  # a coordinate at a time: a BLAS product of an N x 3
        np.add(kept(ray) * z, T[i, 3], out=pts[:, i])  # by a 3 x 3 costs several times more
    if raw_depth is None:
        repaired = np.zeros(len(z), bool)
    else:
        raw = kept(np.asarray(raw_depth).ravel())
        repaired = (raw <= 0) | (np.abs(raw - z) > REPAIR_THRESHOLD_M)
    return pts, repaired


def filled_between(depth: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Where a completer filled a hole of the ``raw`` image with depth that lies between two surfaces the camera
    measured around it (the HxW mask; see ``BETWEEN_*``). A stereo camera leaves such holes along the edges of
    opaque objects, and a network bridges them with a ramp from the object's top to the table: points floating
    in mid-air around the object, which widen its footprint and raise its top. Glass is left alone: where the
    camera missed a glass's surface it measured no near surface to bridge from."""
    raw = raw.astype(np.float32, copy=False)
    window = np.ones((BETWEEN_WINDOW, BETWEEN_WINDOW), np.uint8)
    near = cv2.erode(np.where(raw > 0, raw, np.float32(np.inf)), window)
    far = cv2.dilate(raw, window)
    return ((raw <= 0) & (far - near > BETWEEN_JUMP_M) & (depth - near > BETWEEN_GAP_M)
            & (far - depth > BETWEEN_GAP_M))


@functools.lru_cache(maxsize=4)
def _base_rays(K: CameraIntrinsics, T_base_cam: bytes) -> tuple[np.ndarray, ...]:
    """Per pixel (flattened, row by row), the base-frame x, y and z of the ray through it per metre of depth:
    ``R @ ((u - cx) / fx, (v - cy) / fy, 1)`` for the camera pose ``T_base_cam`` (a 4 x 4 float64 array's
    bytes). A fixed camera keeps its pose, so every frame after the first reuses them."""
    R = np.frombuffer(T_base_cam).reshape(4, 4)[:3, :3]
    v, u = np.mgrid[:K.height, :K.width]
    ray_x, ray_y = (u.ravel() - K.cx) / K.fx, (v.ravel() - K.cy) / K.fy
    rays = tuple(R[i, 0] * ray_x + R[i, 1] * ray_y + R[i, 2] for i in range(3))
    for ray in rays:
        ray.flags.writeable = False  # shared between calls
    return rays


def voxel_average(points: np.ndarray, values: np.ndarray, voxel: float,
                  corner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One point per occupied cube of a ``voxel``-sized grid (its ``corner`` by default half a voxel below the
    points' lowest corner, as open3d's ``voxel_down_sample`` places it): the mean of the points in it, and the
    mean of their ``values``. Rows come out in the grid's order."""
    corner = lows(points) - voxel / 2 if corner is None else corner
    idx = np.floor((points - corner) / voxel).astype(np.int64)
    dims = highs(idx) + 1
    key = (idx[:, 0] * dims[1] + idx[:, 1]) * dims[2] + idx[:, 2]
    cells, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    means = np.column_stack([np.bincount(inverse, points[:, j], len(cells)) for j in range(3)]) / counts[:, None]
    return means, np.bincount(inverse, values, len(cells)) / counts


def fit_plane(points: np.ndarray, distance: float, iterations: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The plane (a, b, c, d; unit normal, n . p + d = 0) holding the most points within ``distance``, and the
    mask of those points (``_fit_plane``)."""
    plane, h = _fit_plane(points, distance, iterations, seed)
    return plane, np.abs(h) < distance


def _fit_plane(points: np.ndarray, distance: float, iterations: int, seed: int = 0, sample: int = 2000,
               refit: int = 10000) -> tuple[np.ndarray, np.ndarray]:
    """``fit_plane``'s plane and every point's signed distance from it (what segmentation needs next): RANSAC
    over ``iterations`` three-point hypotheses, all scored at once on a seeded sample of ``sample`` points, the
    winner refitted by least squares to its inliers among about ``refit`` points spread evenly over the cloud.
    The same points and seed give the same plane."""
    rng = np.random.default_rng(seed)
    sub = points if len(points) <= sample else np.take(points, rng.integers(0, len(points), sample), axis=0)
    sub = sub.astype(np.float32)
    a, b, c = (sub[i] for i in rng.integers(0, len(sub), (3, iterations)))
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-12
    if not ok.any():
        return np.array([0.0, 0.0, 1.0, 0.0]), np.full(len(points), np.inf)
    normals = normals[ok] / norms[ok, None]
    offsets = -(normals * a[ok]).sum(1)
    dist = sub @ normals.T  # (point, hypothesis); in place from here: temporaries of this size cost more than
    np.add(dist, offsets, out=dist)  # the arithmetic
    counts = np.count_nonzero(np.abs(dist, out=dist) < distance, axis=0)
    best = int(np.argmax(counts))
    n, d = normals[best].astype(np.float64), float(offsets[best])
    fit = points[::max(1, len(points) // refit)]  # evenly strided: enough points for a least-squares plane
    inliers = np.abs(fit @ n + d) < distance
    if inliers.sum() >= 3:  # least squares: the normal is the direction of least spread of the inliers
        held = np.compress(inliers, fit, axis=0)  # (np.compress: rows of an N x 3 array, 4x faster than fit[inliers])
        centre = np.array([held[:, j].mean() for j in range(3)])  # (column by column, as in ``lows``)
        spread = held - centre
        n = np.linalg.eigh(spread.T @ spread)[1][:, 0]
        d = -float(n @ centre)
    return np.array([*n, d], dtype=np.float64), points @ n + d


def table_aligned_pose(frame: RGBDFrame, table_point: tuple[float, float, float] = (0.75, 0.0, 0.0),
                       cfg: CloudConfig = CloudConfig()) -> np.ndarray:
    """A stand-in ``T_base_cam`` for a frame without a hand-eye calibration (a recording): the largest plane in
    view becomes the table top z = 0, its point under the image centre lies at ``table_point``, and base x
    points away from the camera along the table. Enough to find and draw top-down grasps; not to move an arm."""
    pts = frame.intrinsics.depth_to_points(frame.depth).reshape(-1, 3)
    pts = pts[(pts[:, 2] > 0) & (pts[:, 2] < cfg.max_range)]
    if len(pts) < 100:
        raise PerceptionError(f"only {len(pts)} valid depth points; cannot find the table")
    pts = voxel_average(pts.astype(np.float64), np.zeros(len(pts)), cfg.voxel)[0]
    plane, inliers = fit_plane(pts, cfg.plane_distance, cfg.plane_iterations)
    if inliers.sum() < cfg.min_table_share * len(pts):
        raise PerceptionError(f"no table found: the largest plane holds {int(inliers.sum())} of {len(pts)} points")
    n, d = plane[:3], float(plane[3])
    if n[2] > 0:  # the table's normal points up, towards the camera (which looks along +z)
        n, d = -n, -d
    if abs(n[2]) < 0.2:
        raise PerceptionError("the largest plane in view is seen edge-on; cannot take it for the table")
    t = -d / n[2]  # where the optical axis meets the table
    origin = np.array([0.0, 0.0, t])
    x = np.array([0.0, 0.0, 1.0]) - n[2] * n  # the viewing direction, laid on the table
    x /= np.linalg.norm(x)
    T_cam_table = np.eye(4)
    T_cam_table[:3, 0], T_cam_table[:3, 1], T_cam_table[:3, 2], T_cam_table[:3, 3] = x, np.cross(n, x), n, origin
    T_base_table = np.eye(4)
    T_base_table[:3, 3] = table_point
    return T_base_table @ np.linalg.inv(T_cam_table)


def segment(points: np.ndarray, cfg: CloudConfig = CloudConfig(), seed: int = 0,
            repaired: np.ndarray | None = None) -> SceneCloud:
    """Remove the table plane, average what stands on it on a ``cfg.voxel`` grid and cluster it (``repaired``:
    per-point flags from ``frame_points``, averaged per voxel and per cluster). The plane is fitted to the raw
    points (a seeded sample scores the hypotheses), so only the few points above it are averaged (on the grid the
    whole cloud would have) and clustered."""
    if len(points) < 100:
        raise PerceptionError(f"only {len(points)} valid depth points; nothing to segment")
    points = np.asarray(points, dtype=np.float64)
    plane, h = _fit_plane(points, cfg.plane_distance, cfg.plane_iterations, seed)
    table = np.count_nonzero(np.abs(h) < cfg.plane_distance)
    if table < cfg.min_table_share * len(points):
        raise PerceptionError(f"no table found: the largest plane holds {table} of {len(points)} points")
    if plane[2] < 0:  # normal pointing up (base z)
        plane, h = -plane, np.negative(h, out=h)
    if plane[2] < 0.8:
        raise PerceptionError(f"the dominant plane is not horizontal (normal {np.round(plane[:3], 2).tolist()})")
    above = h > cfg.min_height
    if cfg.min_height < cfg.plane_distance:  # no table point is an object point
        above &= h >= cfg.plane_distance
    if not above.any():
        return SceneCloud(plane, np.zeros((0, 3)), np.zeros(0, int), [])
    share = np.zeros(int(above.sum())) if repaired is None else repaired[above].astype(np.float64)
    obj, obj_share = voxel_average(np.compress(above, points, axis=0), share, cfg.voxel,
                                   corner=lows(points) - cfg.voxel / 2)
    obj_h = obj @ plane[:3] + plane[3]
    # Cluster the footprint (x, y) so that a vessel's rim and the bottom seen inside it stay one object.
    labels = cluster_footprint(obj[:, :2], cfg.cluster_eps, cfg.cluster_min_points, cfg.footprint_cell)
    labels = _merge_rim_arcs(obj, labels, plane, cfg)
    # each cluster's points, in their order in ``obj`` (one stable sort instead of a mask per cluster)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(labels.max() + 2))
    members = [order[bounds[k]:bounds[k + 1]] for k in range(labels.max() + 1)]

    def is_object(k: int) -> bool:
        xy = obj[members[k], :2]
        return len(xy) >= cfg.min_cluster_points and float((highs(xy) - lows(xy)).max()) >= cfg.min_cluster_extent

    kept = [k for k in range(labels.max() + 1) if is_object(k)]
    return SceneCloud(plane, obj, labels, [obj[members[k]] for k in kept],
                      [upper_share(obj_h[members[k]], obj_share[members[k]]) for k in kept], kept,
                      [obj_share[members[k]] for k in kept])


def cluster_footprint(xy: np.ndarray, eps: float, min_points: int, cell: float) -> np.ndarray:
    """DBSCAN of 2-D points (labels 0, 1, ...; -1 = noise), run on the occupied ``cell``-wide squares of the
    footprint, each weighted by the points it holds: a square is a core when the points within ``eps`` of its
    centroid, its own included, number at least ``min_points``; cores within ``eps`` of each other form one
    cluster, and a square within ``eps`` of a core joins the cluster of its nearest such core. Seen from above, an
    object's wall stacks many points on few squares, so this is DBSCAN of the points themselves (to a cell's
    width) at a fraction of the neighbour searches. No step depends on the order of the neighbour pairs, so the
    tree that finds them is built for speed (split at the midpoint, unbalanced)."""
    idx = np.floor((xy - lows(xy)) / cell).astype(np.int64)
    _, inverse, weight = np.unique(idx[:, 0] * (idx[:, 1].max() + 1) + idx[:, 1], return_inverse=True,
                                   return_counts=True)
    centres = np.column_stack([np.bincount(inverse, xy[:, j]) for j in range(2)]) / weight[:, None]
    n = len(centres)
    pairs = cKDTree(centres, balanced_tree=False, compact_nodes=False).query_pairs(eps, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    core = weight + np.bincount(i, weight[j], n) + np.bincount(j, weight[i], n) >= min_points
    ci, cj = core[i], core[j]
    both = ci & cj
    _, component = connected_components(_graph(i[both], j[both], n), directed=False)
    labels = np.where(core, component, -1)
    # border squares: the cluster of the nearest core neighbour (the lower-numbered cluster at equal distance)
    mixed = np.flatnonzero(ci != cj)  # the pairs of a core and a square that is not one
    border, by = np.where(ci[mixed], j[mixed], i[mixed]), np.where(ci[mixed], i[mixed], j[mixed])
    near, gap = component[by], np.hypot(*(centres[border] - centres[by]).T)
    order = np.lexsort((near, gap, border))
    first = order[np.flatnonzero(np.diff(border[order], prepend=-1))]
    labels[border[first]] = near[first]
    used, labels = np.unique(labels, return_inverse=True)  # clusters numbered 0, 1, ... in order, noise -1
    labels = labels - int(used[0] < 0)
    return labels[inverse]


def _graph(i: np.ndarray, j: np.ndarray, n: int) -> csr_matrix:
    """The n-node sparse graph with an edge from ``i[e]`` to ``j[e]`` for every e, built in compressed rows
    directly: the edges grouped by ``i`` with a radix sort (numpy's stable sort of 16-bit keys), which costs a
    third of the general conversion from coordinates (whose sort and duplicate summing connected components never
    needs)."""
    order = np.argsort(i.astype(np.uint16) if n <= 1 << 16 else i, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(i, minlength=n), out=indptr[1:])
    return csr_matrix((np.ones(len(i)), j[order], indptr), shape=(n, n))


def upper_share(h: np.ndarray, share: np.ndarray) -> float:
    """Mean repaired share of a cluster's upper half (points above its median height). A camera looking down
    measures an opaque object's top faces directly and misses glass tops; the lower points also hold whatever
    a completer smeared around an object's outline, which would make opaque objects look repaired."""
    return float(share[h >= median(h)].mean())


def median(x: np.ndarray) -> float:
    """``np.median`` of a 1-D array without NaN (the same number), from one partial sort: a grasp search takes
    the median of many short arrays, where ``np.median``'s own overhead is most of its cost."""
    n = len(x)
    if n == 0:
        return float("nan")
    m = n // 2
    if n % 2:
        return float(np.partition(x, m)[m])
    part = np.partition(x, (m - 1, m))
    return (float(part[m - 1]) + float(part[m])) / 2


def fit_circle(xy: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares circle through 2-D points (Kasa fit): centre, radius, RMS distance of the points to it."""
    a = np.column_stack([2 * xy, np.ones(len(xy))])
    b = (xy**2).sum(1)
    (cx, cy, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    centre = np.array([cx, cy])
    radius = float(np.sqrt(max(c + cx * cx + cy * cy, 0.0)))
    rms = float(np.sqrt(np.mean((np.linalg.norm(xy - centre, axis=1) - radius) ** 2)))
    return centre, radius, rms


def _merge_rim_arcs(obj: np.ndarray, labels: np.ndarray, plane: np.ndarray, cfg: CloudConfig) -> np.ndarray:
    """An open vessel whose floor sits in the table band shows only its walls; where the camera misses the thin
    sides of the rim, the near and far walls come out as two clusters. Merge two nearby clusters when their
    tops are level and their rim points lie on one circle that is not wider than a glass."""
    labels = labels.copy()
    h = obj @ plane[:3] + plane[3]
    merged = True
    while merged:
        merged = False
        ids = [k for k in range(labels.max() + 1) if (labels == k).sum() >= cfg.cluster_min_points]
        rims = {}
        for k in ids:
            hk = h[labels == k]
            rims[k] = (hk.max(), obj[labels == k][hk > hk.max() - cfg.arc_top_band, :2])
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                (ta, ra), (tb, rb) = rims[a], rims[b]
                if abs(ta - tb) > cfg.arc_top_band or len(ra) < 5 or len(rb) < 5:
                    continue
                pa, pb = obj[labels == a, :2], obj[labels == b, :2]
                if (np.maximum(lows(pa) - highs(pb), lows(pb) - highs(pa)) > cfg.arc_gap).any():
                    continue  # bounding boxes already too far apart
                if cKDTree(pa).query(pb, distance_upper_bound=cfg.arc_gap)[0].min() > cfg.arc_gap:
                    continue
                both = np.concatenate([ra, rb])
                _, radius, rms = fit_circle(both)
                wide = (highs(both) - lows(both)).max() > radius
                if rms <= cfg.arc_fit_rms and radius <= cfg.arc_max_radius and wide:
                    labels[labels == b] = a
                    merged = True
                    break
            if merged:
                break
    return labels
