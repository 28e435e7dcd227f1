"""``interpolate`` in plain torch: a gather of the winning triangle's attributes, blended by ``(u, v, 1-u-v)``.

Runs on any torch device (it is also the CPU backend's implementation) and is differentiable
with respect to ``attr``, ``rast``'s ``(u, v)`` and ``rast_db``.
"""

from __future__ import annotations

from typing import Any

import torch

from fk.errors import ShapeError
from fk.render.checks import check_interpolate_inputs


def _selected_attrs(diff_attrs: Any, n_attrs: int) -> list[int]:
    if diff_attrs is None:
        return []
    if isinstance(diff_attrs, str):
        if diff_attrs != "all":
            raise ShapeError(f"diff_attrs must be 'all' or a list of attribute indices, got {diff_attrs!r}")
        return list(range(n_attrs))
    idx = [int(i) for i in diff_attrs]
    if any(i < 0 or i >= n_attrs for i in idx):
        raise ShapeError(f"diff_attrs indices must lie in [0, {n_attrs}), got {idx}")
    return idx


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor, rast_db: torch.Tensor | None = None,
                diff_attrs: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """nvdiffrast's ``interpolate`` (see :func:`fk.render.interpolate`).

    Shapes: ``attr`` ``(V, A)`` or ``(B|1, V, A)``; ``rast``/``rast_db`` ``(B, H, W, 4)``; ``tri`` ``(F, 3)``.
    Returns ``out (B, H, W, A)`` (zeros where empty) and ``out_da (B, H, W, 2 * len(diff_attrs))``
    ordered ``(dA_i/dX, dA_i/dY)`` per selected attribute ``i``, in pixel units.
    """
    check_interpolate_inputs(attr, rast, tri)
    n_images, height, width, _ = rast.shape
    n_attrs = attr.shape[-1]
    selected = _selected_attrs(diff_attrs, n_attrs)
    if selected and rast_db is None:
        raise ShapeError("diff_attrs requires rast_db (pass the second output of rasterize)")
    flat = rast.reshape(-1, 4)
    with torch.no_grad():
        sel = torch.nonzero(flat[:, 3] > 0).squeeze(1)
        t = flat[sel, 3].long() - 1
    corners = tri.long()[t]  # (n, 3)
    if attr.ndim == 2:
        a = attr[corners]
    else:
        image = sel // (height * width) if attr.shape[0] > 1 else torch.zeros_like(sel)
        a = attr[image[:, None], corners]  # (n, 3, A)
    u = flat[sel, 0:1]
    v = flat[sel, 1:2]
    a2 = a[:, 2]
    du_attr = a[:, 0] - a2
    dv_attr = a[:, 1] - a2
    values = a2 + u * du_attr + v * dv_attr
    out = values.new_zeros((n_images * height * width, n_attrs)).index_copy(0, sel, values)
    out = out.view(n_images, height, width, n_attrs)
    if not selected:
        return out, out.new_zeros((n_images, height, width, 0))
    db = rast_db.reshape(-1, 4)[sel]
    cols = torch.tensor(selected, device=attr.device)
    dua, dva = du_attr[:, cols], dv_attr[:, cols]
    d_dx = db[:, 0:1] * dua + db[:, 2:3] * dva
    d_dy = db[:, 1:2] * dua + db[:, 3:4] * dva
    da = torch.stack([d_dx, d_dy], 2).reshape(sel.numel(), 2 * len(selected))
    out_da = da.new_zeros((n_images * height * width, 2 * len(selected))).index_copy(0, sel, da)
    return out, out_da.view(n_images, height, width, -1)
