"""The differentiable pass: perspective-correct barycentrics of given pixels, recomputed from ``pos``.

Used by the backward pass of the CPU ``rasterize`` (and by its forward when numba is missing),
vectorised over the covered pixels only.

Convention:
- Homogeneous pixel coordinates ``X = (x + w) W / 2``, ``Y = (y + w) H / 2`` are shifted to the
  pixel centre, ``X' = X - px w``, ``Y' = Y - py w``, before the 2x2 cross products: this keeps
  float32 well conditioned for triangles a few pixels wide in a 1024-pixel image.
- ``e_k = X'_i Y'_j - Y'_i X'_j`` for edge ``k`` opposite vertex ``k`` (``(i, j) = (k+1, k+2)``);
  ``(u, v) = (e_0, e_1) / (e_0 + e_1 + e_2)``; ``z/w = (e . z) / (e . w)`` (no gradient).
- ``rast_db`` is ``(du/dX, du/dY, dv/dX, dv/dY)`` per pixel unit, ``dX'/dpx = -w``, ``dY'/dpy = -w``.
"""

from __future__ import annotations

import torch


def pixel_barycentrics(pos: torch.Tensor, tri: torch.Tensor, pos_index: torch.Tensor, tri_index: torch.Tensor,
                       rows: torch.Tensor, cols: torch.Tensor, height: int, width: int, want_db: bool = True
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Barycentrics of ``n`` pixels.

    Args:
        pos: ``(P, V, 4)`` clip-space positions, float32 or float64 (the result follows its dtype).
        tri: ``(F, 3)`` int64 triangle indices.
        pos_index, tri_index, rows, cols: ``(n,)`` int64: which ``pos`` slice, triangle, row (0 = bottom), column.
        height, width: the image size in pixels.

    Returns:
        ``u (n,)``, ``v (n,)``, ``z/w (n,)`` detached, and ``db (n, 4)`` or None.
    """
    v = pos[pos_index[:, None], tri[tri_index]]  # (n, 3, 4)
    px = (cols.to(pos.dtype) + 0.5)[:, None]
    py = (rows.to(pos.dtype) + 0.5)[:, None]
    w = v[..., 3]
    xs = (v[..., 0] + w) * (0.5 * width) - px * w
    ys = (v[..., 1] + w) * (0.5 * height) - py * w
    order_i, order_j = [1, 2, 0], [2, 0, 1]
    xi, xj, yi, yj = xs[:, order_i], xs[:, order_j], ys[:, order_i], ys[:, order_j]
    e = xi * yj - yi * xj  # (n, 3)
    s = e.sum(1)
    u = e[:, 0] / s
    vv = e[:, 1] / s
    with torch.no_grad():
        zw = (e * v[..., 2]).sum(1) / (e * w).sum(1)
    db = None
    if want_db:
        wi, wj = w[:, order_i], w[:, order_j]
        de_dx = yi * wj - wi * yj
        de_dy = wi * xj - xi * wj
        sx, sy = de_dx.sum(1), de_dy.sum(1)
        s2 = s * s
        db = torch.stack([(de_dx[:, 0] * s - e[:, 0] * sx) / s2, (de_dy[:, 0] * s - e[:, 0] * sy) / s2,
                          (de_dx[:, 1] * s - e[:, 1] * sx) / s2, (de_dy[:, 1] * s - e[:, 1] * sy) / s2], 1)
    return u, vv, zw, db
