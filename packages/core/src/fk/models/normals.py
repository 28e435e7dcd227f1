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


def face_normals(vertices: torch.Tensor, triangles: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """(B, N, 3) vertices, (F, 3) int64 triangles -> (B, F, 3) face normals."""
    v1, v2, v3 = (vertices.index_select(1, triangles[:, k]) for k in range(3))  # index_select: fast gather
    n = torch.linalg.cross(v1 - v2, v2 - v3, dim=-1)
    return F.normalize(n, dim=-1) if normalize else n


def point_buf_normals(vertices: torch.Tensor, triangles: torch.Tensor, point_buf: torch.Tensor) -> torch.Tensor:
    """Deep3D vertex normals: (B, N, 3) -> (B, N, 3) using ``point_buf`` (N, K) int64."""
    fn = face_normals(vertices, triangles)
    fn = torch.cat([fn, fn.new_zeros(fn.shape[0], 1, 3)], dim=1)
    gathered = fn.index_select(1, point_buf.reshape(-1)).reshape(*vertices.shape[:2], point_buf.shape[1], 3)
    return F.normalize(gathered.sum(dim=2), dim=-1)


def area_weighted_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted vertex normals: (B, N, 3) -> (B, N, 3)."""
    fn = face_normals(vertices, triangles, normalize=False)
    out = vertices.new_zeros(vertices.shape)
    for k in range(3):
        out = out.index_add(1, triangles[:, k], fn)
    return F.normalize(out, dim=-1)

