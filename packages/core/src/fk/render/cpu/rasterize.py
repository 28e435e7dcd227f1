"""``rasterize`` on the CPU: compiled visibility, then barycentrics, with an analytic-replay backward.

The forward pass runs the numba z-buffer and a compiled barycentric kernel (float64 inside,
stored in ``pos``'s dtype). The backward pass recomputes ``(u, v)`` and ``rast_db`` of the covered
pixels from ``pos`` and back-propagates through them: a compiled kernel differentiated by hand
(float64, per-thread gradient buffers), or, without numba or off the CPU, the differentiable
torch formula of :mod:`fk.render.cpu.barycentrics` under autograd (the reference). Gradients
reach ``pos`` through the barycentrics only, as in
nvdiffrast (no visibility gradients; ``z/w`` and ids carry none).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fk.render.checks import check_rasterize_inputs
from fk.render.cpu import zbuffer
from fk.render.cpu.barycentrics import pixel_barycentrics


def _layout(pos: torch.Tensor, tri: torch.Tensor, ranges: torch.Tensor | None):
    """``(pos3 (P,V,4), pos_of_image, tri_start, tri_count)`` for both modes, as int64 CPU tensors."""
    if ranges is None:
        n_images = pos.shape[0]
        return (pos, torch.arange(n_images), torch.zeros(n_images, dtype=torch.int64),
                torch.full((n_images,), tri.shape[0], dtype=torch.int64))
    ranges = ranges.long()
    return pos[None], torch.zeros(ranges.shape[0], dtype=torch.int64), ranges[:, 0].clone(), ranges[:, 1].clone()


def _check_indices(tri: torch.Tensor, n_vertices: int) -> None:
    from fk.errors import ShapeError

    if tri.numel() and (int(tri.min()) < 0 or int(tri.max()) >= n_vertices):
        raise ShapeError(f"tri indices must lie in [0, {n_vertices}) (pos has {n_vertices} vertices)")


def visibility(pos3: torch.Tensor, tri: torch.Tensor, pos_of_image: torch.Tensor, tri_start: torch.Tensor,
               tri_count: torch.Tensor, height: int, width: int, compiled: bool = True) -> torch.Tensor:
    """int32 ids ``(B, H, W)`` (triangle index + 1, 0 empty), numba when available, else torch."""
    if compiled and zbuffer.HAVE_NUMBA:
        with zbuffer.threads_for(pos_of_image.numel() * height * width):
            ids, _ = zbuffer.visibility_numba(
                np.ascontiguousarray(pos3.detach().cpu().numpy(), dtype=np.float64),
                np.ascontiguousarray(tri.cpu().numpy(), dtype=np.int64),
                pos_of_image.numpy(), tri_start.numpy(), tri_count.numpy(), height, width)
        return torch.from_numpy(ids)
    ids, _ = zbuffer.visibility_torch(pos3.detach().cpu(), tri.cpu(), pos_of_image, tri_start, tri_count,
                                      height, width)
    return ids


def _forward_values(pos3, tri, pos_of_image, ids, height, width, want_db, compiled):
    if compiled and zbuffer.HAVE_NUMBA:
        with zbuffer.threads_for(ids.numel()):
            rast, db = zbuffer.barycentrics_numba(
                np.ascontiguousarray(pos3.detach().cpu().numpy(), dtype=np.float64),
                np.ascontiguousarray(tri.cpu().numpy(), dtype=np.int64),
                pos_of_image.numpy(), ids.numpy(), np.dtype(str(pos3.dtype).removeprefix("torch.")), want_db)
        return torch.from_numpy(rast), torch.from_numpy(db)
    shape = tuple(ids.shape) + (4,)
    rast = torch.zeros(shape, dtype=pos3.dtype)
    db = torch.zeros(shape, dtype=pos3.dtype)
    b, r, c = torch.nonzero(ids, as_tuple=True)
    t = ids[b, r, c].long() - 1
    with torch.no_grad():
        u, v, zw, d = pixel_barycentrics(pos3.detach().cpu(), tri.long().cpu(), pos_of_image[b], t, r, c,
                                         height, width, want_db)
    rast[b, r, c] = torch.stack([u, v, zw, (t + 1).to(pos3.dtype)], 1)
    if want_db:
        db[b, r, c] = d
    return rast, db


def _backward_compiled(pos3, tri, pos_of_image, ids, grad_rast, grad_db):
    """The compiled replay: ``(u, v)`` (and ``rast_db`` when ``grad_db`` is given) differentiated by hand."""
    def arr(g):
        a = g.detach().numpy()
        return np.ascontiguousarray(a if a.dtype in (np.float32, np.float64) else a.astype(np.float64))

    grad = zbuffer.barycentrics_backward_numba(
        np.ascontiguousarray(pos3.detach().numpy(), dtype=np.float64),
        np.ascontiguousarray(tri.numpy(), dtype=np.int64), pos_of_image.numpy(), ids.numpy(),
        arr(grad_rast), None if grad_db is None else arr(grad_db.to(grad_rast.dtype)))
    return torch.from_numpy(grad).to(pos3.dtype)


def _backward_torch(pos3, tri, pos_of_image, ids, grad_rast, grad_db):
    """The reference replay: the torch formula of :func:`pixel_barycentrics` under autograd (any device)."""
    height, width = ids.shape[1:]
    b, r, c = torch.nonzero(ids, as_tuple=True)
    t = ids[b, r, c].long() - 1
    with torch.enable_grad():
        leaf = pos3.detach().requires_grad_(True)
        u, v, _, db = pixel_barycentrics(leaf, tri.long(), pos_of_image.to(leaf.device)[b], t, r, c,
                                         height, width, grad_db is not None)
        outs = [u, v]
        grads = [grad_rast[b, r, c, 0], grad_rast[b, r, c, 1]]
        if grad_db is not None:
            outs.append(db)
            grads.append(grad_db[b, r, c])
        (grad_pos,) = torch.autograd.grad(outs, [leaf], grads, allow_unused=True)
    return torch.zeros_like(pos3) if grad_pos is None else grad_pos


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pos3, tri, pos_of_image, tri_start, tri_count, height, width, grad_db, compiled):
        ids = visibility(pos3, tri, pos_of_image, tri_start, tri_count, height, width, compiled)
        # rast_db is always computed, as nvdiffrast does: grad_db only decides whether it carries gradients.
        rast, db = _forward_values(pos3, tri, pos_of_image, ids, height, width, True, compiled)
        ctx.save_for_backward(pos3, tri, pos_of_image, ids)
        ctx.grad_db = grad_db
        ctx.compiled = compiled and zbuffer.HAVE_NUMBA and pos3.device.type == "cpu"
        return rast.to(pos3.device), db.to(pos3.device)

    @staticmethod
    def backward(ctx: Any, grad_rast, grad_db):
        pos3, tri, pos_of_image, ids = ctx.saved_tensors
        use_db = ctx.grad_db and grad_db is not None and bool(grad_db.any())
        replay = _backward_compiled if ctx.compiled else _backward_torch
        grad_pos = replay(pos3, tri, pos_of_image, ids, grad_rast, grad_db if use_db else None)
        return grad_pos, None, None, None, None, None, None, None, None


def rasterize(glctx: Any, pos: torch.Tensor, tri: torch.Tensor, resolution: Any, ranges: Any = None,
              grad_db: bool = True, impl: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """nvdiffrast's ``rasterize`` (see :mod:`fk.render`); returns ``(rast, rast_db)`` ``[B, H, W, 4]``.

    fk's CPU backend also accepts float64 ``pos`` (the outputs follow its dtype) and int64 ``tri``.
    ``rast_db`` always holds the derivatives; ``grad_db=False`` (as in nvdiffrast) only stops gradients
    flowing from it to ``pos``, which saves the backward pass that work. ``impl="torch"`` runs the
    pure-torch reference (z-buffer, barycentrics and autograd replay) instead of the compiled kernels.
    """
    if impl not in ("auto", "compiled", "torch"):
        raise ValueError(f"impl must be 'auto', 'compiled' or 'torch', got {impl!r}")
    height, width, _ = check_rasterize_inputs(pos, tri, resolution, ranges)
    _check_indices(tri, pos.shape[-2])
    pos3, pos_of_image, tri_start, tri_count = _layout(pos, tri, ranges)
    return _Rasterize.apply(pos3, tri, pos_of_image, tri_start, tri_count, height, width, bool(grad_db),
                            impl != "torch")
