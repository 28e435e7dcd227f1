"""A slow, obviously-correct rasteriser with nvdiffrast's conventions, for tests only.

A plain loop over pixels and triangles. For each pixel centre in NDC ``(x, y)`` it solves the 3x3
linear system ``sum_k b_k (x_k - x w_k) = 0``, ``sum_k b_k (y_k - y w_k) = 0``, ``sum_k b_k = 1`` for the
clip-space barycentrics ``b`` (the point ``sum b_k pos_k`` projects onto the pixel centre); the pixel is
covered when every ``b_k >= 0`` and the point is in front (``sum b_k w_k > 0``) with ``z/w`` in [-1, 1].
It shares no code with the fast path: the fast path uses homogeneous edge functions, this one solves.

Convention (identical to :mod:`fk.render.cpu.zbuffer`):
- a pixel centre within 1e-9 of edge ``k`` (``|b_k| <= 1e-9``) belongs to the triangle only if ``b_k``
  grows along +X (one pixel to the right is inside that edge), or, when it does not change along X,
  along +Y;
- zero-area triangles (``det [X; Y; w] == 0``) are never drawn;
- the depth test keeps the smallest ``z/w`` rounded to float32, ties to the lower triangle index.
Gradients: ``(u, v)`` come from ``torch.linalg.solve`` on the differentiable ``pos``; ``rast_db`` is a
central difference of the solve (no gradient).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

EDGE_EPS = 1e-9


def _system(v: np.ndarray, x: float, y: float) -> np.ndarray:
    return np.stack([v[:, 0] - x * v[:, 3], v[:, 1] - y * v[:, 3], np.ones(3)])


def _solve(v: np.ndarray, x: float, y: float) -> np.ndarray | None:
    m = _system(v, x, y)
    if abs(np.linalg.det(m)) < 1e-300:
        return None
    return np.linalg.solve(m, np.array([0.0, 0.0, 1.0]))


def _owns_edge(v: np.ndarray, x: float, y: float, k: int, px_ndc: float, py_ndc: float) -> bool:
    """Tie rule for a pixel centre on edge ``k``: does ``b_k`` grow one pixel to the right (or up)?"""
    right = _solve(v, x + px_ndc, y)
    if right is not None and abs(right[k]) > EDGE_EPS:
        return right[k] > 0
    up = _solve(v, x, y + py_ndc)
    return up is not None and up[k] > EDGE_EPS


def _covers(v: np.ndarray, x: float, y: float, px_ndc: float, py_ndc: float) -> float | None:
    """``z/w`` if triangle ``v (3, 4)`` covers NDC point ``(x, y)``, else None."""
    b = _solve(v, x, y)
    if b is None:
        return None
    for k in range(3):
        if b[k] < -EDGE_EPS:
            return None
        if abs(b[k]) <= EDGE_EPS and not _owns_edge(v, x, y, k, px_ndc, py_ndc):
            return None
    w = float(b @ v[:, 3])
    if not w > 0:
        return None
    zw = float(b @ v[:, 2]) / w
    if not -1.0 <= zw <= 1.0:
        return None
    return zw


def _degenerate(v: np.ndarray, width: int, height: int) -> bool:
    hom = np.stack([(v[:, 0] + v[:, 3]) * width / 2, (v[:, 1] + v[:, 3]) * height / 2, v[:, 3]])
    return np.linalg.det(hom) == 0.0


def rasterize_reference(pos: torch.Tensor, tri: torch.Tensor, resolution: Any,
                        ranges: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Same inputs and outputs as ``fk.render.rasterize`` (``rast``, ``rast_db``), computed by brute force.

    Only for tiny images and meshes (it loops over every pixel and triangle in Python).
    """
    height, width = (int(r) for r in resolution)
    pos3 = pos if ranges is None else pos[None]
    n_images = pos.shape[0] if ranges is None else ranges.shape[0]
    tri_np = tri.long().cpu().numpy()
    spans = [(0, tri_np.shape[0])] * n_images if ranges is None else [
        (int(s), int(c)) for s, c in ranges.long().tolist()]
    pos_np = pos3.detach().double().cpu().numpy()
    px_ndc, py_ndc = 2.0 / width, 2.0 / height
    values: dict[tuple[int, int, int], torch.Tensor] = {}
    db = torch.zeros((n_images, height, width, 4), dtype=pos.dtype)
    for b in range(n_images):
        p = 0 if ranges is not None else b
        start, count = spans[b]
        for row in range(height):
            y = (row + 0.5) * py_ndc - 1.0
            for col in range(width):
                x = (col + 0.5) * px_ndc - 1.0
                best, best_z = -1, np.float32(np.inf)
                for t in range(start, start + count):
                    v = pos_np[p, tri_np[t]]
                    if _degenerate(v, width, height):
                        continue
                    zw = _covers(v, x, y, px_ndc, py_ndc)
                    if zw is not None and np.float32(zw) < best_z:
                        best, best_z = t, np.float32(zw)
                if best < 0:
                    continue
                v_t = pos3[p, torch.as_tensor(tri_np[best])].double()  # (3, 4), differentiable
                m = torch.stack([v_t[:, 0] - x * v_t[:, 3], v_t[:, 1] - y * v_t[:, 3], torch.ones_like(v_t[:, 0])])
                bary = torch.linalg.solve(m, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
                values[(b, row, col)] = torch.stack([
                    bary[0], bary[1], torch.tensor(float(best_z), dtype=torch.float64),
                    torch.tensor(float(best + 1), dtype=torch.float64)]).to(pos.dtype)
                db[b, row, col] = torch.as_tensor(_db(pos_np[p, tri_np[best]], x, y, px_ndc, py_ndc), dtype=pos.dtype)
    rast = torch.zeros((n_images, height, width, 4), dtype=pos.dtype)
    if values:
        keys = torch.tensor(list(values.keys()))
        rast = rast.index_put((keys[:, 0], keys[:, 1], keys[:, 2]), torch.stack(list(values.values())))
    return rast, db


def _db(v: np.ndarray, x: float, y: float, px_ndc: float, py_ndc: float, h: float = 1e-3) -> list[float]:
    """``(du/dX, du/dY, dv/dX, dv/dY)`` per pixel by central differences of the solve."""
    bx = (_solve(v, x + h * px_ndc, y) - _solve(v, x - h * px_ndc, y)) / (2 * h)
    by = (_solve(v, x, y + h * py_ndc) - _solve(v, x, y - h * py_ndc)) / (2 * h)
    return [bx[0], by[0], bx[1], by[1]]
