"""UV layouts for meshes that come without one, and where each texel of a layout lies on the mesh.

Convention (OBJ's, as everywhere in fk): ``uv (0, 0)`` is the bottom-left corner of the texture
image and image row 0 is the top, so texel ``(row r, col c)`` of an ``S x S`` map has its centre at
``u = (c + 0.5) / S``, ``v = 1 - (r + 0.5) / S``. Meshes: vertices ``(N, 3)`` in a face model's frame
(x right, y up, z toward the viewer), faces ``(F, 3)`` 0-based; ``uv_faces (F, 3)`` index ``uvs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fk.errors import ShapeError


def cylindrical_uv(vertices: Any, margin: float = 0.02) -> np.ndarray:
    """A deterministic cylindrical unwrap around the vertical (y) axis: ``(N, 2)`` uvs in ``[0, 1]``.

    ``u`` is the arc length ``r_mean * atan2(x, z - z_axis)`` around an axis behind the face (at the
    mesh's x/z centre pushed back by half its depth, so a front-only mask such as BFM09 unrolls
    without folds), ``v`` the height ``y``; both are scaled by one factor so texels stay square, and
    the layout is centred in ``[margin, 1 - margin]``. Use with ``uv_faces = faces``. Meant for face
    models that have no UVs of their own (BFM09: "we do not provide the UV definition for BFM").
    """
    v = np.asarray(vertices, np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ShapeError(f"vertices: expected (N, 3), got {v.shape}")
    lo, hi = v.min(0), v.max(0)
    axis_x = 0.5 * (lo[0] + hi[0])
    axis_z = lo[2] - 0.5 * (hi[2] - lo[2])
    dx, dz = v[:, 0] - axis_x, v[:, 2] - axis_z
    radius = float(np.mean(np.hypot(dx, dz)))
    u = radius * np.arctan2(dx, dz)
    h = v[:, 1]
    width, height = u.max() - u.min(), h.max() - h.min()
    scale = (1 - 2 * margin) / max(width, height, 1e-12)
    uu = 0.5 + (u - 0.5 * (u.max() + u.min())) * scale
    vv = 0.5 + (h - 0.5 * (h.max() + h.min())) * scale
    return np.stack([uu, vv], axis=1)


@dataclass
class TexelMap:
    """Which triangle covers each texel of an ``S x S`` UV map, and where in it (image layout, row 0 top).

    ``triangle`` ``(S, S)`` int64 face index, -1 where no triangle covers the texel centre;
    ``barycentric`` ``(S, S, 3)`` float64 weights of the face's three corners (0 where empty).
    A point attribute ``a (N, C)`` of the mesh at the texels is ``sum_k b_k a[faces[t, k]]``:
    the same thing FFHQ-UV's ``unwrap_1024_info.mat`` stores (``uv_idx_v_idx``, ``uv_idx_bw``).
    """

    triangle: np.ndarray
    barycentric: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        return self.triangle >= 0

    def gather(self, values: Any, faces: Any) -> np.ndarray:
        """Interpolate per-vertex ``values (N, C)`` at every covered texel: ``(M, C)``, row-major order."""
        vals = np.asarray(values, np.float64)
        tri = np.asarray(faces, np.int64)[self.triangle[self.covered]]  # (M, 3)
        bary = self.barycentric[self.covered]  # (M, 3)
        return np.einsum("mk,mkc->mc", bary, vals[tri])


def texel_map(uvs: Any, uv_faces: Any, size: int, backend: str = "cpu") -> TexelMap:
    """Rasterise the UV layout itself (``uvs (T, 2)``, ``uv_faces (F, 3)``) into a :class:`TexelMap`.

    Texel centres that fall inside a UV triangle get that triangle; overlapping UV islands keep the
    lower triangle index (the rasteriser's tie rule at equal depth).
    """
    import torch

    import fk.render as dr

    uv = torch.as_tensor(np.asarray(uvs, np.float64), dtype=torch.float32)
    tri = torch.as_tensor(np.asarray(uv_faces, np.int64), dtype=torch.int32).contiguous()
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ShapeError(f"uvs: expected (T, 2), got {tuple(uv.shape)}")
    # clip space straight from uv: x = 2u - 1, y = 2v - 1; the rasteriser's row 0 is v = 0 (bottom).
    pos = torch.cat([uv * 2 - 1, torch.zeros_like(uv[:, :1]), torch.ones_like(uv[:, :1])], 1)[
        None
    ].contiguous()
    with torch.no_grad():
        rast, _ = dr.rasterize(dr.get_context(backend), pos, tri, (int(size), int(size)))
    rast = torch.flip(rast[0], dims=[0]).cpu().double().numpy()  # image layout: row 0 = top = v near 1
    triangle = rast[..., 3].astype(np.int64) - 1
    b0, b1 = rast[..., 0], rast[..., 1]
    bary = np.stack([b0, b1, 1.0 - b0 - b1], axis=-1) * (triangle >= 0)[..., None]
    return TexelMap(triangle=triangle, barycentric=bary)


__all__ = ["TexelMap", "cylindrical_uv", "texel_map"]
