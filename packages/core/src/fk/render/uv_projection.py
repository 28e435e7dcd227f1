"""Photo -> UV texture: a photo projected into a mesh's UV layout, with visibility, mirrored and smooth fills.

This is texture *projection* (the FFHQ-UV dataset pipeline's image->UV step, ffhquv.md §3.2, done
with a z-buffer), not a generative texture: what the camera saw is copied, texels seen only on the
other side of the face are copied from their mirror image, and everything else is filled smoothly.

Per texel of an ``S x S`` map (:func:`fk.geometry.uv.texel_map`):

1. its 3-D point and normal are interpolated from the posed mesh (OpenCV camera frame of the photo);
2. **visible** when the point is in front of the rendered depth (z-buffer at the photo's resolution,
   at most ``depth_max_side`` pixels) within ``depth_tolerance`` x the mesh's bounding-box diagonal,
   and its normal faces the camera; the weight ramps from 0 at ``cos = min_facing`` to 1 at
   ``min_facing + facing_ramp`` (upstream's dataset code uses a hard ``n_z > 0.1``), times an
   optional photo-space ``mask`` (e.g. a face-parsing mask);
3. the photo is sampled **bilinearly** at the projected point, at its full resolution;
4. **mirrored fill** (with ``symmetry_vertices``, the unposed mesh in a frame where x -> -x is the
   face's mirror): a texel not fully visible takes the colour of the visible texel nearest to its
   mirrored 3-D point (within ``mirror_tolerance`` x the diagonal), blended by the visibility weight;
5. **smooth fill** for the rest: a pull-push (coarse-to-fine weighted average) over the whole map,
   which also pads outside the UV islands so bilinear lookups never bleed black across seams.

Conventions: ``photo (H, W, 3) uint8``; ``vertices (N, 3)`` OpenCV camera frame (x right, y down,
z forward); ``K (3, 3)`` the photo's pixel intrinsics, pixel centres at integers; UVs as OBJ
(``fk.geometry.uv``): row 0 of the returned texture is ``v = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fk.errors import ShapeError

# codes of UVProjection.source
OUTSIDE, PHOTO, MIRRORED, FILLED = 0, 1, 2, 3


@dataclass
class UVProjection:
    """The projected texture and where each texel came from.

    ``texture (S, S, 3) uint8``; ``confidence (S, S) float32`` in [0, 1] (1: straight from the photo or
    its mirror); ``source (S, S) uint8``: 0 outside the layout, 1 photo, 2 mirrored, 3 smooth fill
    (the larger share of each texel's colour); ``stats``: fractions of the layout's texels per source.
    """

    texture: np.ndarray
    confidence: np.ndarray
    source: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)

    def source_image(self) -> np.ndarray:
        """The ``source`` codes as a picture: grey outside, green photo, blue mirrored, orange filled."""
        palette = np.array([[40, 40, 40], [60, 170, 80], [70, 110, 220], [230, 150, 50]], np.uint8)
        return palette[self.source]


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / max(e1 - e0, 1e-12), 0.0, 1.0)
    return t * t * (3 - 2 * t)


IMPLS = ("auto", "compiled", "numpy")


def _use_compiled(impl: str) -> bool:
    """``auto``: the kernels when numba imports; ``compiled`` insists on them; ``numpy``: the reference."""
    from fk.render.cpu import uv_texture

    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "compiled" and not uv_texture.HAVE_NUMBA:
        raise ValueError("impl='compiled' needs numba")
    return impl != "numpy" and uv_texture.HAVE_NUMBA


def pull_push_fill(image: np.ndarray, weight: np.ndarray, levels: int | None = None,
                   impl: str = "auto") -> np.ndarray:
    """Fill an image where ``weight`` is low with a smooth weighted average of its surroundings.

    ``image (H, W, C)`` float, ``weight (H, W)`` in [0, 1]. Pull: halve the resolution repeatedly,
    averaging colour x weight and weight over 2x2 blocks (weights saturate at 1); push: from the
    coarsest level up, each level's missing share ``1 - w`` is taken from the bilinearly upsampled
    coarser result. Known pixels (weight 1) are returned unchanged. Returns ``(H, W, C)`` float64.

    ``impl``: ``numpy`` (numpy and torch's bilinear upsampling: the reference), ``compiled`` (one numba
    kernel, :mod:`fk.render.cpu.uv_texture`: the same sums in the same order, the upsampling's within a
    few ulps of torch's) or ``auto`` (compiled when numba imports).
    """
    img = np.asarray(image, np.float64)
    w = np.clip(np.asarray(weight, np.float64), 0.0, 1.0)
    if img.ndim != 3 or img.shape[:2] != w.shape:
        raise ShapeError(f"weight {w.shape} must match image {img.shape[:2]}")
    if levels is None:
        levels = int(np.ceil(np.log2(max(img.shape[:2])))) + 1
    if _use_compiled(impl):
        from fk.render.cpu.uv_texture import pull_push

        return pull_push(img, w, levels)
    import torch

    pyramid = [(img * w[..., None], w)]
    for _ in range(levels):
        cw, ww = pyramid[-1]
        if min(ww.shape) <= 1:
            break
        h2, w2 = (ww.shape[0] + 1) // 2, (ww.shape[1] + 1) // 2
        pad = ((0, 2 * h2 - ww.shape[0]), (0, 2 * w2 - ww.shape[1]))
        if pad != ((0, 0), (0, 0)):  # an even size needs no zero row or column (and no copy)
            cw = np.pad(cw, (*pad, (0, 0)))
            ww = np.pad(ww, pad)
        cw = cw.reshape(h2, 2, w2, 2, -1).sum((1, 3))
        ww = ww.reshape(h2, 2, w2, 2).sum((1, 3))
        scale = np.minimum(1.0, ww) / np.maximum(ww, 1e-12)  # normalise heavy blocks to weight 1
        pyramid.append((cw * scale[..., None], ww * scale))
    cw, ww = pyramid[-1]
    colour = cw / np.maximum(ww, 1e-12)[..., None]
    for cw, ww in reversed(pyramid[:-1]):
        up = (
            torch.nn.functional.interpolate(
                torch.from_numpy(colour).permute(2, 0, 1)[None],
                size=ww.shape,
                mode="bilinear",
                align_corners=False,
            )[0]
            .permute(1, 2, 0)
            .numpy()
        )
        colour = cw + (1.0 - ww)[..., None] * up  # cw already carries weight ww
    return colour


# A texel map is a property of a model's UV layout, the same for every face fitted with it: what the
# projection needs of it (which texels are covered, their triangles and barycentrics, about
# 40 MiB at 1024²) is kept for the last few layouts, keyed by the layout's bytes.
_TEXEL_MAPS: dict[tuple[str, int, str], dict[str, Any]] = {}
_TEXEL_MAPS_KEPT = 4
_GATHER_ROWS = 1 << 17


# The texel map of a layout is also kept on disk, under $FK_HOME/cache/uv_layouts/ (0.18 CPU-s to rasterise
# at 1024², a few ms to read back): a new process (every `fk run`) starts from it. One .npy file per array
# in a folder per layout: reading the same arrays from an .npz (version 1) took 23-100 ms, its zip layer
# checking and copying 30 MB. Bump the version when fk.geometry.uv.texel_map or the entry's layout changes.
_LAYOUT_CACHE_VERSION = 2
_LAYOUT_ARRAYS = ("covered", "triangle", "bary")


def _layout_cache_path(key: tuple[str, int, str]):
    from fk.assets import fk_home

    digest, size, backend = key
    return fk_home() / "cache" / "uv_layouts" / f"{digest}_{size}_{backend}_v{_LAYOUT_CACHE_VERSION}"


def _read_layout_cache(key: tuple[str, int, str]) -> dict[str, Any] | None:
    """The cached entry, or None when absent, unreadable or not the expected shapes (then it is rebuilt)."""
    folder = _layout_cache_path(key)
    try:
        covered, triangle, bary = (np.load(folder / f"{n}.npy", allow_pickle=False) for n in _LAYOUT_ARRAYS)
    except (OSError, ValueError, EOFError):
        return None
    size = key[1]
    m = int(covered.sum()) if covered.dtype == np.bool_ else -1
    if (covered.shape != (size, size) or covered.dtype != np.bool_ or triangle.shape != (m,)
            or triangle.dtype != np.int32 or bary.shape != (m, 3) or bary.dtype != np.float64):
        return None
    return {"covered": covered, "triangle": triangle, "bary": bary}


def _write_layout_cache(key: tuple[str, int, str], entry: dict[str, Any]) -> None:
    """Best effort: a read-only or full disk only costs the next process the rasterisation. Each file is
    written atomically; a reader missing one rebuilds the entry."""
    from fk.atomic import atomic_open

    folder = _layout_cache_path(key)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in _LAYOUT_ARRAYS:
            with atomic_open(folder / f"{name}.npy", "wb") as fh:
                np.save(fh, entry[name], allow_pickle=False)
        digest, size, backend = key
        (folder.parent / f"{digest}_{size}_{backend}_v1.npz").unlink(missing_ok=True)  # version 1's .npz
    except OSError:
        pass


def _layout_texels(uvs: Any, uv_faces: Any, size: int, backend: str):
    """(covered (S, S) bool, covered texels' (M,) int32 triangles, (M, 3) barycentrics) of a UV layout."""
    import hashlib

    from fk.geometry.uv import texel_map

    uv = np.ascontiguousarray(np.asarray(uvs, np.float64))
    uvf = np.ascontiguousarray(np.asarray(uv_faces, np.int64))
    digest = hashlib.sha1(uv.tobytes() + b"|" + uvf.tobytes() + b"|" + str(uv.shape).encode()).hexdigest()
    key = (digest, int(size), backend)
    entry = _TEXEL_MAPS.get(key)
    if entry is None:
        entry = _read_layout_cache(key)
    if entry is None:
        tmap = texel_map(uv, uvf, size, backend=backend)
        covered = tmap.covered
        entry = {"covered": covered, "triangle": tmap.triangle[covered].astype(np.int32),
                 "bary": tmap.barycentric[covered]}
        _write_layout_cache(key, entry)
    if key not in _TEXEL_MAPS:
        for name in _LAYOUT_ARRAYS:
            entry[name].setflags(write=False)  # shared by every later call
        while len(_TEXEL_MAPS) >= _TEXEL_MAPS_KEPT:
            _TEXEL_MAPS.pop(next(iter(_TEXEL_MAPS)))
        _TEXEL_MAPS[key] = entry
    return entry["covered"], entry["triangle"], entry["bary"]


def _depth_map(
    vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, size: tuple[int, int], backend: str
) -> np.ndarray:
    import torch

    from fk.render.mesh import render_mesh

    with torch.no_grad():
        out = render_mesh(
            torch.as_tensor(vertices, dtype=torch.float32)[None],
            faces,
            torch.as_tensor(K, dtype=torch.float32),
            size,
            backend=backend,
        )
    return out.depth[0].double().numpy()


def _texel_samples_numpy(per_vertex, corners, bary, K, depth, tolerance, photo, mask, min_facing,
                         facing_ramp):
    """Steps 1-3 in numpy and scipy (the reference of :func:`fk.render.cpu.uv_texture.texel_samples`)."""
    from scipy.ndimage import map_coordinates

    n_cov = len(bary)
    # 1. texel points and normals in the camera frame (and the unposed points), in one gather
    gathered = np.empty((n_cov, per_vertex.shape[1]))
    for start in range(0, n_cov, _GATHER_ROWS):  # in slices: the (rows, 3, C) corner values stay small
        rows = slice(start, start + _GATHER_ROWS)
        gathered[rows] = np.einsum("mk,mkc->mc", bary[rows], per_vertex[corners[rows]])
    points, normals = gathered[:, 0:3], gathered[:, 3:6]
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    view = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    facing = -(normals * view).sum(1)

    # 2. visibility: in front of the z-buffer, facing the camera, inside the photo (and the mask)
    h, w = photo.shape[:2]
    z = np.maximum(points[:, 2], 1e-9)
    px = (K[0, 0] * points[:, 0] + K[0, 1] * points[:, 1]) / z + K[0, 2]
    py = K[1, 1] * points[:, 1] / z + K[1, 2]
    dh, dw = depth.shape
    dx = np.rint(px * dw / w + 0.5 * dw / w - 0.5).astype(np.int64)
    dy = np.rint(py * dh / h + 0.5 * dh / h - 0.5).astype(np.int64)
    inside = (points[:, 2] > 0) & (dx >= 0) & (dx < dw) & (dy >= 0) & (dy < dh)
    zbuf = np.zeros(n_cov)
    zbuf[inside] = depth[dy[inside], dx[inside]]
    unoccluded = inside & (zbuf > 0) & (points[:, 2] <= zbuf + tolerance)
    weight = _smoothstep(min_facing, min_facing + facing_ramp, facing) * unoccluded
    if mask is not None:
        m = mask
        mx = np.clip(np.rint(px).astype(np.int64), 0, w - 1)
        my = np.clip(np.rint(py).astype(np.int64), 0, h - 1)
        weight = weight * np.where(inside, m[my, mx], 0.0)

    # 3. bilinear photo samples at the projected points (full resolution)
    coords = np.stack([np.clip(py, 0, h - 1), np.clip(px, 0, w - 1)])
    colour = (
        np.stack(
            [
                map_coordinates(photo[..., c].astype(np.float32), coords, order=1, mode="nearest")
                for c in range(3)
            ],
            axis=1,
        ).astype(np.float64)
        / 255.0
    )
    return weight, colour, gathered[:, 6:9]


def _nearest_donors(donor_points: np.ndarray, query_points: np.ndarray, radius: float) -> np.ndarray:
    """Index of each query's nearest donor closer than ``radius``, -1 where none is."""
    from scipy.spatial import cKDTree

    if not len(donor_points) or not len(query_points):
        return np.full(len(query_points), -1, np.int64)
    # Texel points are dense samples of a surface: a tree split at the midpoints with unshrunk
    # cells answers these radius-bounded queries 6x faster than scipy's default (0.12 s against
    # 0.71 s for 250k queries into 486k donors), with the same neighbours. One thread: workers=-1
    # took 0.1 s less wall but 0.2 s more CPU (load 2.5), a loss for a batch that fills the cores.
    tree = cKDTree(donor_points, balanced_tree=False, compact_nodes=False)
    dist, nn = tree.query(query_points, k=1, distance_upper_bound=radius)
    return np.where(np.isfinite(dist), nn, -1)


def _project_numpy(per_vertex, has_sym, faces, triangle, bary, K, depth, tolerance, photo, mask, min_facing,
                   facing_ramp, radius, covered, fill):
    """Steps 1-5 in numpy, scipy and torch: the reference of :func:`_project_compiled`."""
    corners = faces[triangle]
    weight, colour, canon = _texel_samples_numpy(per_vertex, corners, bary, K, depth, tolerance, photo, mask,
                                                 min_facing, facing_ramp)

    # 4. mirrored fill from the visible texel nearest to each texel's mirror point
    mirror_share = np.zeros(len(weight))
    if has_sym:
        donors = np.flatnonzero(weight >= 0.5)
        needs = np.flatnonzero(weight < 1.0)
        if len(donors) and len(needs):
            mirrored = canon[needs] * np.array([-1.0, 1.0, 1.0])
            # A mirror point outside the donors' bounding box grown by the radius has no donor within it:
            # it skips the tree search (much of the unseen side of the head); the answers are the same.
            donor_points = canon[donors]
            lo, hi = donor_points.min(0) - radius, donor_points.max(0) + radius
            near = np.all((mirrored >= lo) & (mirrored <= hi), axis=1)
            needs, mirrored = needs[near], mirrored[near]
            nn = _nearest_donors(donor_points, mirrored, radius)
            ok = nn >= 0
            src = donors[nn[ok]]
            dst = needs[ok]
            share = (1.0 - weight[dst]) * weight[src]
            colour[dst] = (weight[dst, None] * colour[dst] + share[:, None] * colour[src]) / np.maximum(
                weight[dst] + share, 1e-12
            )[:, None]
            mirror_share[dst] = share
    confidence = np.clip(weight + mirror_share, 0.0, 1.0)

    # 5. smooth fill of the rest (and padding around the islands)
    size = covered.shape[0]
    tex = np.zeros((size, size, 3))
    conf_map = np.zeros((size, size))
    tex[covered] = colour
    conf_map[covered] = confidence
    if fill:
        filled = pull_push_fill(tex, conf_map, impl="numpy")
        tex = conf_map[..., None] * tex + (1.0 - conf_map[..., None]) * filled
    texture = np.clip(np.rint(tex * 255.0), 0, 255).astype(np.uint8)
    return texture, conf_map, confidence, mirror_share, weight


def _project_compiled(per_vertex, has_sym, faces, triangle, bary, K, depth, tolerance, photo, mask,
                      min_facing, facing_ramp, radius, covered, fill):
    """Steps 1-5 in one kernel call (:func:`fk.render.cpu.uv_texture.project`): the numbers of
    :func:`_project_numpy` but for the fill's rounding, see :func:`project_photo_to_uv`."""
    from fk.render.cpu.uv_texture import project

    texture, conf_map, weight, mirror_share, confidence = project(
        per_vertex, has_sym, faces, triangle, bary, K, depth, tolerance, photo, mask, min_facing, facing_ramp,
        radius, np.flatnonzero(covered), covered.shape[0], fill)
    return texture, conf_map, confidence, mirror_share, weight


def project_photo_to_uv(
    photo: Any,
    vertices: Any,
    faces: Any,
    uvs: Any,
    uv_faces: Any,
    K: Any,
    uv_size: int = 1024,
    *,
    symmetry_vertices: Any = None,
    mask: Any = None,
    min_facing: float = 0.1,
    facing_ramp: float = 0.25,
    depth_tolerance: float = 0.01,
    mirror_tolerance: float = 0.02,
    depth_max_side: int = 1024,
    fill: bool = True,
    backend: str = "auto",
    impl: str = "auto",
) -> UVProjection:
    """Project ``photo`` onto the mesh and unwrap it into a ``uv_size``² texture (see the module docstring).

    Args:
        photo: (H, W, 3) uint8 RGB.
        vertices: (N, 3) the posed mesh in the photo's OpenCV camera frame.
        faces: (F, 3) 0-based, outward (counter-clockwise seen from outside).
        uvs, uv_faces: (T, 2) and (F, 3), OBJ convention (v up).
        K: (3, 3) pixel intrinsics of ``photo``.
        symmetry_vertices: (N, 3) the same mesh unposed, mirror-symmetric under x -> -x; None: no mirror fill.
        mask: optional (H, W) photo-space weight in [0, 1] (bool allowed) multiplying the visibility.
        fill: smooth-fill what neither the photo nor the mirror gives (False: leave it black).
        backend: rasteriser for the UV layout and the depth map (``fk.render`` backends).
        impl: ``numpy`` (the reference: numpy, scipy's ``map_coordinates`` and torch's upsampling),
            ``compiled`` (one fused numba kernel, :mod:`fk.render.cpu.uv_texture`, with its own k-d
            tree) or ``auto`` (compiled when numba imports). Steps 1-4 give the same numbers bit for
            bit, so ``source`` and ``confidence`` are equal; the fill's upsampling differs from torch's
            by a few ulps, so a texel whose value lands on a rounding boundary may differ by one level
            (none on the demo; at most 1e-5 of the values, ``tests/render/test_uv_projection.py``).
    """
    from fk.io.mesh import vertex_normals

    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ShapeError(f"photo: expected (H, W, 3) uint8, got {photo.shape} {photo.dtype}")
    verts = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    K = np.asarray(K, np.float64)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ShapeError(f"vertices: expected (N, 3), got {verts.shape}")
    if K.shape != (3, 3):
        raise ShapeError(f"K: expected (3, 3), got {K.shape}")
    # the kernel indexes without bounds checks: faces must name vertices, uv_faces pair with faces
    if faces.ndim != 2 or faces.shape[1] != 3 or (faces.size and not 0 <= faces.min() <= faces.max()
                                                   < len(verts)):
        raise ShapeError(f"faces: expected (F, 3) indices into the {len(verts)} vertices")
    if np.shape(uv_faces) != faces.shape:
        raise ShapeError(f"uv_faces: expected {faces.shape} like faces, got {np.shape(uv_faces)}")
    size = int(uv_size)
    ctx_backend = "cpu" if backend == "auto" else backend
    covered, triangle, bary = _layout_texels(uvs, uv_faces, size, ctx_backend)
    n_cov = len(bary)
    diag = float(np.linalg.norm(verts.max(0) - verts.min(0)))
    sym = None
    if symmetry_vertices is not None:
        sym = np.asarray(symmetry_vertices, np.float64)
        if sym.shape != verts.shape:
            raise ShapeError(f"symmetry_vertices: expected {verts.shape}, got {sym.shape}")
    for name, arr in (("vertices", verts), ("symmetry_vertices", sym), ("K", K)):
        if arr is not None and not np.isfinite(arr).all():
            raise ShapeError(f"{name}: not all finite (NaN or inf)")

    compiled = _use_compiled(impl)
    h, w = photo.shape[:2]
    if mask is not None:
        mask = np.asarray(mask, np.float64)
        if mask.shape != (h, w):
            raise ShapeError(f"mask: expected ({h}, {w}) like the photo, got {mask.shape}")
    per_vertex = np.concatenate([verts, vertex_normals(verts, faces)] + ([sym] if sym is not None else []), 1)
    scale = min(1.0, depth_max_side / max(h, w))
    dh, dw = max(1, round(h * scale)), max(1, round(w * scale))
    shrink = np.array([[dw / w, 0, 0.5 * dw / w - 0.5], [0, dh / h, 0.5 * dh / h - 0.5], [0, 0, 1.0]])
    depth = _depth_map(verts, faces, shrink @ K, (dh, dw), ctx_backend)
    tolerance = depth_tolerance * diag
    radius = 0.0
    if sym is not None:
        radius = mirror_tolerance * float(np.linalg.norm(sym.max(0) - sym.min(0)))
    if compiled:
        texture, conf_map, confidence, mirror_share, weight = _project_compiled(
            per_vertex, sym is not None, faces, triangle, bary, K, depth, tolerance, photo, mask, min_facing,
            facing_ramp, radius, covered, fill)
    else:
        texture, conf_map, confidence, mirror_share, weight = _project_numpy(
            per_vertex, sym is not None, faces, triangle, bary, K, depth, tolerance, photo, mask, min_facing,
            facing_ramp, radius, covered, fill)

    source = np.zeros((size, size), np.uint8)
    code = np.full(n_cov, FILLED, np.uint8)
    code[mirror_share > np.maximum(weight, 1.0 - confidence)] = MIRRORED
    code[weight >= np.maximum(mirror_share, 1.0 - confidence)] = PHOTO
    source[covered] = code
    stats = {
        "photo": float(np.mean(code == PHOTO)) if n_cov else 0.0,
        "mirrored": float(np.mean(code == MIRRORED)) if n_cov else 0.0,
        "filled": float(np.mean(code == FILLED)) if n_cov else 0.0,
        "layout_coverage": n_cov / float(size * size),
    }
    return UVProjection(texture=texture, confidence=conf_map.astype(np.float32), source=source, stats=stats)


__all__ = ["FILLED", "MIRRORED", "OUTSIDE", "PHOTO", "UVProjection", "project_photo_to_uv", "pull_push_fill"]
