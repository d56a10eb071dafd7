"""Path-traced glass with Mitsuba 3: real refraction, reflection and caustics, denoised with OpenImageDenoise.

The PyBullet scene stays the source of truth for geometry: every body's mesh is placed at its simulated pose,
the table, floor and an optional wall are added, and the scene is lit by a procedural environment map and
area lights. Glass is a smooth or rough dielectric (index of refraction, roughness and tint drawn per object),
some open vessels hold a liquid, opaque objects get random principled materials, table, floor and wall get
procedural textures.

Ground truth does not come from Mitsuba (its ``depth`` output is distance along the ray): Open3D ray casts
the same triangles for z-depth with glass as if opaque, the depth behind the glass, the glass mask and
instance ids, exactly what the fast renderer returns, so the same sensor models apply. ``stereo_depth``
renders a second view at the D435 baseline and matches the pair with OpenCV SGBM, for raw depth whose
failures on glass come from the refraction itself.

Mitsuba's ``llvm_ad_rgb`` variant needs an LLVM shared library (``make setup`` installs Debian's
``libllvm19``); without one the renderer falls back to ``scalar_rgb`` with a warning (about 3x slower).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import open3d as o3d
import pybullet as p

from pipeline.types import CameraIntrinsics
from sim.glassware import box_mesh, liquid_mesh
from sim.render import RenderOutput, procedural_texture, room_texture
from sim.scene import FLOOR_DROP, FLOOR_HALF_THICKNESS, TABLE_THICKNESS, TabletopScene

VARIANTS = ("llvm_ad_rgb", "scalar_rgb")
NEAR_CLIP = 0.01  # metres; Mitsuba's perspective rays start at the near plane
WALL_ID = -2  # instance id of the optional back wall (it is not a PyBullet body)

_mi = None  # the mitsuba module once a variant is set


def mitsuba(variant: str | None = None):
    """Import Mitsuba with the fastest variant that works here (``llvm_ad_rgb``, else ``scalar_rgb``)."""
    global _mi
    if _mi is not None and (variant is None or _mi.variant() == variant):
        return _mi
    try:
        import mitsuba as mi
    except ImportError as exc:  # pragma: no cover - mitsuba is in requirements.txt
        raise RuntimeError("the photoreal renderer needs Mitsuba 3: pip install mitsuba") from exc
    for v in [variant] if variant else VARIANTS:
        try:
            mi.set_variant(v)
            # The LLVM backend is loaded lazily: force it now so a missing libLLVM shows here.
            mi.load_dict({"type": "scene"})
            break
        except Exception as exc:  # drjit raises RuntimeError/ImportError depending on what is missing
            if variant or v == VARIANTS[-1]:
                raise RuntimeError(f"Mitsuba variant {v!r} is not usable here: {exc}") from exc
            warnings.warn(f"Mitsuba variant {v!r} is not usable ({exc}); falling back to "
                          f"{VARIANTS[-1]!r}, about 3x slower. Install an LLVM library (Debian: libllvm19).",
                          RuntimeWarning, stacklevel=2)
    _mi = mi
    return mi


# --------------------------------------------------------------------------------------------------------
# Geometry


def split_normals(verts: np.ndarray, faces: np.ndarray, crease_deg: float = 35.0):
    """Per-corner normals that are smooth across gentle bends and split at creases sharper than
    ``crease_deg`` (a glass lip, a base edge). Returns unrolled (vertices, faces, normals), 3 per face."""
    v = verts[faces]  # M x 3 x 3
    fn = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])  # area-weighted face normals
    area = np.linalg.norm(fn, axis=1, keepdims=True)
    unit = fn / np.maximum(area, 1e-20)
    m = len(faces)
    corner_face = np.repeat(np.arange(m), 3)
    corner_vert = faces.ravel()
    order = np.argsort(corner_vert, kind="stable")
    inc_faces = corner_face[order]  # faces grouped by vertex
    count = np.bincount(corner_vert, minlength=len(verts))
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    n_inc = count[corner_vert]  # for each corner, how many faces share its vertex
    pair_corner = np.repeat(np.arange(3 * m), n_inc)
    offset = np.arange(n_inc.sum()) - np.repeat(np.cumsum(n_inc) - n_inc, n_inc)
    pair_face = inc_faces[start[corner_vert[pair_corner]] + offset]
    keep = (unit[pair_face] * unit[corner_face[pair_corner]]).sum(1) >= np.cos(np.radians(crease_deg))
    normals = np.zeros((3 * m, 3))
    np.add.at(normals, pair_corner[keep], fn[pair_face[keep]])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-20)
    return v.reshape(-1, 3), np.arange(3 * m, dtype=np.int64).reshape(m, 3), normals


def _quad(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return corners, np.array([[0, 1, 2], [0, 2, 3]])


@dataclass
class Part:
    """One triangle mesh in the base frame and what it is."""

    verts: np.ndarray
    faces: np.ndarray
    body: int  # PyBullet body id, or WALL_ID
    kind: str  # "glass", "liquid", "opaque", "table", "floor", "wall"
    uv_scale: float = 0.0  # > 0: planar (x, y) texture coordinates at this many tiles per metre
    rgba: tuple = (0.8, 0.8, 0.8, 1.0)


def scene_parts(scene: TabletopScene, rng: np.random.Generator, liquid_prob: float = 0.25,
                wall_prob: float = 0.5, eye: np.ndarray | None = None) -> list[Part]:
    """The scene as base-frame meshes at the bodies' current poses. ``eye``: the camera's position; a wall it
    would stand behind (and see only the back of) is left out."""
    parts = []
    for obj in scene.objects:
        pos, quat = scene.pose(obj.body)
        R = np.asarray(p.getMatrixFromQuaternion(quat)).reshape(3, 3)
        t = np.asarray(pos)
        m = obj.model
        kind = "glass" if m.transparent else "opaque"
        parts.append(Part(m.vertices @ R.T + t, m.faces, obj.body, kind, rgba=m.rgba))
        if m.transparent and m.profile is not None and rng.random() < liquid_prob:
            lv, lf = liquid_mesh(m.profile, float(rng.uniform(0.25, 0.85)))
            parts.append(Part(lv @ R.T + t, lf, obj.body, "liquid"))
    ws = scene.workspace
    half = np.array([*ws.table_half_size, TABLE_THICKNESS / 2])
    centre = np.array([*ws.table_center, ws.table_z - TABLE_THICKNESS / 2])
    corners, faces = box_mesh(half)
    parts.append(Part(corners + centre, faces, scene.table_id, "table"))
    fz, (cx, cy) = ws.table_z - FLOOR_DROP + FLOOR_HALF_THICKNESS, ws.table_center  # the floor slab's top
    floor = np.array([[cx - 4, cy - 4, fz], [cx + 4, cy - 4, fz], [cx + 4, cy + 4, fz], [cx - 4, cy + 4, fz]])
    parts.append(Part(*_quad(floor), scene.floor_id, "floor"))
    if rng.random() < wall_prob:  # a wall beyond the far table edge (the robot stands at the near one)
        x = cx + ws.table_half_size[0] + rng.uniform(0.05, 0.6)
        if eye is not None and eye[0] >= x:
            return parts
        wall = np.array([[x, cy - 4, fz], [x, cy - 4, fz + 3], [x, cy + 4, fz + 3], [x, cy + 4, fz]])
        parts.append(Part(*_quad(wall), WALL_ID, "wall"))
    return parts


# --------------------------------------------------------------------------------------------------------
# Ground truth by ray casting


def pixel_rays(K: CameraIntrinsics, T_base_cam: np.ndarray, step: int = 1) -> np.ndarray:
    """Base-frame directions (H/step x W/step x 3) of the rays through every ``step``-th pixel, scaled so that
    their camera z is 1: a ray parameter along them is z-depth."""
    u, v = np.meshgrid(np.arange(0, K.width, step, dtype=np.float64), np.arange(0, K.height, step, dtype=np.float64))
    return np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], -1) @ T_base_cam[:3, :3].T


def cast_depth(parts: list[Part], K: CameraIntrinsics, T_base_cam: np.ndarray,
               skip: tuple[str, ...] = ("liquid",)) -> tuple[np.ndarray, np.ndarray]:
    """z-depth (metres, 0 = nothing) and the body id hit (-1 = nothing) for every pixel."""
    rc = o3d.t.geometry.RaycastingScene()
    ids = []
    for part in parts:
        if part.kind in skip:
            continue
        mesh = o3d.t.geometry.TriangleMesh()
        mesh.vertex.positions = o3d.core.Tensor(part.verts.astype(np.float32))
        mesh.triangle.indices = o3d.core.Tensor(part.faces.astype(np.int32))
        rc.add_triangles(mesh)
        ids.append(part.body)
    d = pixel_rays(K, T_base_cam)
    rays = np.concatenate([np.broadcast_to(T_base_cam[:3, 3], d.shape), d], -1).astype(np.float32)
    hit = rc.cast_rays(o3d.core.Tensor(rays))
    t_hit = hit["t_hit"].numpy()
    gid = hit["geometry_ids"].numpy().astype(np.int64)
    found = np.isfinite(t_hit)
    depth = np.where(found, t_hit, 0.0).astype(np.float32)
    lut = np.asarray(ids + [-1], np.int64)
    instance = lut[np.where(found, gid, len(ids))].astype(np.int32)
    return depth, instance


# --------------------------------------------------------------------------------------------------------
# Appearance


def environment_map(rng: np.random.Generator, width: int = 128, room: bool = False) -> np.ndarray:
    """An equirectangular HDR room: a sky-like gradient, a darker floor half and a few bright windows/lamps.

    ``room``: a bright indoor room instead (light walls and floor, rows of ceiling lamps, a window or two),
    in which glass shows white highlights and light rims rather than dark ones."""
    h = width // 2
    el = (0.5 - (np.arange(h) + 0.5) / h)[:, None] * np.pi  # elevation, +pi/2 at the top row
    # (brightness range, lowest tint) of the zenith and of the nadir
    (top_range, top_tint), (bottom_range, bottom_tint) = (((0.8, 1.6), 0.9), ((0.3, 0.7), 0.85)) if room else \
        (((0.5, 1.2), 0.85), ((0.05, 0.3), 0.8))
    top = rng.uniform(*top_range) * rng.uniform(top_tint, 1.0, 3)
    bottom = rng.uniform(*bottom_range) * rng.uniform(bottom_tint, 1.0, 3)
    t = (0.5 + 0.5 * np.sin(el))[..., None]
    img = np.broadcast_to(bottom + (top - bottom) * t, (h, width, 3)).copy()
    if room:  # ceiling lamps near the zenith, windows at the horizon
        for _ in range(int(rng.integers(2, 7))):
            cx, cy = rng.integers(0, width), rng.integers(0, h // 5)
            rw, rh = rng.integers(2, width // 6), rng.integers(1, 3)
            img[cy : cy + rh, cx : cx + rw] = rng.uniform(5, 30) * rng.uniform(0.9, 1.0, 3)
        for _ in range(int(rng.integers(0, 3))):
            cx, cy = rng.integers(0, width), rng.integers(h // 4, h // 2)
            img[cy : cy + int(rng.integers(3, h // 5)), cx : cx + int(rng.integers(4, width // 6))] = \
                rng.uniform(2, 10) * rng.uniform(0.85, 1.0, 3)
        return img.astype(np.float32)
    for _ in range(int(rng.integers(1, 5))):
        cx, cy = rng.integers(0, width), rng.integers(0, h // 2)
        rw, rh = rng.integers(2, width // 8), rng.integers(2, h // 6)
        img[cy : cy + rh, cx : cx + rw] = rng.uniform(3, 25) * rng.uniform(0.8, 1.0, 3)
    return img.astype(np.float32)


def light_in_view(centre, half: tuple[float, float], K: CameraIntrinsics, T_base_cam: np.ndarray,
                  step: int = 4) -> bool:
    """Whether a horizontal rectangle (centre, half sizes along base x and y) crosses the camera's view in
    front of it (tested on every ``step``-th pixel's ray). Scenes hang area lights there facing down; a
    camera looking down sees their unlit back, which ground truth knows nothing of."""
    d = pixel_rays(K, T_base_cam, step)
    eye = T_base_cam[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (centre[2] - eye[2]) / d[..., 2]
    x, y = eye[0] + t * d[..., 0], eye[1] + t * d[..., 1]
    inside = (t > 0) & (np.abs(x - centre[0]) <= half[0]) & (np.abs(y - centre[1]) <= half[1])
    return bool(inside.any())


@dataclass
class PhotorealConfig:
    spp: int = 8
    room: bool = False  # bright indoor room, natural table, floor and wall surfaces, more frosted glass
    max_depth: int = 12  # glass needs many bounces: in and out of two walls and back
    denoise: bool = True
    stereo_baseline_m: float = 0.05  # second view for stereo raw depth (D435 baseline)


class PhotorealRenderer:
    """Renders a ``TabletopScene`` with Mitsuba 3. One instance per process (Mitsuba state is global)."""

    def __init__(self, config: PhotorealConfig = PhotorealConfig(), variant: str | None = None):
        if config.spp < 1:
            raise ValueError(f"photoreal renderer: spp must be at least 1, got {config.spp}")
        self.config = config
        self.mi = mitsuba(variant)

    @property
    def variant(self) -> str:
        return self.mi.variant()

    # ----------------------------------------------------------------------------------------------------
    def _mesh(self, part: Part, bsdf) -> object:
        mi = self.mi
        if part.kind in ("glass", "liquid"):
            v, f, n = split_normals(part.verts, part.faces)
        else:
            v, f, n = part.verts, part.faces, None
        props = mi.Properties()
        props["bsdf"] = bsdf
        uv = part.uv_scale > 0
        mesh = mi.Mesh(f"{part.kind}{part.body}", len(v), len(f), props, has_vertex_normals=n is not None,
                       has_vertex_texcoords=uv)
        params = mi.traverse(mesh)
        params["vertex_positions"] = np.ascontiguousarray(v, np.float32).ravel()
        params["faces"] = np.ascontiguousarray(f, np.uint32).ravel()
        if n is not None:
            params["vertex_normals"] = np.ascontiguousarray(n, np.float32).ravel()
        if uv:
            params["vertex_texcoords"] = np.ascontiguousarray(v[:, :2] * part.uv_scale, np.float32).ravel()
        params.update()
        return mesh

    def _bsdf(self, part: Part, rng: np.random.Generator, glass_ior: dict[int, float]) -> object:
        mi = self.mi
        if part.kind == "glass":
            ior = glass_ior[part.body]
            d = {"type": "dielectric", "int_ior": ior, "ext_ior": 1.0}
            rough, alpha = (0.45, 0.15) if self.config.room else (0.3, 0.08)
            if rng.random() < rough:
                d = {"type": "roughdielectric", "distribution": "ggx", "alpha": float(rng.uniform(0.01, alpha)),
                     "int_ior": ior, "ext_ior": 1.0}
            if rng.random() < (0.1 if self.config.room else 0.3):  # tinted glass (lab glass is mostly clear)
                tint = 1.0 - rng.uniform(0.0, 0.25, 3)
                d["specular_transmittance"] = {"type": "rgb", "value": tint.tolist()}
            return mi.load_dict(d)
        if part.kind == "liquid":
            colour = [1.0, 1.0, 1.0] if rng.random() < 0.5 else (1.0 - rng.uniform(0.0, 0.6, 3)).tolist()
            return mi.load_dict({"type": "dielectric", "int_ior": 1.333, "ext_ior": glass_ior.get(part.body, 1.5),
                                 "specular_transmittance": {"type": "rgb", "value": colour}})
        if part.kind == "opaque":
            return mi.load_dict({"type": "principled", "base_color": {"type": "rgb", "value": list(part.rgba[:3])},
                                 "roughness": float(rng.uniform(0.2, 0.9)),
                                 "metallic": float(rng.uniform(0.0, 0.6) if rng.random() < 0.2 else 0.0)})
        texture = room_texture(rng, part.kind, 256) if self.config.room else procedural_texture(rng, 256)
        texture = texture ** 2.2  # sRGB-looking texture -> linear reflectance
        base = {"type": "bitmap", "bitmap": mi.Bitmap(np.ascontiguousarray(texture, np.float32)),
                "filter_type": "bilinear", "wrap_mode": "mirror", "raw": True}
        if part.kind == "table" and rng.random() < 0.5:  # varnished or plastic table tops reflect the glass
            return mi.load_dict({"type": "principled", "base_color": base,
                                 "roughness": float(rng.uniform(0.15, 0.6)), "specular": 0.5})
        return mi.load_dict({"type": "diffuse", "reflectance": base})

    def _sensor(self, K: CameraIntrinsics, T_base_cam: np.ndarray, offset_x: float = 0.0) -> dict:
        if abs(K.fx - K.fy) > 1e-3 * K.fx:
            raise ValueError(f"photoreal renderer needs square pixels, got fx={K.fx} fy={K.fy}")
        R, t = T_base_cam[:3, :3], T_base_cam[:3, 3] + offset_x * T_base_cam[:3, 0]
        mi = self.mi
        return {
            "type": "perspective",
            "fov_axis": "x",
            "fov": float(np.degrees(2 * np.arctan(K.width / (2 * K.fx)))),
            "principal_point_offset_x": float((K.cx + 0.5 - K.width / 2) / K.width),
            "principal_point_offset_y": float((K.cy + 0.5 - K.height / 2) / K.height),
            "near_clip": NEAR_CLIP, "far_clip": 20.0,
            "to_world": mi.ScalarTransform4f().look_at(origin=t.tolist(), target=(t + R[:, 2]).tolist(),
                                                       up=(-R[:, 1]).tolist()),
            "film": {"type": "hdrfilm", "width": K.width, "height": K.height, "rfilter": {"type": "box"},
                     "pixel_format": "rgb"},
            "sampler": {"type": "independent", "sample_count": self.config.spp},
        }

    def build(self, parts: list[Part], K: CameraIntrinsics, T_base_cam: np.ndarray, rng: np.random.Generator,
              stereo: bool = False):
        """The Mitsuba scene (sensor 0 = the camera, sensor 1 = the stereo partner when ``stereo``)."""
        mi = self.mi
        ws_tile = 1.0 / rng.uniform(0.3, 1.2)
        glass_ior = {pt.body: float(rng.uniform(1.45, 1.6)) for pt in parts if pt.kind == "glass"}
        d = {"type": "scene",
             "integrator": {"type": "aov", "aovs": "albedo:albedo,normal:sh_normal",
                            "image": {"type": "path", "max_depth": self.config.max_depth, "rr_depth": 6}},
             "sensor": self._sensor(K, T_base_cam)}
        if stereo:
            d["sensor_right"] = self._sensor(K, T_base_cam, self.config.stereo_baseline_m)
        env = environment_map(rng, room=self.config.room)
        d["env"] = {"type": "envmap", "bitmap": mi.Bitmap(env), "scale": float(rng.uniform(0.3, 1.5)),
                    "to_world": mi.ScalarTransform4f().rotate([0, 0, 1], float(rng.uniform(0, 360)))
                    @ mi.ScalarTransform4f().rotate([1, 0, 0], 90.0)}  # envmap's up (+y) -> base +z
        cx, cy = (float(c) for c in np.mean([pt.verts.mean(0) for pt in parts if pt.kind == "table"], 0)[:2])
        for i in range(int(rng.integers(0, 3))):  # area lights above the table, facing down
            size = rng.uniform(0.1, 0.6)
            pos = [cx + rng.uniform(-0.8, 0.8), cy + rng.uniform(-0.8, 0.8), rng.uniform(0.6, 1.6)]
            half = (size, size * rng.uniform(0.5, 2))
            if light_in_view(pos, half, K, T_base_cam):  # its dark back would hide the scene: hang it higher
                pos[2] = float(T_base_cam[2, 3]) + 0.2
            d[f"light{i}"] = {"type": "rectangle",
                              "to_world": mi.ScalarTransform4f().translate(pos)
                              @ mi.ScalarTransform4f().rotate([1, 0, 0], 180.0)
                              @ mi.ScalarTransform4f().scale([half[0], half[1], 1]),
                              "emitter": {"type": "area", "radiance": {"type": "rgb", "value": (
                                  rng.uniform(2, 12) * rng.uniform(0.85, 1.0, 3)).tolist()}}}
        for i, part in enumerate(parts):
            if part.kind in ("table", "floor", "wall"):
                part.uv_scale = ws_tile if part.kind == "table" else 1.0 / rng.uniform(0.5, 2.0)
            d[f"shape{i}"] = self._mesh(part, self._bsdf(part, rng, glass_ior))
        return mi.load_dict(d)

    def _image(self, scene, sensor: int, seed: int) -> np.ndarray:
        """Linear RGB (HxWx3 float32) of one sensor, denoised with the albedo and normal passes."""
        mi = self.mi
        img = np.asarray(mi.render(scene, sensor=sensor, seed=seed), dtype=np.float32)
        rgb, albedo, normal = img[..., 0:3], img[..., 3:6], img[..., 6:9]
        rgb = np.nan_to_num(rgb, nan=0.0, posinf=0.0).clip(0, None)
        if self.config.denoise:
            import pyoidn
            rgb = pyoidn.denoise(np.ascontiguousarray(rgb), np.ascontiguousarray(albedo.clip(0, 1)),
                                 np.ascontiguousarray(np.nan_to_num(normal).clip(-1, 1)), hdr=True)
        return rgb

    def render(self, scene: TabletopScene, K: CameraIntrinsics, T_base_cam: np.ndarray,
               rng: np.random.Generator, stereo: bool = False) -> RenderOutput:
        """One frame: path-traced RGB plus ray-cast ground truth (and stereo raw depth when ``stereo``)."""
        T_base_cam = np.asarray(T_base_cam, np.float64)
        parts = scene_parts(scene, rng, eye=T_base_cam[:3, 3])
        depth, instance = cast_depth(parts, K, T_base_cam)
        depth_bg, _ = cast_depth(parts, K, T_base_cam, skip=("liquid", "glass"))
        mask = np.isin(instance, scene.glass_ids)
        mscene = self.build(parts, K, T_base_cam, rng, stereo)
        seed = int(rng.integers(0, 2**31 - 1))
        linear = self._image(mscene, 0, seed)
        exposure, wb = float(rng.uniform(0.14, 0.3)), rng.uniform(0.92, 1.08, 3).astype(np.float32)
        gain = exposure / max(float(np.median(linear.mean(-1))), 1e-4)  # auto exposure to a random grey level
        rgb = to_srgb8(linear * gain * wb, rng)
        out = RenderOutput(rgb=rgb, depth=depth, depth_bg=depth_bg, mask=mask, instance=instance)
        if stereo:
            right = to_srgb8(self._image(mscene, 1, seed + 1) * gain * wb, rng)
            out.stereo_depth = stereo_depth(rgb, right, K, self.config.stereo_baseline_m)
        return out


_SHARED: PhotorealRenderer | None = None


def shared_renderer(config: PhotorealConfig) -> PhotorealRenderer:
    """The process's renderer for ``config``, built once (Mitsuba's state is global to the process)."""
    global _SHARED
    if _SHARED is None or _SHARED.config != config:
        _SHARED = PhotorealRenderer(config)
    return _SHARED


def to_srgb8(linear: np.ndarray, rng: np.random.Generator | None = None, noise: float = 0.006) -> np.ndarray:
    """Linear RGB -> sRGB uint8 with a soft shoulder for highlights and a little sensor noise."""
    x = linear / (1.0 + 0.15 * linear)  # keep some detail in bright reflections
    x = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)
    if rng is not None and noise > 0:
        x = x + rng.normal(0.0, noise, x.shape)
    return (x.clip(0, 1) * 255 + 0.5).astype(np.uint8)


def stereo_depth(left: np.ndarray, right: np.ndarray, K: CameraIntrinsics, baseline_m: float,
                 z_min: float = 0.25) -> np.ndarray:
    """Depth (metres, 0 = no match) of the left view from a rectified pair by OpenCV semi-global matching."""
    max_disp = K.fx * baseline_m / z_min
    num = int(np.ceil(max_disp / 16.0)) * 16
    block = 5
    sgbm = cv2.StereoSGBM_create(minDisparity=0, numDisparities=num, blockSize=block, P1=8 * block * block,
                                 P2=32 * block * block, disp12MaxDiff=1, uniquenessRatio=10,
                                 speckleWindowSize=60, speckleRange=2, mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
    gl, gr = (cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (left, right))
    disp = sgbm.compute(gl, gr).astype(np.float32) / 16.0
    depth = np.where(disp > 0.5, K.fx * baseline_m / np.maximum(disp, 0.5), 0.0).astype(np.float32)
    return depth
