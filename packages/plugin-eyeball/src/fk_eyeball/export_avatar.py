"""CoRA's relightable export (cora.md §10, ``trainer.py --mode export_eyeball``) from a trained avatar.

Writes into ``out_dir``, with CoRA's names and encodings:

- ``mesh.obj``: marching cubes of the head SDF (eyeballs excluded) on a ``grid³`` lattice over the
  avatar's bounds at level 0 (``level`` = β for a VolSDF backbone, as upstream), largest component,
  quadric decimation removing ``decimation`` (50%, as upstream) of the faces;
- ``mesh_uv.obj``: the same mesh UV-unwrapped (xatlas), with ``mesh_uv.mtl`` binding the maps (fk's
  addition: upstream's OBJ has no material);
- ``coord.pkl`` (``torch.save`` of ``[1, 3, S, S]`` float32 world positions, 0 off the UV islands) and
  ``coord.npy`` (the same array) for the Step-1 tools (``fk eyeball uv-landmarks --coord``);
- ``diffuse.png`` (``albedo ** (1/2.2)``), ``specular.png`` and ``roughness.png`` (linear, 3 equal
  channels), ``normal.png`` (**object/world-space** ``(n + 1) / 2``, as CoRA; not tangent-space), all
  ``S x S`` (``uv_size``), sampled from ``avatar.materials`` at each texel's surface point;
- ``right/`` (leye) and ``left/`` (reye): the eyeball assets through :func:`fk_eyeball.export.write_eyeballs`;
- fk's extras for viewers: ``avatar.glb`` (head + eyeballs, glTF PBR: base colour, metallic-roughness,
  a tangent-space normal map derived from ``normal.png``), and ``preview/`` (see :mod:`fk_eyeball.relight`).

Differences from upstream, each measured or explained in the docs: xatlas instead of Blender 3.1's
angle-based unwrap (so the UV layout differs); scikit-image's marching cubes instead of PyMCubes;
fast-simplification's quadric decimation instead of pymeshlab's; no per-frame visibility clip and no
pymeshfix hole filling (those need the capture's frames and masks, which a checkpoint does not carry).
Texels off the UV islands hold the material at the world origin, as upstream (it queries coordinate 0
there) unless ``fill_gutters`` (fk's option) copies the nearest island texel into them; the GLB always
uses gutter-filled maps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from fk_eyeball.export import to_uint8  # CoRA's save_image rounding, shared with the eyeball maps

MAP_NAMES = ("diffuse", "specular", "roughness", "normal")
GAMMA = 2.2


@runtime_checkable
class Avatar(Protocol):
    """What the export needs from a trained model (``fk_eyeball.avatar.HybridAvatar`` provides it).

    Points are world ``(N, 3)`` tensors; ``eyeball_centres`` rows are CoRA's ``leye`` then ``reye``.
    An optional ``cameras`` attribute ``(cam2world (F, 4, 4), K (3, 3), (h, w))`` gives the capture's
    views for trimming the eyeball caps, and an optional ``surface_level`` the level set to extract
    (VolSDF's β).
    """

    bounds: Any
    eyeball_centres: Any
    eyeball_radius: Any

    def head_sdf(self, x: torch.Tensor) -> torch.Tensor: ...

    def sdf(self, x: torch.Tensor) -> torch.Tensor: ...

    def materials(self, x: torch.Tensor) -> dict[str, torch.Tensor]: ...


@dataclass
class ExportResult:
    out: Path
    files: list[Path]
    vertices: int
    faces: int
    uv_coverage: float  # share of the S x S texels inside the UV islands
    timings: dict[str, float] = field(default_factory=dict)
    eyeballs: bool = True  # False for a Step-1 (no eyeballs) avatar


def _device(avatar: Any) -> torch.device:
    if isinstance(avatar, torch.nn.Module):
        for p in avatar.parameters():
            return p.device
    return torch.device(getattr(avatar, "device", "cpu"))


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, np.float64)


def surface_level(avatar: Any) -> float:
    """The head level set to extract, world units: ``avatar.surface_level`` if it has one, else VolSDF's β
    (``avatar.beta``, in the networks' [0, 1]³ units, times ``2 bound``) as CoRA's ``volsdf`` backbones do,
    else 0. CoRA adds the same amount to the exported eyeball radius."""
    if getattr(avatar, "surface_level", None) is not None:
        return float(avatar.surface_level)
    beta, bound = getattr(avatar, "beta", None), getattr(avatar, "bound", None)
    if beta is not None and bound is not None:
        return float(_numpy(beta)) * 2 * float(bound)
    return 0.0


def _bounds(avatar: Any) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = (_numpy(b).reshape(3) for b in avatar.bounds)
    return lo, hi


def sdf_grid(
    fn: Callable[[torch.Tensor], torch.Tensor], lo, hi, grid: int, device=None, chunk: int = 1 << 18
) -> tuple[np.ndarray, np.ndarray]:
    """``fn`` on the ``grid³`` nodes of the box ``[lo, hi]`` (endpoints included): ``(values, spacing)``."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    axes = [torch.linspace(float(lo[i]), float(hi[i]), grid, dtype=torch.float32) for i in range(3)]
    values = np.empty(grid**3, np.float32)
    gx, gy = torch.meshgrid(axes[0], axes[1], indexing="ij")
    plane = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        for k in range(grid):  # one z value at a time keeps memory at grid² points
            pts = torch.cat([plane, torch.full_like(plane[:, :1], float(axes[2][k]))], 1)
            out = torch.cat([fn(c.to(device)).reshape(-1).float().cpu() for c in pts.split(chunk)])
            values.reshape(grid, grid, grid)[:, :, k] = out.numpy().reshape(grid, grid)
    return values.reshape(grid, grid, grid), (hi - lo) / (grid - 1)


def marching_cubes(values: np.ndarray, lo, spacing, level: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The ``sdf = level`` surface of ``values (X, Y, Z)``: ``(vertices (N, 3) world, faces (F, 3))``.

    Faces are counter-clockwise seen from outside (the SDF's positive side), the largest connected
    component only (CoRA's ``_clip_mesh_fn`` keeps the largest component too).
    """
    from fk.errors import InputError
    from fk.geometry.mesh_ops import compact, largest_component
    from skimage import measure

    if not (values.min() < level < values.max()):
        raise InputError(
            f"the head SDF does not cross {level} inside the avatar's bounds (range {values.min():.3g} .. "
            f"{values.max():.3g})",
            hint="is this a trained checkpoint? an untrained or diverged model has no surface to export",
        )
    verts, faces, _, _ = measure.marching_cubes(
        -values, level=-level, spacing=tuple(float(s) for s in spacing), allow_degenerate=False
    )
    verts = verts.astype(np.float64) + np.asarray(lo, np.float64)
    # scikit-image winds faces towards its larger values, here the inside (-sdf): reverse them
    faces = largest_component(faces[:, ::-1].astype(np.int64), len(verts))
    verts, faces, _ = compact(verts, faces)
    return verts, faces


def decimate(vertices: np.ndarray, faces: np.ndarray, reduction: float) -> tuple[np.ndarray, np.ndarray]:
    """Quadric-error decimation removing ``reduction`` of the faces (CoRA: pymeshlab's, 50%), then the
    largest component again. ``reduction`` 0 returns the mesh unchanged."""
    import fast_simplification
    from fk.geometry.mesh_ops import compact, largest_component

    if reduction <= 0:
        return vertices, faces
    v, f = fast_simplification.simplify(
        np.ascontiguousarray(vertices, np.float32),
        np.ascontiguousarray(faces, np.int32),
        target_reduction=reduction,
    )
    f = largest_component(np.asarray(f, np.int64), len(v))
    v, f, _ = compact(np.asarray(v, np.float64), f)
    return v, f


def unwrap(vertices: np.ndarray, faces: np.ndarray, uv_size: int, padding: int | None = None):
    """xatlas charts packed into an ``uv_size²`` atlas: ``(uvs (T, 2), uv_faces (F, 3))``, faces unchanged.

    ``padding`` texels between charts (default ``max(2, uv_size // 512)``) leave room for bilinear
    lookups and mip levels. UVs follow OBJ (v up).

    xatlas segments a Taubin-smoothed twin of the mesh (same connectivity, 10 iterations): on raw
    marching-cubes triangles (slivers, stair-step normals) it cuts ~2000 charts for 60k faces, on the
    twin ~20; the UVs are then used on the unsmoothed vertices.
    """
    import trimesh
    import xatlas

    twin = trimesh.Trimesh(np.array(vertices, np.float64), np.asarray(faces), process=False)
    trimesh.smoothing.filter_taubin(twin, iterations=10)
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(twin.vertices, np.float32), np.ascontiguousarray(faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(uv_size)
    pack.padding = int(padding if padding is not None else max(2, uv_size // 512))
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    vmapping, indices, uvs = atlas[0]
    if not np.array_equal(vmapping[indices], faces):  # xatlas keeps the face order; check, do not assume
        raise RuntimeError("xatlas reordered the faces")
    return uvs.astype(np.float64), indices.astype(np.int64)


def bake(
    avatar: Any,
    vertices,
    faces,
    uvs,
    uv_faces,
    uv_size: int,
    chunk: int = 1 << 16,
    fill_gutters: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Material maps in image layout (row 0 = v 1): ``coord (S, S, 3)``, ``covered (S, S)``, ``albedo``,
    ``specular (S, S, 1)``, ``roughness (S, S, 1)``, ``normal (S, S, 3)`` (linear floats, unencoded).

    Every texel is queried: covered ones at their surface point, the others at the world origin as
    upstream, or (``fill_gutters``) they copy their nearest covered texel.
    """
    from fk.geometry.uv import texel_map

    tm = texel_map(uvs, uv_faces, uv_size)
    covered = tm.covered
    coord = np.zeros((uv_size, uv_size, 3))
    coord[covered] = tm.gather(vertices, faces)
    device = _device(avatar)
    pts = torch.from_numpy(coord[covered]).float()
    if not fill_gutters:  # the origin's material, once, stands for every gutter texel (upstream's value)
        pts = torch.cat([pts, torch.zeros(1, 3)])
    outs: dict[str, list[torch.Tensor]] = {}
    chunks = pts.split(chunk)
    for i, c in enumerate(chunks):
        m = avatar.materials(c.to(device))
        for k in ("albedo", "specular", "roughness", "normal"):
            outs.setdefault(k, []).append(m[k].detach().reshape(len(c), -1).double().cpu())
        if progress:
            progress(i + 1, len(chunks))
    maps = {"coord": coord, "covered": covered}
    for k, parts in outs.items():
        vals = torch.cat(parts).numpy()
        full = np.empty((uv_size, uv_size, vals.shape[1]))
        if fill_gutters:
            full[covered] = vals
            full = fill_outside(full, covered)
        else:
            full[covered] = vals[:-1]
            full[~covered] = vals[-1]
        maps[k] = full
    n = maps["normal"]
    maps["normal"] = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    return maps


def fill_outside(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Copy each uncovered texel's nearest covered texel into it (seam dilation to the whole atlas)."""
    from scipy import ndimage

    if covered.all() or not covered.any():
        return image
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return image[rows, cols]


def encode_maps(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CoRA's PNG encodings: sRGB-ish diffuse, linear specular/roughness as 3 channels, ``(n + 1) / 2``."""
    return {
        "diffuse": to_uint8(np.clip(maps["albedo"], 0, None) ** (1 / GAMMA)),
        "specular": to_uint8(np.repeat(maps["specular"], 3, axis=-1)),
        "roughness": to_uint8(np.repeat(maps["roughness"], 3, axis=-1)),
        "normal": to_uint8((maps["normal"] + 1) / 2),
    }


def tangent_space_normals(
    vertices: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray,
    uv_faces: np.ndarray,
    normal_map: np.ndarray,
    covered: np.ndarray,
) -> np.ndarray:
    """Object-space ``normal_map (S, S, 3)`` -> glTF tangent-space normals ``(S, S, 3)`` in [-1, 1].

    Per UV corner (the GLB's split vertices): tangent = UV-gradient direction of the faces around it,
    Gram-Schmidt against the vertex normal, handedness from the bitangent (glTF: ``B = w (N x T)``);
    interpolated per texel with the texel's barycentrics. Viewers that recompute MikkTSpace tangents see
    the same frames up to the averaging of corner tangents. Uncovered texels get (0, 0, 1).
    """
    from fk.geometry.uv import texel_map
    from fk.io.mesh import vertex_normals

    v = np.asarray(vertices, np.float64)
    t = np.asarray(uvs, np.float64)
    tri, ttri = v[faces], t[uv_faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    d1, d2 = ttri[:, 1] - ttri[:, 0], ttri[:, 2] - ttri[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    r = np.where(np.abs(det) > 1e-20, 1 / np.where(det == 0, 1, det), 0)[:, None]
    ftan = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * r
    fbit = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * r
    tan = np.zeros((len(t), 3))
    bit = np.zeros((len(t), 3))
    for k in range(3):
        np.add.at(tan, uv_faces[:, k], ftan)
        np.add.at(bit, uv_faces[:, k], fbit)
    vn = vertex_normals(v, faces)
    nrm = np.zeros((len(t), 3))
    nrm[uv_faces.reshape(-1)] = vn[faces.reshape(-1)]
    tan -= nrm * (tan * nrm).sum(1, keepdims=True)
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-12)
    w = np.where((np.cross(nrm, tan) * bit).sum(1) < 0, -1.0, 1.0)
    size = normal_map.shape[0]
    tm = texel_map(uvs, uv_faces, size)
    cov = tm.covered
    T = tm.gather(tan, uv_faces)
    N = tm.gather(nrm, uv_faces)
    W = tm.gather(w[:, None], uv_faces)
    N /= np.maximum(np.linalg.norm(N, axis=1, keepdims=True), 1e-12)
    T -= N * (T * N).sum(1, keepdims=True)
    T /= np.maximum(np.linalg.norm(T, axis=1, keepdims=True), 1e-12)
    B = np.sign(W) * np.cross(N, T)
    n = normal_map[cov]
    out = np.zeros_like(normal_map)
    out[..., 2] = 1
    out[cov] = np.stack([(n * T).sum(1), (n * B).sum(1), (n * N).sum(1)], 1)
    return fill_outside(out, cov)


def _cameras(avatar: Any, cameras) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The views that trim the eyeball caps: given, the avatar's, or one camera facing the eyes."""
    cams = cameras if cameras is not None else getattr(avatar, "cameras", None)
    if cams is not None:
        c2w, K, size = cams
        return np.asarray(c2w, np.float64).reshape(-1, 4, 4), np.asarray(K, np.float64), tuple(size)
    # no capture at hand: a camera on the line from the bounds' centre through the eyes' midpoint
    lo, hi = _bounds(avatar)
    eyes = _numpy(avatar.eyeball_centres).reshape(2, 3).mean(0)
    fwd = eyes - (lo + hi) / 2
    fwd = -fwd / max(np.linalg.norm(fwd), 1e-12)
    up = np.array([0.0, 1.0, 0.0]) if abs(fwd[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
    right = np.cross(fwd, -up)
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2] = right, np.cross(fwd, right), fwd
    c2w[:3, 3] = eyes - 3 * fwd * np.linalg.norm(hi - lo)
    return c2w[None], np.array([[500.0, 0, 255.5], [0, 500.0, 255.5], [0, 0, 1]]), (512, 512)


def export_avatar(
    avatar: Any,
    out_dir: str | Path,
    uv_size: int = 4096,
    grid: int = 256,
    *,
    decimation: float = 0.5,
    cameras=None,
    fill_gutters: bool = False,
    preview: bool = True,
    preview_size: int = 512,
    chunk: int = 1 << 16,
    log: Callable[[str], None] | None = None,
    progress: Callable[[str], Callable[[int, int], None]] | None = None,
) -> ExportResult:
    """Export a trained avatar as CoRA does (module docstring), plus the GLB and the relit preview."""
    import fk.io.mesh as fkmesh
    from fk.io.image import save_image

    from fk_eyeball.export import write_eyeballs

    say = log or (lambda m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    lo, hi = _bounds(avatar)
    level = surface_level(avatar)
    device = _device(avatar)

    t = time.perf_counter()
    say(f"head SDF on a {grid}^3 grid")
    values, spacing = sdf_grid(avatar.head_sdf, lo, hi, grid, device=device, chunk=chunk)
    timings["sdf_grid"] = time.perf_counter() - t
    t = time.perf_counter()
    verts, faces = marching_cubes(values, lo, spacing, level)
    del values
    n_mc = len(faces)
    verts, faces = decimate(verts, faces, decimation)
    timings["marching_cubes"] = time.perf_counter() - t
    say(f"marching cubes: {n_mc} faces, {len(faces)} after decimation ({decimation:.0%} removed)")
    fkmesh.write_obj(out / "mesh.obj", fkmesh.Mesh(verts, faces, name="mesh"))

    t = time.perf_counter()
    say(f"UV unwrap (xatlas, {len(faces)} faces) ...")
    uvs, uv_faces = unwrap(verts, faces, uv_size)
    timings["unwrap"] = time.perf_counter() - t
    say(f"xatlas: {len(uvs)} UV vertices in {timings['unwrap']:.0f} s; baking {uv_size}² maps")

    t = time.perf_counter()
    maps = bake(avatar, verts, faces, uvs, uv_faces, uv_size, chunk=chunk, fill_gutters=fill_gutters,
                progress=progress("bake") if progress else None)  # fmt: skip
    timings["bake"] = time.perf_counter() - t
    covered = maps["covered"]
    coord = np.where(covered[..., None], maps["coord"], 0).transpose(2, 0, 1)[None].astype(np.float32)
    np.save(out / "coord.npy", coord)
    torch.save(torch.from_numpy(coord), out / "coord.pkl")
    del coord
    pngs = encode_maps(maps)
    for name in MAP_NAMES:
        save_image(out / f"{name}.png", pngs[name])
    _write_obj_with_material(out, verts, faces, uvs, uv_faces)

    t = time.perf_counter()
    has_eyes = avatar.eyeball_centres is not None and avatar.eyeball_radius is not None
    if has_eyes:  # a Step-1 (config_wo-hybrid) model has none
        c2w, K, size = _cameras(avatar, cameras)
        centres = _numpy(avatar.eyeball_centres).reshape(2, 3)

        def eye_albedo(_eye: str, p: np.ndarray) -> np.ndarray:
            with torch.enable_grad():
                m = avatar.materials(torch.from_numpy(p).float().to(device))
            return m["albedo"].detach().double().cpu().numpy()

        # VolSDF: CoRA adds β to the exported radius as to the head's level set
        write_eyeballs(out, {"leye": centres[0], "reye": centres[1]}, float(_numpy(avatar.eyeball_radius)),
                       c2w, K, size, eye_albedo, beta=level)  # fmt: skip
        timings["eyeballs"] = time.perf_counter() - t

    t = time.perf_counter()
    write_glb(out, verts, faces, uvs, uv_faces, maps, fill_gutters, eyes=has_eyes)
    timings["glb"] = time.perf_counter() - t
    files = [out / n for n in ("mesh.obj", "mesh_uv.obj", "mesh_uv.mtl", "coord.pkl", "coord.npy")]
    files += [out / f"{n}.png" for n in MAP_NAMES] + [out / "avatar.glb"]
    if has_eyes:
        files += [
            out / d / n
            for d in ("right", "left")
            for n in ("mesh.obj", "mesh_uv.obj", "coord.pkl", "coord.npy", "diffuse.png", "normal.png")
        ]
    if preview:
        from fk_eyeball.relight import write_preview

        t = time.perf_counter()
        files += write_preview(out, out / "preview", size=preview_size)
        timings["preview"] = time.perf_counter() - t
    return ExportResult(out, files, len(verts), len(faces), float(covered.mean()), timings, has_eyes)


def _write_obj_with_material(out: Path, verts, faces, uvs, uv_faces) -> None:
    """``mesh_uv.obj`` with ``mesh_uv.mtl`` binding CoRA's map files (diffuse as map_Kd, the others as the
    common PBR extensions ``map_Pr`` roughness, ``map_Ks`` specular and ``norm`` normal)."""
    import fk.io.mesh as fkmesh
    from fk.atomic import atomic_open

    mtl = (
        "# written by fk: CoRA's maps (normal.png is object-space, not tangent-space)\n"
        "newmtl material0\nKa 1 1 1\nKd 1 1 1\nKs 1 1 1\nd 1\nillum 2\n"
        "map_Kd diffuse.png\nmap_Ks specular.png\nmap_Pr roughness.png\nnorm normal.png\n"
    )
    with atomic_open(out / "mesh_uv.mtl", "w") as fh:
        fh.write(mtl)
    fkmesh.write_obj(
        out / "mesh_uv.obj", fkmesh.Mesh(verts, faces, uvs=uvs, uv_faces=uv_faces, name="mesh_uv")
    )
    text = (out / "mesh_uv.obj").read_text()
    head, _, rest = text.partition("\n")
    # the material binding goes before the object and its faces (OBJ readers apply usemtl to what follows)
    with atomic_open(out / "mesh_uv.obj", "w") as fh:
        fh.write(f"{head}\nmtllib mesh_uv.mtl\nusemtl material0\n{rest}")


def write_glb(
    out: Path, verts, faces, uvs, uv_faces, maps: dict[str, np.ndarray], filled: bool, eyes: bool = True
) -> Path:
    """``avatar.glb``: the head with PBR maps and (``eyes``) both eyeball caps (diffuse, roughness 0.05)."""
    import fk.io.mesh as fkmesh
    from fk.io.image import load_image
    from fk.io.mesh import vertex_normals

    from fk_eyeball.brdf import EYE_ROUGHNESS
    from fk_eyeball.export import EXPORT_FOLDER

    covered = maps["covered"]
    if filled:
        albedo, rough, normal = maps["albedo"], maps["roughness"], maps["normal"]
    else:
        albedo, rough, normal = (fill_outside(maps[k], covered) for k in ("albedo", "roughness", "normal"))
    base = to_uint8(np.clip(albedo, 0, None) ** (1 / GAMMA))
    mr = np.zeros(base.shape, np.uint8)  # glTF: G roughness, B metallic (0), R unused
    mr[..., 1] = to_uint8(rough[..., 0])
    tangent = tangent_space_normals(verts, faces, uvs, uv_faces, normal, covered)
    meshes = [fkmesh.Mesh(verts, faces, normals=vertex_normals(verts, faces), uvs=uvs, uv_faces=uv_faces,
                          texture=base, name="head")]  # fmt: skip
    pbr = [{"metallic_roughness": mr, "normal": to_uint8((tangent + 1) / 2)}]
    for eye in ("leye", "reye") if eyes else ():
        folder = out / EXPORT_FOLDER[eye]
        m = fkmesh.read_obj(folder / "mesh_uv.obj")
        lin = load_image(folder / "diffuse.png").astype(np.float64) / 255  # saved linear (upstream)
        tex = to_uint8(lin ** (1 / GAMMA))
        meshes.append(
            m.replace(texture=tex, normals=vertex_normals(m.vertices, m.faces), name=f"eyeball_{eye}")
        )
        pbr.append({"roughness": EYE_ROUGHNESS})
    return fkmesh.write_glb_scene(out / "avatar.glb", meshes, materials=pbr)


__all__ = [
    "Avatar", "ExportResult", "bake", "encode_maps", "export_avatar", "fill_outside", "marching_cubes",
    "sdf_grid",
    "tangent_space_normals", "unwrap",
]  # fmt: skip
