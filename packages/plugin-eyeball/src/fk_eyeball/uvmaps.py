"""UV-space rasterisation: per-texel attributes of a UV-mapped mesh (CoRA's ``coord.pkl``, baked textures).

Convention (cora.md §10.1): texel (row y, column x) of an ``S x S`` map is sampled at its centre,
``u = (x + 0.5) / S``, ``v = 1 - (y + 0.5) / S`` (image row 0 is v = 1, OBJ's UV convention); texels that
no UV triangle covers are 0 and ``covered`` is False there.
"""

from __future__ import annotations

import numpy as np


def uv_rasterize(
    uvs: np.ndarray, uv_faces: np.ndarray, attributes: np.ndarray, size: int, context=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise the UV layout and interpolate per-corner attributes.

    Args:
        uvs: (T, 2) UVs; uv_faces: (F, 3) into ``uvs``.
        attributes: (F, 3, C) one value per face corner (e.g. ``vertices[faces]``) or (T, C) per UV vertex.
        size: S, the map side in texels.
    Returns:
        ``(values (S, S, C) float64, covered (S, S) bool, face_id (S, S) int64 (-1 where empty))`` in image layout.
    """
    import fk.render as dr
    import torch

    uvs = np.asarray(uvs, np.float64)
    uv_faces = np.asarray(uv_faces, np.int64)
    attr = np.asarray(attributes, np.float64)
    if attr.ndim == 3:  # per corner: one UV vertex per corner so that corners never share values
        corner_uv = uvs[uv_faces].reshape(-1, 2)
        tri = np.arange(corner_uv.shape[0]).reshape(-1, 3)
        values = attr.reshape(-1, attr.shape[-1])
    else:
        corner_uv, tri, values = uvs, uv_faces, attr
    pos = np.zeros((len(corner_uv), 4))
    pos[:, 0] = 2 * corner_uv[:, 0] - 1
    pos[:, 1] = 2 * corner_uv[:, 1] - 1  # nvdiffrast row 0 is NDC y = -1, i.e. v = 0 (flipped below)
    pos[:, 3] = 1
    ctx = dr.get_context("cpu")
    pos_t = torch.as_tensor(pos, dtype=torch.float64)[None].contiguous()
    tri_t = torch.as_tensor(tri, dtype=torch.int32).contiguous()
    rast, _ = dr.rasterize(context or ctx, pos_t, tri_t, (size, size))
    out, _ = dr.interpolate(torch.as_tensor(values, dtype=torch.float64)[None].contiguous(), rast, tri_t)
    covered = (rast[0, ..., 3] > 0).numpy()[::-1]
    face_id = (rast[0, ..., 3].long() - 1).numpy()[::-1]
    return (
        np.ascontiguousarray(out[0].numpy()[::-1]),
        np.ascontiguousarray(covered),
        np.ascontiguousarray(face_id),
    )


def coord_map(
    vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, uv_faces: np.ndarray, size: int
) -> np.ndarray:
    """(3, S, S) float32 texel -> world position map (CoRA's ``coord.pkl[0]``), zeros off the UV islands."""
    pos, covered, _ = uv_rasterize(uvs, uv_faces, np.asarray(vertices, np.float64)[np.asarray(faces)], size)
    pos[~covered] = 0
    return np.ascontiguousarray(pos.transpose(2, 0, 1).astype(np.float32))
