"""``interpolate``: the winning triangle's attributes at each pixel, blended by ``(u, v, 1-u-v)``.

Two implementations with the same results (tested equal, values and gradients):

- ``impl="compiled"`` (the CPU default when numba imports): numba kernels (``cache=True``, parallel
  over image rows, capped by numba's thread count) for the forward pass and a hand-written
  backward, wrapped in a ``torch.autograd.Function``. The gradient to ``attr`` is accumulated per
  thread chunk in float64 and summed, so no two threads write one vertex.
- ``impl="torch"``: a gather over the covered pixels and an ``index_copy``. It runs on any torch
  device and dtype and is the reference the compiled kernels are tested against.

Both are differentiable with respect to ``attr``, ``rast``'s ``(u, v)`` and ``rast_db``.

Convention (nvdiffrast's): ``out = A_2 + u (A_0 - A_2) + v (A_1 - A_2)`` where ``rast[..., 3] > 0``,
zeros elsewhere; ``out_da`` holds ``(dA_i/dX, dA_i/dY) = (db_0 dA_i/du + db_2 dA_i/dv,
db_1 dA_i/du + db_3 dA_i/dv)`` per selected attribute ``i``, with ``rast_db = (du/dX, du/dY, dv/dX, dv/dY)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fk.errors import ShapeError
from fk.render.checks import check_interpolate_inputs
from fk.render.cpu import zbuffer

IMPLS = ("auto", "compiled", "torch")


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


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor,
                rast_db: torch.Tensor | None = None, diff_attrs: Any = None,
                impl: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """nvdiffrast's ``interpolate`` (see :func:`fk.render.interpolate`).

    Shapes: ``attr`` ``(V, A)`` or ``(B|1, V, A)``; ``rast``/``rast_db`` ``(B, H, W, 4)``; ``tri`` ``(F, 3)``.
    Returns ``out (B, H, W, A)`` (zeros where empty) and ``out_da (B, H, W, 2 * len(diff_attrs))``
    ordered ``(dA_i/dX, dA_i/dY)`` per selected attribute ``i``, in pixel units.
    ``impl``: ``auto`` (compiled for CPU float32/float64 tensors when numba is there, else torch),
    ``compiled`` or ``torch`` (the reference implementation).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    check_interpolate_inputs(attr, rast, tri)
    selected = _selected_attrs(diff_attrs, attr.shape[-1])
    if selected and rast_db is None:
        raise ShapeError("diff_attrs requires rast_db (pass the second output of rasterize)")
    dtype = torch.promote_types(attr.dtype, rast.dtype)
    compilable = (zbuffer.HAVE_NUMBA and dtype in (torch.float32, torch.float64)
                  and all(t is None or t.device.type == "cpu" for t in (attr, rast, tri, rast_db)))
    if impl == "compiled" and not compilable:
        raise ValueError("impl='compiled' needs numba and CPU float32/float64 tensors")
    if impl == "torch" or not compilable:
        return _interpolate_torch(attr, rast, tri, rast_db, selected)
    attr3 = attr.to(dtype)
    attr3 = attr3[None] if attr3.ndim == 2 else attr3
    db = rast_db.to(dtype) if selected else None
    out, out_da = _Interpolate.apply(attr3, rast.to(dtype), db, tri, tuple(selected))
    if not selected:
        out_da = out.new_zeros(out.shape[:3] + (0,))
    return out, out_da


def _interpolate_torch(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor,
                       rast_db: torch.Tensor | None,
                       selected: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: gather the covered pixels' corner attributes, blend, scatter back (any device)."""
    n_images, height, width, _ = rast.shape
    n_attrs = attr.shape[-1]
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


def _np(t: torch.Tensor | None, dtype: Any = None) -> np.ndarray:
    """A C-contiguous numpy view (a copy only when the layout or dtype requires one)."""
    a = t.detach().numpy()
    return np.ascontiguousarray(a if dtype is None else a.astype(dtype, copy=False))


def _chunks(n_jobs: int) -> int:
    """Thread chunks for the accumulating backward kernels: one private buffer each."""
    return max(1, min(zbuffer.numba.get_num_threads(), n_jobs))


class _Interpolate(torch.autograd.Function):
    """Compiled interpolate of ``attr3 (Ba, V, A)`` at ``rast (B, H, W, 4)``; ``db`` is for diff_attrs."""

    @staticmethod
    def forward(ctx: Any, attr3, rast, db, tri, selected):
        n_images, height, width, _ = rast.shape
        n_attrs = attr3.shape[-1]
        tri_np = _np(tri, np.int64)
        sel = np.asarray(selected, np.int64)
        a_np, r_np = _np(attr3), _np(rast)
        db_np = _np(db) if db is not None else np.zeros((1, 1, 1, 4), a_np.dtype)
        out = np.empty((n_images, height, width, n_attrs), a_np.dtype)
        out_da = np.empty((n_images, height, width, 2 * sel.size) if sel.size else (1, 1, 1, 0), a_np.dtype)
        bad = np.zeros(n_images * height, np.int64)
        with zbuffer.threads_for(n_images * height * width):
            _interpolate_kernel(a_np, r_np, db_np, tri_np, sel, out, out_da, bad)
        if bad.any():
            raise ShapeError(f"rast holds triangle ids outside tri's {tri.shape[0]} triangles")
        ctx.save_for_backward(attr3, rast, db, tri)
        ctx.selected = selected
        return torch.from_numpy(out), torch.from_numpy(out_da)

    @staticmethod
    def backward(ctx: Any, grad_out, grad_da):
        attr3, rast, db, tri = ctx.saved_tensors
        need_attr, need_rast, need_db = ctx.needs_input_grad[:3]
        sel = np.asarray(ctx.selected, np.int64)
        a_np, r_np = _np(attr3), _np(rast)
        use_da = sel.size > 0 and grad_da is not None
        g_out = _np(grad_out, a_np.dtype) if grad_out is not None else np.zeros((1, 1, 1, 0), a_np.dtype)
        g_da = _np(grad_da, a_np.dtype) if use_da else np.zeros((1, 1, 1, 0), a_np.dtype)
        db_np = _np(db) if db is not None else np.zeros((1, 1, 1, 4), a_np.dtype)
        n_images, height, width, _ = rast.shape
        chunks = _chunks(n_images * height)
        grad_attr = np.zeros((chunks,) + a_np.shape if need_attr else (1, 1, 1, 1), np.float64)
        grad_rast = np.zeros(r_np.shape if need_rast else (1, 1, 1, 4), a_np.dtype)
        grad_db = np.zeros(r_np.shape if (need_db and use_da) else (1, 1, 1, 4), a_np.dtype)
        with zbuffer.threads_for(n_images * height * width):
            _interpolate_backward_kernel(a_np, r_np, db_np, _np(tri, np.int64), sel, g_out,
                                         grad_out is not None, g_da, use_da, need_attr, need_rast,
                                         need_db and use_da, chunks,
                                         grad_attr, grad_rast, grad_db)
        ga = torch.from_numpy(grad_attr.sum(0)).to(attr3.dtype) if need_attr else None
        gr = torch.from_numpy(grad_rast) if need_rast else None
        gd = None
        if need_db:
            gd = torch.from_numpy(grad_db) if use_da else torch.zeros_like(db)
        return ga, gr, gd, None, None


if zbuffer.HAVE_NUMBA:
    numba = zbuffer.numba

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _interpolate_kernel(attr, rast, db, tri, sel, out, out_da, bad):  # pragma: no cover - compiled
        n_images, height, width, _ = rast.shape
        n_attr_images = attr.shape[0]
        n_attrs = attr.shape[2]
        n_tri = tri.shape[0]
        n_sel = sel.size
        for job in numba.prange(n_images * height):
            b = job // height
            r = job % height
            ab = b if n_attr_images > 1 else 0
            for c in range(width):
                tid = rast[b, r, c, 3]
                t = int(tid) - 1
                if not (tid > 0) or t >= n_tri:
                    if tid > 0:
                        bad[job] = 1
                    for k in range(n_attrs):
                        out[b, r, c, k] = 0.0
                    for k in range(2 * n_sel):
                        out_da[b, r, c, k] = 0.0
                    continue
                i0 = tri[t, 0]
                i1 = tri[t, 1]
                i2 = tri[t, 2]
                u = rast[b, r, c, 0]
                v = rast[b, r, c, 1]
                for k in range(n_attrs):
                    a2 = attr[ab, i2, k]
                    out[b, r, c, k] = a2 + u * (attr[ab, i0, k] - a2) + v * (attr[ab, i1, k] - a2)
                for s in range(n_sel):
                    k = sel[s]
                    a2 = attr[ab, i2, k]
                    dua = attr[ab, i0, k] - a2
                    dva = attr[ab, i1, k] - a2
                    out_da[b, r, c, 2 * s] = db[b, r, c, 0] * dua + db[b, r, c, 2] * dva
                    out_da[b, r, c, 2 * s + 1] = db[b, r, c, 1] * dua + db[b, r, c, 3] * dva

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _interpolate_backward_kernel(attr, rast, db, tri, sel, g_out, use_out, g_da, use_da, need_attr,
                                     need_rast, need_db, n_chunks, grad_attr, grad_rast,
                                     grad_db):  # pragma: no cover - compiled
        n_images, height, width, _ = rast.shape
        n_attr_images = attr.shape[0]
        n_attrs = attr.shape[2]
        n_sel = sel.size
        n_jobs = n_images * height
        for chunk in numba.prange(n_chunks):
            lo = chunk * n_jobs // n_chunks
            hi = (chunk + 1) * n_jobs // n_chunks
            for job in range(lo, hi):
                b = job // height
                r = job % height
                ab = b if n_attr_images > 1 else 0
                for c in range(width):
                    tid = rast[b, r, c, 3]
                    if not (tid > 0):
                        continue
                    t = int(tid) - 1
                    i0 = tri[t, 0]
                    i1 = tri[t, 1]
                    i2 = tri[t, 2]
                    u = rast[b, r, c, 0]
                    v = rast[b, r, c, 1]
                    gu = 0.0
                    gv = 0.0
                    if use_out:
                        for k in range(n_attrs):
                            g = g_out[b, r, c, k]
                            a2 = attr[ab, i2, k]
                            gu += g * (attr[ab, i0, k] - a2)
                            gv += g * (attr[ab, i1, k] - a2)
                            if need_attr:
                                grad_attr[chunk, ab, i0, k] += g * u
                                grad_attr[chunk, ab, i1, k] += g * v
                                grad_attr[chunk, ab, i2, k] += g * (1.0 - u - v)
                    if use_da:
                        d0 = db[b, r, c, 0]
                        d1 = db[b, r, c, 1]
                        d2 = db[b, r, c, 2]
                        d3 = db[b, r, c, 3]
                        gd0 = 0.0
                        gd1 = 0.0
                        gd2 = 0.0
                        gd3 = 0.0
                        for s in range(n_sel):
                            k = sel[s]
                            gx = g_da[b, r, c, 2 * s]
                            gy = g_da[b, r, c, 2 * s + 1]
                            a2 = attr[ab, i2, k]
                            dua = attr[ab, i0, k] - a2
                            dva = attr[ab, i1, k] - a2
                            gd0 += gx * dua
                            gd2 += gx * dva
                            gd1 += gy * dua
                            gd3 += gy * dva
                            if need_attr:
                                g_dua = gx * d0 + gy * d1
                                g_dva = gx * d2 + gy * d3
                                grad_attr[chunk, ab, i0, k] += g_dua
                                grad_attr[chunk, ab, i1, k] += g_dva
                                grad_attr[chunk, ab, i2, k] -= g_dua + g_dva
                        if need_db:
                            grad_db[b, r, c, 0] = gd0
                            grad_db[b, r, c, 1] = gd1
                            grad_db[b, r, c, 2] = gd2
                            grad_db[b, r, c, 3] = gd3
                    if need_rast:
                        grad_rast[b, r, c, 0] = gu
                        grad_rast[b, r, c, 1] = gv
