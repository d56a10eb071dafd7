"""Procedural glassware and opaque distractors as meshes plus convex collision parts.

Every glass object is a thin-walled solid of revolution about its z axis, built from a closed 2-D profile
(radius, height) that runs from the axis at the bottom, up the outside, over the lip and down the inside.
Heights and radii are metres; the object's origin is the centre of its base, z up.

Collision shapes are compounds of convex parts: closed shapes (bottles, vases) are stacked frustum slabs that
follow the profile (so a bottle's neck is as narrow to the fingers as it looks), and open vessels (cups,
tumblers, bowls, wine-glass bowls) are a base plus wall segments, so a finger can enter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GLASS_KINDS = ("bottle", "cup", "tumbler", "wine_glass", "bowl", "vase")
# laboratory glassware (as in ClearPose scenes)
LAB_KINDS = ("funnel", "flask", "beaker", "tube", "dish", "round_flask", "graduated_cylinder")
OPAQUE_KINDS = ("box", "cylinder", "sphere")
GLASS_DENSITY = 2500.0  # kg/m^3
SEGMENTS = 36  # angular resolution of the visual mesh


@dataclass
class ObjectModel:
    """A spawnable object.

    vertices: Nx3 float (metres, object frame), faces: Mx3 int (counter-clockwise seen from outside).
    collision_parts: list of Kx3 point sets, each collided as its convex hull.
    """

    kind: str
    transparent: bool
    vertices: np.ndarray
    faces: np.ndarray
    collision_parts: list[np.ndarray]
    mass: float
    height: float
    max_radius: float
    rgba: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 1.0)
    com: np.ndarray = field(default_factory=lambda: np.zeros(3))
    profile: "Profile | None" = None  # glassware: the profile it was revolved from (liquid fill, rendering)


# --------------------------------------------------------------------------------------------------------
# Profiles: each returns the outer radius at heights z (0 = base, h = lip) plus inner cavity data.


@dataclass
class Profile:
    z: np.ndarray  # outer profile heights, increasing, from 0 to h
    r: np.ndarray  # outer radii at those heights
    wall: float  # wall thickness
    floor: float  # height of the inner bottom (cavity floor)
    open_vessel: bool  # wide mouth: compound wall collision
    cavity_from: float  # cavity only above this height (wine glass: the bowl)


def _smooth_profile(zk, rk, n=24):
    """Monotone cubic-ish interpolation of key points (z increasing) onto n heights."""
    zk, rk = np.asarray(zk, float), np.asarray(rk, float)
    z = np.linspace(zk[0], zk[-1], n)
    # Catmull-Rom via numpy interp on a finer grid then light smoothing keeps it simple and monotone in z.
    r = np.interp(z, zk, rk)
    kernel = np.array([0.25, 0.5, 0.25])
    for _ in range(2):
        r[1:-1] = np.convolve(r, kernel, mode="same")[1:-1]
    return z, r


def _profile(kind: str, rng: np.random.Generator) -> Profile:
    u = rng.uniform
    if kind == "tumbler":
        h, r0 = u(0.08, 0.13), u(0.026, 0.036)
        z, r = _smooth_profile([0, h], [r0, r0 * u(1.0, 1.22)], 12)
        return Profile(z, r, u(0.002, 0.0035), u(0.006, 0.014), True, 0.0)
    if kind == "cup":
        h, r0 = u(0.07, 0.11), u(0.028, 0.035)
        bulge = u(1.0, 1.15)
        z, r = _smooth_profile([0, 0.15 * h, 0.6 * h, h], [r0 * 0.9, r0, r0 * bulge, r0 * u(0.95, 1.12)], 16)
        return Profile(z, r, u(0.0025, 0.004), u(0.005, 0.01), True, 0.0)
    if kind == "bowl":
        h, rt = u(0.045, 0.075), u(0.05, 0.075)
        rb = rt * u(0.45, 0.6)
        z, r = _smooth_profile([0, 0.1 * h, 0.5 * h, h], [rb, rb * 1.05, rt * 0.9, rt], 16)
        return Profile(z, r, u(0.003, 0.005), u(0.006, 0.01), True, 0.0)
    if kind == "bottle":
        h, rb = u(0.15, 0.24), u(0.025, 0.037)
        shoulder, rn = u(0.55, 0.72) * h, u(0.009, 0.014)
        neck = shoulder + u(0.15, 0.22) * h
        z, r = _smooth_profile([0, 0.05 * h, shoulder, neck, h], [rb * 0.96, rb, rb, rn, rn * u(1.0, 1.2)], 28)
        return Profile(z, r, u(0.002, 0.003), u(0.004, 0.008), False, 0.0)
    if kind == "vase":
        h, rb = u(0.15, 0.24), u(0.026, 0.036)
        belly, rn = u(1.05, 1.3) * rb, u(0.45, 0.7) * rb
        z, r = _smooth_profile([0, 0.35 * h, 0.75 * h, 0.9 * h, h],
                               [rb, belly, rn, rn * 1.05, rn * u(1.2, 1.6)], 28)
        return Profile(z, r, u(0.003, 0.005), u(0.008, 0.015), False, 0.0)
    if kind == "wine_glass":
        foot_r, stem_r = u(0.028, 0.036), u(0.0035, 0.005)
        stem_h, bowl_h, bowl_r = u(0.05, 0.075), u(0.07, 0.095), u(0.033, 0.04)
        zf = 0.005
        zs = zf + stem_h
        h = zs + bowl_h
        zk = [0, zf, zf + 0.004, zs - 0.006, zs, zs + 0.35 * bowl_h, zs + 0.75 * bowl_h, h]
        rk = [foot_r, foot_r * 0.9, stem_r * 1.6, stem_r, stem_r * 2.5, bowl_r, bowl_r * 0.97, bowl_r * u(0.78, 0.9)]
        z = np.concatenate([np.linspace(zk[i], zk[i + 1], 4, endpoint=False) for i in range(len(zk) - 1)] + [[h]])
        r = np.interp(z, zk, rk)
        wall = u(0.0015, 0.0025)
        return Profile(z, r, wall, zs + 0.012, True, zs)
    if kind == "beaker":  # straight walls, a slight flare at the lip, thin glass
        h, r0 = u(0.05, 0.13), u(0.022, 0.045)
        z, r = _smooth_profile([0, 0.9 * h, h], [r0, r0, r0 * u(1.02, 1.08)], 12)
        return Profile(z, r, u(0.0015, 0.003), u(0.003, 0.006), True, 0.0)
    if kind == "tube":  # test tube or graduated cylinder: long, narrow, rounded at the bottom
        h, r0 = u(0.10, 0.20), u(0.007, 0.014)
        z, r = _smooth_profile([0, 0.5 * r0, 1.5 * r0, h], [0.5 * r0, 0.9 * r0, r0, r0], 16)
        return Profile(z, r, u(0.0008, 0.0015), u(0.003, 0.008), True, 0.0)
    if kind == "flask":  # Erlenmeyer: wide flat base, cone up to a narrow neck
        h, rb, rn = u(0.10, 0.20), u(0.03, 0.055), u(0.010, 0.016)
        shoulder = u(0.6, 0.75) * h
        z, r = _smooth_profile([0, 0.04 * h, shoulder, shoulder + 0.05 * h, h],
                               [rb * 0.95, rb, rn * 1.1, rn, rn * 1.15], 28)
        return Profile(z, r, u(0.0015, 0.003), u(0.003, 0.006), False, 0.0)
    if kind == "dish":  # Petri dish or watch glass: low and wide
        h, r0 = u(0.012, 0.022), u(0.03, 0.05)
        z, r = _smooth_profile([0, h], [r0, r0], 6)
        return Profile(z, r, u(0.001, 0.002), u(0.0015, 0.003), True, 0.0)
    if kind == "funnel":  # a cone on a solid-looking stem; the cavity is the cone only
        h, stem_r, top_r = u(0.08, 0.15), u(0.004, 0.008), u(0.035, 0.06)
        stem_h = u(0.3, 0.45) * h
        zk = [0, 0.003, 0.007, stem_h, stem_h + 0.01, h]
        rk = [stem_r * 1.3, stem_r * 1.3, stem_r, stem_r, stem_r * 1.8, top_r]
        z = np.concatenate([np.linspace(zk[i], zk[i + 1], 4, endpoint=False) for i in range(len(zk) - 1)] + [[h]])
        return Profile(z, np.interp(z, zk, rk), u(0.0015, 0.0025), stem_h + 0.004, True, stem_h)
    if kind == "round_flask":  # Florence flask: a glass ball on a small flat base, with a long neck
        big, rn = u(0.03, 0.065), u(0.009, 0.016)
        rn = min(rn, 0.45 * big)
        a0, a1 = -np.arccos(u(0.25, 0.4)), np.arccos(rn / big)  # where the base and the neck meet the ball
        a = np.linspace(a0, a1, 24)
        zb = big * (np.sin(a) - np.sin(a0))
        neck = zb[-1] + u(0.8, 1.8) * big
        z = np.concatenate([zb, np.linspace(zb[-1], neck, 6)[1:], [neck + 0.004]])
        r = np.concatenate([big * np.cos(a), np.full(5, rn), [rn * 1.2]])
        return Profile(z, r, u(0.0015, 0.003), u(0.003, 0.006), False, 0.0)
    if kind == "graduated_cylinder":  # a tall narrow cylinder on a wide foot, a little spout at the top
        h, r0, foot = u(0.14, 0.3), u(0.01, 0.025), u(0.006, 0.012)
        rf = r0 * u(1.7, 2.4)
        zk = [0, foot, foot + 0.002, h - 0.004, h]
        rk = [rf, rf, r0, r0, r0 * 1.12]
        z = np.concatenate([[0, foot], np.linspace(foot + 0.002, h - 0.004, 8), [h]])
        return Profile(z, np.interp(z, zk, rk), u(0.0012, 0.0025), foot + u(0.002, 0.005), True, 0.0)
    raise ValueError(f"unknown glass kind {kind!r}; choose one of {', '.join(GLASS_KINDS + LAB_KINDS)}")


def _closed_outline(p: Profile) -> np.ndarray:
    """The 2-D (r, z) outline: axis bottom -> outside up -> lip -> inside down -> axis at cavity floor."""
    outer = np.stack([p.r, p.z], axis=1)
    h = p.z[-1]
    inside = p.z >= max(p.floor, p.cavity_from)
    zi = p.z[inside][::-1]
    ri = np.maximum(np.interp(zi, p.z, p.r) - p.wall, 0.0005)
    zi = np.concatenate([[h], zi[1:], [p.floor]])  # the lip top is flat
    ri = np.concatenate([[ri[0]], ri[1:], [np.interp(p.floor, p.z, p.r) - p.wall]])
    inner = np.stack([ri, zi], axis=1)
    return np.concatenate([[[0.0, 0.0]], outer, inner, [[0.0, p.floor]]], axis=0)


def revolve(outline: np.ndarray, segments: int = SEGMENTS) -> tuple[np.ndarray, np.ndarray]:
    """Revolve an (r, z) outline about z into a closed triangle mesh (vertices, faces)."""
    n = len(outline)
    theta = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    c, s = np.cos(theta), np.sin(theta)
    r, z = outline[:, 0], outline[:, 1]
    verts = np.stack([r[None, :] * c[:, None], r[None, :] * s[:, None], np.broadcast_to(z, (segments, n))], -1)
    verts = verts.reshape(-1, 3)
    faces = []
    for k in range(segments):
        k2 = (k + 1) % segments
        for i in range(n - 1):
            a, b = k * n + i, k * n + i + 1
            a2, b2 = k2 * n + i, k2 * n + i + 1
            faces.append((a, a2, b2))
            faces.append((a, b2, b))
    faces = np.asarray(faces, dtype=np.int32)
    # drop degenerate triangles on the axis
    v = verts[faces]
    area = np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    return verts, faces[area > 1e-12]


def mesh_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a closed mesh (divergence theorem)."""
    v = verts[faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def mesh_centroid(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = verts[faces]
    vol = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])) / 6.0
    return (vol[:, None] * v.sum(axis=1) / 4.0).sum(axis=0) / vol.sum()


def _ring(r: np.ndarray, z: np.ndarray, t0: float, t1: float, steps: int = 4) -> np.ndarray:
    th = np.linspace(t0, t1, steps)
    return np.stack([np.outer(r, np.cos(th)).ravel(), np.outer(r, np.sin(th)).ravel(), np.repeat(z, steps)], 1)


def _collision_parts(p: Profile) -> list[np.ndarray]:
    full = 2 * np.pi
    if not p.open_vessel:  # frustum slabs of two profile intervals each, sharing their boundary rings
        return [_ring(p.r[i : i + 3], p.z[i : i + 3], 0, full, 24) for i in range(0, len(p.z) - 1, 2)]
    parts = []
    below = p.z <= max(p.floor, p.cavity_from) + 1e-9
    zb = np.append(p.z[below], max(p.floor, p.cavity_from))
    rb = np.interp(zb, p.z, p.r)
    if p.cavity_from > 0:  # wine glass: foot and stem as two hulls
        foot = p.z <= 0.006
        parts.append(_ring(np.interp(p.z[foot], p.z, p.r), p.z[foot], 0, full, 24))
        stem = (p.z >= 0.004) & below
        zs = p.z[stem]
        parts.append(_ring(np.interp(zs, p.z, p.r), zs, 0, full, 12))
        zf = np.array([p.cavity_from, p.floor])
        parts.append(_ring(np.interp(zf, p.z, p.r), zf, 0, full, 24))
    else:
        parts.append(_ring(rb, zb, 0, full, 24))
    # wall: sectors x height bands, each the hull of an outer and inner patch
    walls = p.z[p.z >= p.floor]
    bands = np.array_split(np.arange(len(walls)), 3 if len(walls) >= 6 else 1)
    sectors = 12
    for band in bands:
        if len(band) == 0:
            continue
        idx = np.arange(max(band[0] - 1, 0), band[-1] + 1)
        zz = walls[idx]
        ro = np.interp(zz, p.z, p.r)
        ri = np.maximum(ro - p.wall, 0.0005)
        for k in range(sectors):
            t0, t1 = 2 * np.pi * k / sectors, 2 * np.pi * (k + 1) / sectors
            parts.append(np.concatenate([_ring(ro, zz, t0, t1, 3), _ring(ri, zz, t0, t1, 3)]))
    return parts


def make_glass(kind: str, rng: np.random.Generator) -> ObjectModel:
    """A random glass object of ``kind`` (one of ``GLASS_KINDS`` or ``LAB_KINDS``)."""
    prof = _profile(kind, rng)
    verts, faces = revolve(_closed_outline(prof))
    vol = mesh_volume(verts, faces)
    if vol <= 0:
        raise RuntimeError(f"glassware {kind}: mesh is inside out (volume {vol})")
    return ObjectModel(
        kind=kind, transparent=True, vertices=verts, faces=faces, collision_parts=_collision_parts(prof),
        mass=max(vol * GLASS_DENSITY, 0.03), height=float(prof.z[-1]), max_radius=float(prof.r.max()),
        rgba=(0.85, 0.87, 0.88, 1.0), com=mesh_centroid(verts, faces), profile=prof,
    )


def box_mesh(half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A box of half sizes ``half`` centred on the origin: 8 corners and 12 triangles facing outwards."""
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float) * half
    faces = np.array([[1, 2, 0], [3, 2, 1], [6, 5, 4], [6, 7, 5], [4, 1, 0], [4, 5, 1],
                      [3, 6, 2], [7, 6, 3], [2, 4, 0], [6, 4, 2], [5, 3, 1], [5, 7, 3]], dtype=np.int32)
    return corners, faces


def make_opaque(kind: str, rng: np.random.Generator) -> ObjectModel:
    """A random opaque distractor: box, cylinder or sphere with a random colour."""
    u = rng.uniform
    if kind == "box":
        hx, hy, hz = u(0.015, 0.04), u(0.015, 0.04), u(0.015, 0.05)
        c, faces = box_mesh(np.array([hx, hy, hz]))
        verts, height, radius = c + [0.0, 0.0, hz], 2 * hz, float(np.hypot(hx, hy))
    elif kind == "cylinder":
        r, h = u(0.015, 0.035), u(0.03, 0.12)
        verts, faces = revolve(np.array([[0, 0], [r, 0], [r, h], [0, h]], float), 24)
        height, radius = h, r
    elif kind == "sphere":
        r = u(0.018, 0.035)
        a = np.linspace(-np.pi / 2, np.pi / 2, 10)
        verts, faces = revolve(np.stack([r * np.cos(a), r + r * np.sin(a)], 1), 20)
        height, radius = 2 * r, r
    else:
        raise ValueError(f"unknown opaque kind {kind!r}; choose one of {', '.join(OPAQUE_KINDS)}")
    vol = mesh_volume(verts, faces)
    if vol < 0:
        faces, vol = faces[:, ::-1].copy(), -vol
    rgba = (*rng.uniform(0.05, 0.95, 3), 1.0)
    return ObjectModel(kind=kind, transparent=False, vertices=verts, faces=faces, collision_parts=[verts],
                       mass=float(np.clip(vol * 700.0, 0.02, 0.5)), height=float(height), max_radius=radius,
                       rgba=tuple(float(x) for x in rgba), com=mesh_centroid(verts, faces))


def liquid_mesh(p: Profile, fill: float, gap: float = 0.0003) -> tuple[np.ndarray, np.ndarray]:
    """A closed body of liquid filling the cavity of ``p`` to ``fill`` (0-1) of its depth, ``gap`` metres
    clear of the inner wall so the two surfaces never coincide. Object frame, metres."""
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"liquid fill must be in (0, 1], got {fill}")
    floor = max(p.floor, p.cavity_from)
    top = floor + fill * (p.z[-1] - floor) - gap
    z = np.linspace(floor + gap, top, 8)
    r = np.maximum(np.interp(z, p.z, p.r) - p.wall - gap, 0.0003)
    outline = np.concatenate([[[0.0, z[0]]], np.stack([r, z], 1), [[0.0, z[-1]]]])
    return revolve(outline)
