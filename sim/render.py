"""Fast see-through glass: two TinyRenderer passes composited with numpy and OpenCV.

Pass A renders everything with the glass as an opaque grey solid; it gives the ground-truth depth ("glass as
if opaque"), the glass mask and the instance ids. Pass B renders the scene with the glass removed; it gives
the background seen through the glass and the background-only depth the sensor model needs.

Table and floor are rendered white and textured afterwards in screen space: each pixel's world (x, y),
recovered from depth, samples a procedural texture, so the texture follows the perspective exactly and
TinyRenderer's shading and shadows multiply into it.

Glass pixels are composed from surface normals (from the ground-truth depth): the background warped by a
refraction offset, absorption that grows towards grazing angles, Schlick-Fresnel reflection of a soft
environment, a Blinn-Phong highlight from the scene light, and dark outlines at lips and silhouettes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.types import CameraIntrinsics
from sim.camera_model import Light, render
from sim.scene import TabletopScene
from sim.sensor import depth_edges

TEXTURE_SIZE = 512
TEXTURE_METRES = 1.0  # one texture tile covers this many metres at scale 1


@dataclass
class RenderOutput:
    """Everything one frame's rendering produces (all HxW at the camera's resolution).

    rgb:        HxWx3 uint8, the see-through composite.
    depth:      float32 z-depth in metres of the scene with glass as if opaque (ground truth), 0 = nothing.
    depth_bg:   float32 z-depth with the glass removed (what lies behind it).
    mask:       bool, transparent-object pixels.
    instance:   int32 PyBullet body id per pixel (-1 = nothing).
    stereo_depth: float32 depth matched from a rendered stereo pair (photoreal renderer, on request), or None.
    """

    rgb: np.ndarray
    depth: np.ndarray
    depth_bg: np.ndarray
    mask: np.ndarray
    instance: np.ndarray
    stereo_depth: np.ndarray | None = None


# --------------------------------------------------------------------------------------------------------
# Procedural textures


def _noise(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Smooth value noise in [0, 1] at feature size ~size/scale."""
    small = rng.random((scale, scale)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _fractal(rng, size, octaves=4, base=4) -> np.ndarray:
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * _noise(rng, size, base * 2**o)
        total += amp
        amp *= 0.5
    return out / total


def _random_color(rng, lo=0.1, hi=0.95) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def procedural_texture(rng: np.random.Generator, size: int = TEXTURE_SIZE) -> np.ndarray:
    """A random tileable-looking surface: wood, tiles, marble, fabric, print or plain. HxWx3 float in [0, 1]."""
    kind = rng.choice(["wood", "tiles", "marble", "fabric", "print", "plain"])
    c1, c2 = _random_color(rng), _random_color(rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "wood":
        warp = _fractal(rng, size, 3, 2)
        t = np.sin((yy * rng.uniform(20, 60) + warp * rng.uniform(3, 8)) * np.pi) * 0.5 + 0.5
        t = t ** rng.uniform(0.5, 2.0)
    elif kind == "tiles":
        n = int(rng.integers(3, 12))
        grout = rng.uniform(0.02, 0.08)
        fx, fy = (xx * n) % 1.0, (yy * n) % 1.0
        t = ((fx < grout) | (fy < grout)).astype(np.float32)
        if rng.random() < 0.5:  # checkerboard
            t = np.maximum(t, ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32) * 0.7)
    elif kind == "marble":
        t = np.abs(np.sin((xx + yy) * rng.uniform(3, 10) + _fractal(rng, size, 5, 3) * rng.uniform(4, 10)))
    elif kind == "fabric":
        f = rng.uniform(80, 200)
        t = 0.5 + 0.25 * np.sin(xx * f) * np.sin(yy * f) + 0.5 * (_fractal(rng, size, 3, 16) - 0.5)
    elif kind == "print":
        img = np.zeros((size, size), np.float32)
        for _ in range(int(rng.integers(10, 40))):
            cx, cy = rng.integers(0, size, 2)
            r = int(rng.integers(size // 40, size // 8))
            if rng.random() < 0.5:
                cv2.circle(img, (int(cx), int(cy)), r, float(rng.random()), -1)
            else:
                cv2.rectangle(img, (int(cx), int(cy)), (int(cx + r), int(cy + r * rng.uniform(0.3, 2))),
                              float(rng.random()), -1)
        t = img
    else:
        t = 0.5 + 0.15 * (_fractal(rng, size, 3, 8) - 0.5)
    t = t.clip(0, 1)[..., None]
    tex = c1 * (1 - t) + c2 * t
    tex *= (0.9 + 0.2 * _fractal(rng, size, 3, 16))[..., None]  # grime
    return tex.clip(0, 1).astype(np.float32)


def room_texture(rng: np.random.Generator, part: str, size: int = TEXTURE_SIZE) -> np.ndarray:
    """Surfaces of real rooms, in their usual colours. ``part`` is "table" (wood in browns, laminate, stone),
    "floor" (concrete, carpet, vinyl) or "wall" (paint). HxWx3 float in [0, 1]."""
    if part not in ("table", "floor", "wall"):
        raise ValueError(f"room_texture: part must be table, floor or wall, not {part!r}")
    yy = np.mgrid[0:size, 0:size][0].astype(np.float32) / size
    kind = {"table": ["wood", "wood", "laminate", "stone"], "floor": ["concrete", "carpet", "vinyl"],
            "wall": ["paint"]}[part]
    kind = str(rng.choice(kind))
    if kind == "wood":  # light to dark browns, often greyish; grain warped by knots and growth rings
        red = rng.uniform(0.35, 0.85)
        base = np.array([red, red * rng.uniform(0.65, 0.85), red * rng.uniform(0.42, 0.7)], np.float32)
        dark = base * rng.uniform(0.6, 0.9)
        warp = _fractal(rng, size, 3, 2) * rng.uniform(2, 6) + _fractal(rng, size, 2, 12) * 0.3
        t = np.sin((yy * rng.uniform(10, 70) + warp) * np.pi) * 0.5 + 0.5
        t = 0.6 * t ** rng.uniform(1.0, 3.0) + 0.4 * _fractal(rng, size, 2, 64)
        c1, c2 = base, dark
    elif kind in ("laminate", "paint", "vinyl"):  # near-white, grey or beige, almost plain
        grey = rng.uniform(0.35, 0.9) if kind != "paint" else rng.uniform(0.55, 0.95)
        c1 = np.clip(grey * rng.uniform(0.92, 1.05, 3), 0, 1).astype(np.float32)
        c2 = c1 * rng.uniform(0.85, 0.97)
        t = _fractal(rng, size, 3, 8)
    else:  # stone, concrete, carpet: grey speckle
        grey = rng.uniform(0.25, 0.7)
        c1 = np.clip(grey * rng.uniform(0.9, 1.08, 3), 0, 1).astype(np.float32)
        c2 = c1 * rng.uniform(0.5, 0.8)
        fine = rng.random((size, size)).astype(np.float32)
        t = 0.5 * _fractal(rng, size, 3, 6) + 0.5 * (fine > rng.uniform(0.6, 0.9))
    t = t.clip(0, 1)[..., None]
    tex = c1 * (1 - t) + c2 * t
    tex *= (0.92 + 0.16 * _fractal(rng, size, 3, 16))[..., None]  # grime
    return tex.clip(0, 1).astype(np.float32)


def _apply_texture(shade: np.ndarray, sel: np.ndarray, world_xy: np.ndarray, tex: np.ndarray,
                   metres_per_tile: float) -> None:
    """In place: shade[sel] *= texture sampled (tiled) at world (x, y)."""
    if not sel.any():
        return
    size = tex.shape[0]
    uv = (np.nan_to_num(world_xy) / metres_per_tile * size) % size
    samp = cv2.remap(tex, uv[..., 0].astype(np.float32), uv[..., 1].astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_WRAP)[sel]
    shade[sel] *= samp


# --------------------------------------------------------------------------------------------------------
# Appearance sampled per scene


@dataclass
class GlassLook:
    refraction_px: float  # background shift per unit lateral normal at 1 m depth, in pixels * metres
    absorption: float
    tint: np.ndarray
    fresnel_r0: float
    shininess: float
    highlight: float
    body: float  # share of the opaque grey render mixed in


@dataclass
class Appearance:
    light: Light
    table_tex: np.ndarray
    floor_tex: np.ndarray
    table_tile_m: float
    floor_tile_m: float
    env_top: np.ndarray
    env_bottom: np.ndarray
    exposure: float
    white_balance: np.ndarray
    noise_sigma: float
    glass: dict[int, GlassLook]

    @classmethod
    def sample(cls, rng: np.random.Generator, glass_ids: list[int]) -> "Appearance":
        az, el = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(35), np.radians(85))
        light = Light(
            direction=(float(np.cos(el) * np.cos(az)), float(np.cos(el) * np.sin(az)), float(np.sin(el))),
            color=tuple(float(x) for x in rng.uniform(0.85, 1.0, 3)),
            ambient=float(rng.uniform(0.35, 0.7)), diffuse=float(rng.uniform(0.3, 0.6)),
            specular=float(rng.uniform(0.0, 0.3)), shadow=bool(rng.random() < 0.8),
        )
        glass = {
            b: GlassLook(
                refraction_px=float(rng.uniform(6.0, 18.0)), absorption=float(rng.uniform(0.04, 0.2)),
                tint=(1.0 - rng.uniform(0.0, 0.12, 3) * (rng.random() < 0.4)).astype(np.float32),
                fresnel_r0=float(rng.uniform(0.03, 0.06)), shininess=float(rng.uniform(40, 250)),
                highlight=float(rng.uniform(0.3, 1.0)), body=float(rng.uniform(0.0, 0.12)),
            )
            for b in glass_ids
        }
        return cls(
            light=light, table_tex=procedural_texture(rng), floor_tex=procedural_texture(rng),
            table_tile_m=float(rng.uniform(0.3, 1.2)), floor_tile_m=float(rng.uniform(0.5, 2.0)),
            env_top=(rng.uniform(0.75, 1.0) * rng.uniform(0.93, 1.0, 3)).astype(np.float32),
            env_bottom=(rng.uniform(0.15, 0.5) * rng.uniform(0.85, 1.0, 3)).astype(np.float32),
            exposure=float(rng.uniform(0.8, 1.15)),
            white_balance=rng.uniform(0.92, 1.08, 3).astype(np.float32),
            noise_sigma=float(rng.uniform(0.003, 0.015)), glass=glass,
        )


# --------------------------------------------------------------------------------------------------------
# Geometry helpers


def camera_normals(points: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Unit surface normals (camera frame, facing the camera) from an HxWx3 point image."""
    dx = np.zeros_like(points)
    dy = np.zeros_like(points)
    dx[:, 1:-1] = points[:, 2:] - points[:, :-2]
    dy[1:-1] = points[2:] - points[:-2]
    n = np.cross(dy, dx)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), np.array([0, 0, -1.0], np.float32))
    flip = (n * points).sum(-1) > 0  # make normals face the camera
    n[flip] *= -1
    n[~valid] = (0, 0, -1.0)
    return n.astype(np.float32)


def world_points(depth: np.ndarray, K: CameraIntrinsics, T_base_cam: np.ndarray) -> np.ndarray:
    pts = K.depth_to_points(depth)
    return (pts @ T_base_cam[:3, :3].T + T_base_cam[:3, 3]).astype(np.float32)


# --------------------------------------------------------------------------------------------------------


def render_frame(scene: TabletopScene, K: CameraIntrinsics, T_base_cam: np.ndarray, look: Appearance,
                 rng: np.random.Generator) -> RenderOutput:
    """Render one see-through RGB image plus ground truth, background depth, mask and instance ids."""
    client = scene.client
    glass = scene.glass_ids
    rgb_a, depth_a, ids_a = render(client, K, T_base_cam, look.light)
    scene.hide(glass)
    try:
        rgb_b, depth_b, ids_b = render(client, K, T_base_cam, look.light)
    finally:
        scene.restore()
    mask = np.isin(ids_a, glass)

    # Texture table and floor (both rendered white) in screen space.
    shade_b = rgb_b.astype(np.float32) / 255.0
    shade_a = rgb_a.astype(np.float32) / 255.0
    wp_b = world_points(depth_b, K, T_base_cam)
    _apply_texture(shade_b, ids_b == scene.table_id, wp_b[..., :2], look.table_tex, look.table_tile_m)
    _apply_texture(shade_b, ids_b == scene.floor_id, wp_b[..., :2], look.floor_tex, look.floor_tile_m)

    # Glass casts a faint shadow: darken the background where pass A is darker than pass B outside glass.
    ratio = np.clip((shade_a.mean(-1) + 1e-3) / (rgb_b.astype(np.float32).mean(-1) / 255.0 + 1e-3), 0, 1)
    ratio = np.where(mask, 1.0, ratio)
    background = shade_b * (1.0 - 0.35 * (1.0 - ratio))[..., None]

    out = background.copy()
    if mask.any():
        out[mask] = _glass_pixels(background, shade_a, depth_a, mask, ids_a, K, T_base_cam, look)

    out = out * look.exposure * look.white_balance
    out += rng.normal(0.0, look.noise_sigma, out.shape).astype(np.float32)
    rgb = (out.clip(0, 1) * 255.0 + 0.5).astype(np.uint8)
    return RenderOutput(rgb=rgb, depth=depth_a, depth_bg=depth_b, mask=mask, instance=ids_a)


def _glass_pixels(background, shade_a, depth, mask, ids, K, T_base_cam, look: Appearance) -> np.ndarray:
    pts = K.depth_to_points(depth)
    pts_s = cv2.GaussianBlur(pts, (5, 5), 0)
    n = camera_normals(pts_s, depth > 0)
    view = -pts / np.maximum(np.linalg.norm(pts, axis=-1, keepdims=True), 1e-9)
    cos = np.abs((n * view).sum(-1)).clip(0.05, 1.0)

    per = {k: np.zeros(mask.shape, np.float32) for k in ("refr", "absorb", "r0", "shin", "hl", "body")}
    tint = np.ones(mask.shape + (3,), np.float32)
    for b, g in look.glass.items():
        sel = ids == b
        per["refr"][sel], per["absorb"][sel], per["r0"][sel] = g.refraction_px, g.absorption, g.fresnel_r0
        per["shin"][sel], per["hl"][sel], per["body"][sel] = g.shininess, g.highlight, g.body
        tint[sel] = g.tint

    # Refraction: shift the background along the lateral normal, more for nearer glass and grazing views.
    z = np.maximum(depth, 0.05)
    shift = per["refr"][..., None] * n[..., :2] / z[..., None] * (1.5 - cos[..., None])
    v, u = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]].astype(np.float32)
    mapx = (u + shift[..., 0]).astype(np.float32)
    mapy = (v + shift[..., 1]).astype(np.float32)
    refracted = cv2.remap(background, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    refracted = cv2.GaussianBlur(refracted, (3, 3), 0)

    transmit = np.exp(-per["absorb"] / cos)[..., None] * tint
    fresnel = (per["r0"] + (1 - per["r0"]) * (1 - cos) ** 5)[..., None]

    # Environment reflection: bright above, dark below, by the reflected ray's elevation in the base frame.
    refl = 2 * (n * view).sum(-1, keepdims=True) * n - view
    refl_up = (refl @ T_base_cam[:3, :3].T)[..., 2:3]
    env = look.env_bottom + (look.env_top - look.env_bottom) * (0.5 + 0.5 * refl_up)

    light_cam = np.asarray(look.light.direction, np.float32) @ T_base_cam[:3, :3]
    light_cam /= np.linalg.norm(light_cam)
    half = light_cam + view
    half /= np.maximum(np.linalg.norm(half, axis=-1, keepdims=True), 1e-9)
    spec = (np.maximum((n * half).sum(-1), 0.0) ** per["shin"] * per["hl"])[..., None]

    # Outlines at lips and silhouettes: strong depth changes inside or at the border of the glass.
    edge = cv2.dilate(depth_edges(depth, 0.02).astype(np.uint8), np.ones((2, 2), np.uint8)).astype(np.float32)
    edge = cv2.GaussianBlur(edge, (3, 3), 0)[..., None]

    glass = (1 - fresnel) * transmit * refracted + fresnel * env + spec
    glass = glass * (1 - 0.5 * edge) + 0.25 * edge * env
    glass = glass * (1 - per["body"][..., None]) + per["body"][..., None] * shade_a
    return glass[mask]
