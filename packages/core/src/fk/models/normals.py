"""Vertex normals of a face-model mesh.

Convention:
- Face normal of (v1, v2, v3) is normalize((v1 - v2) x (v2 - v3)), which equals the usual
  (v2 - v1) x (v3 - v1) direction: counter-clockwise triangles seen from outside point outward.
- ``point_buf_normals``: Deep3D's rule, the *unweighted* sum of the unit normals of up to K
  incident faces listed in ``point_buf`` (0-based; the pad value F points at an appended zero normal),
  then normalised.
- ``area_weighted_normals``: the sum of unnormalised face normals (area weighted) over all incident
  faces, then normalised; used by models without a ``point_buf``.
- Zero-length sums stay zero (normalisation eps 1e-12, as torch.nn.functional.normalize).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _flat_index(index: torch.Tensor, width: int) -> torch.Tensor:
    return (index[:, None] * width + torch.arange(width, device=index.device)).reshape(-1)


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[:, index]`` for ``x`` (B, N, C) and ``index`` (M,) int64: (B, M, C).

    Gathered on the flattened (B, N*C) rows: the backward is then torch's plain scatter-add loop, where
    ``index_select`` along dim 1 of a (B, N, C) tensor backpropagates through a per-row path 6-10x slower
    (1.4 vs 0.2 ms for a 19k-triangle corner gather). Same values, same sums in the same order.
    """
    b, n, c = x.shape
    return x.reshape(b, n * c).index_select(1, _flat_index(index, c)).reshape(b, len(index), c)


def add_rows(out: torch.Tensor, index: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """``out.index_add(1, index, src)`` for (B, N, C) ``out`` and (B, M, C) ``src``, on the flattened rows
    (10-20x faster on the CPU, the same sums in the same order; see :func:`gather_rows`)."""
    b, n, c = out.shape
    return out.reshape(b, n * c).index_add(1, _flat_index(index, c), src.reshape(b, -1)).reshape(b, n, c)


def face_normals(vertices: torch.Tensor, triangles: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """(B, N, 3) vertices, (F, 3) int64 triangles -> (B, F, 3) face normals."""
    v1, v2, v3 = (gather_rows(vertices, triangles[:, k]) for k in range(3))
    n = torch.linalg.cross(v1 - v2, v2 - v3, dim=-1)
    return F.normalize(n, dim=-1) if normalize else n


def point_buf_normals(vertices: torch.Tensor, triangles: torch.Tensor, point_buf: torch.Tensor) -> torch.Tensor:
    """Deep3D vertex normals: (B, N, 3) -> (B, N, 3) using ``point_buf`` (N, K) int64."""
    fn = face_normals(vertices, triangles)
    fn = torch.cat([fn, fn.new_zeros(fn.shape[0], 1, 3)], dim=1)
    gathered = gather_rows(fn, point_buf.reshape(-1)).reshape(*vertices.shape[:2], point_buf.shape[1], 3)
    return F.normalize(gathered.sum(dim=2), dim=-1)


def area_weighted_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted vertex normals: (B, N, 3) -> (B, N, 3)."""
    fn = face_normals(vertices, triangles, normalize=False)
    out = vertices.new_zeros(vertices.shape)
    for k in range(3):
        out = add_rows(out, triangles[:, k], fn)
    return F.normalize(out, dim=-1)

