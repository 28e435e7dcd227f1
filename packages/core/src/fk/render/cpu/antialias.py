"""``antialias``: analytic blending across silhouette edges, differentiable in ``pos``.

Two implementations with the same decisions and results (tested equal, values and gradients):
numba kernels with a hand-written backward (the CPU default) and a vectorised torch version
(``impl="torch"``, any device; the reference).

The method is the one nvdiffrast documents (Laine et al. 2020, "Modular Primitives for
High-Performance Differentiable Rendering", section 3.3), written here from that description:

1. Every horizontally or vertically adjacent pixel pair whose triangle ids differ is a candidate.
   Its *owner* is the pixel whose surface is closer (smaller ``z/w``; an empty pixel never owns).
2. The segment from the owner's centre ``A`` to the other centre ``B`` leaves the owner's triangle
   through the edge whose edge function turns negative first. Only that edge is considered.
3. The edge must be a *silhouette*: no other triangle sharing it (per the topology hash) lies on the
   opposite side of it in screen space. When it is an internal edge of a continuing surface, fk
   follows the segment into the neighbour (up to ``MAX_WALK`` triangles) and repeats; this finds
   silhouettes owned by sub-pixel triangles (the paper tests the pixel's own triangle only).
4. Each edge is handled by the pair direction most perpendicular to it (horizontal pairs for
   edges closer to vertical), so an edge blends into a pixel once, not twice.
5. With ``t`` the crossing along ``A -> B`` (pixel units, 0..1), the owner's surface covers the
   strip of the pair up to ``t``: when ``t > 1/2`` pixel ``B`` gets ``(t - 1/2)`` of ``A``'s colour,
   when ``t < 1/2`` pixel ``A`` gets ``(1/2 - t)`` of ``B``'s colour. For an edge that stays inside
   the pixel's square over its height this equals the exact area coverage.

Gradients reach ``color`` through the blend and ``pos`` through ``t`` (the two vertices of the
crossing edge); ``pos_gradient_boost`` scales the latter. Which pixels blend, and through which
edge, is decided without gradient (in float64).

Convention: pixel ``(row, col)`` has its centre at homogeneous pixel coordinates
``(col + 1/2, row + 1/2, 1)``, with ``X = (x + w) W / 2``, ``Y = (y + w) H / 2`` from clip ``(x, y, w)``
(row 0 at the bottom, as ``rasterize``). Edge functions are evaluated homogeneously, so vertices
behind the camera need no clipping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fk.errors import ShapeError
from fk.render.cpu import zbuffer


@dataclass(frozen=True)
class TopologyHash:
    """Edge -> triangles map for ``antialias``, built by :func:`construct_topology_hash`.

    Half-edge slot ``s = 3 f + k`` is the edge of triangle ``f`` opposite its vertex ``k``;
    ``mates[offsets[s]:offsets[s + 1]]`` are the other slots on the same (undirected) edge.
    ``single[s]`` is ``2 m + same`` when slot ``s`` has exactly one mate ``m`` (``same`` = 1 when
    ``m`` runs along the edge in the same direction), -1 with none, -2 with several.
    """

    num_triangles: int
    offsets: torch.Tensor  # (3F + 1,) int64
    mates: torch.Tensor  # (M,) int64
    single: torch.Tensor  # (3F,) int64


def construct_topology_hash(tri: torch.Tensor) -> TopologyHash:
    """Build the edge -> triangles map of ``tri (F, 3)`` (any winding, non-manifold edges allowed)."""
    if not isinstance(tri, torch.Tensor) or tri.ndim != 2 or tri.shape[0] == 0 or tri.shape[1] != 3:
        raise ShapeError("tri must have shape [>0, 3]")
    t = tri.detach().cpu().numpy().astype(np.int64)
    n_slots = 3 * t.shape[0]
    a = t[:, [1, 2, 0]].reshape(-1)  # slot 3f+k: edge (v[k+1], v[k+2])
    b = t[:, [2, 0, 1]].reshape(-1)
    key = np.minimum(a, b) * (int(t.max()) + 1) + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[starts, n_slots])
    group_start = np.repeat(starts, sizes)  # per sorted position
    group_size = np.repeat(sizes, sizes)
    # every (slot, other) pair inside a group, self excluded
    rep = np.repeat(np.arange(n_slots), group_size)
    within = np.arange(rep.size) - np.repeat(np.cumsum(group_size) - group_size, group_size)
    other_pos = group_start[rep] + within
    keep = other_pos != rep
    slot = order[rep[keep]]
    mate = order[other_pos[keep]]
    by_slot = np.argsort(slot, kind="stable")
    counts = np.bincount(slot, minlength=n_slots)
    offsets = np.r_[0, np.cumsum(counts)]
    mates = mate[by_slot]
    single = np.where(counts == 0, -1, -2)
    one = np.flatnonzero(counts == 1)
    m = mates[offsets[one]]
    single[one] = 2 * m + (a[one] == a[m])
    return TopologyHash(int(t.shape[0]), torch.from_numpy(offsets), torch.from_numpy(mates),
                        torch.from_numpy(single))


def _orientations(source: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """``det[V_0, V_1, V_2]`` of every triangle in homogeneous ``(x, y, w)``: ``(P, F)`` from ``(P|, V, 4)``.

    Two triangles sharing an edge continue one surface when their opposite vertices lie on either
    side of it: ``det_t * det_u < 0`` when the shared edge runs the same way in both, ``> 0`` when
    it runs opposite ways (consistent winding). Screen-space scaling has a positive determinant, so
    clip space and pixel space agree on the sign.
    """
    hom = source[..., [0, 1, 3]]
    v = hom[..., tri, :] if hom.ndim == 3 else hom[None, tri]  # (P, F, 3, 3)
    return (torch.cross(v[..., 1, :], v[..., 2, :], dim=-1) * v[..., 0, :]).sum(-1)


def _continues(orient: torch.Tensor, tri: torch.Tensor, p: Any, t: torch.Tensor, k: torch.Tensor,
               mate: torch.Tensor) -> torch.Tensor:
    """Does the surface continue from triangle ``t`` across its edge ``k`` into slot ``mate``?"""
    u, k2 = mate // 3, mate % 3
    same = tri[t, (k + 1) % 3] == tri[u, (k2 + 1) % 3]
    product = orient[p, t] * orient[p, u]
    return torch.where(same, product < 0, product > 0)


def _check_inputs(color: Any, rast: Any, pos: Any, tri: Any) -> None:
    if not all(isinstance(x, torch.Tensor) for x in (color, rast, pos, tri)):
        raise ShapeError("color, rast, pos and tri must be torch tensors")
    if color.ndim != 4 or any(s <= 0 for s in color.shape):
        raise ShapeError("color must have shape [>0, >0, >0, >0]")
    if rast.ndim != 4 or rast.shape[-1] != 4 or any(s <= 0 for s in rast.shape):
        raise ShapeError("rast must have shape [>0, >0, >0, 4]")
    if tuple(color.shape[:3]) != tuple(rast.shape[:3]):
        raise ShapeError("color and rast inputs must have same minibatch size and spatial dimensions")
    if pos.ndim == 3:
        if pos.shape[0] != color.shape[0] or pos.shape[1] == 0 or pos.shape[2] != 4:
            raise ShapeError("instance mode - pos must have shape [minibatch, >0, 4] matching color")
    elif pos.ndim != 2 or pos.shape[0] == 0 or pos.shape[1] != 4:
        raise ShapeError("range mode - pos must have shape [>0, 4]")
    if tri.ndim != 2 or tri.shape[0] == 0 or tri.shape[1] != 3:
        raise ShapeError("tri must have shape [>0, 3]")


def _candidate_pairs(rast: torch.Tensor):
    """Adjacent pixel pairs with different ids, oriented owner ``A`` -> other ``B``.

    Returns int64 tensors ``image, row_a, col_a, row_b, col_b, step_x, step_y, owner_triangle``.
    """
    ids = rast[..., 3].detach().long()
    depth = rast[..., 2].detach()
    out = []
    for axis, (sx, sy) in ((2, (1, 0)), (1, (0, 1))):
        n = ids.shape[axis]
        lo_ids, hi_ids = ids.narrow(axis, 0, n - 1), ids.narrow(axis, 1, n - 1)
        lo_z, hi_z = depth.narrow(axis, 0, n - 1), depth.narrow(axis, 1, n - 1)
        b, r, c = torch.nonzero(lo_ids != hi_ids, as_tuple=True)
        r2, c2 = r + sy, c + sx
        id_lo, id_hi = lo_ids[b, r, c], hi_ids[b, r, c]
        lo_owns = (id_lo > 0) & ((id_hi == 0) | (lo_z[b, r, c] <= hi_z[b, r, c]))
        row_a, col_a = torch.where(lo_owns, r, r2), torch.where(lo_owns, c, c2)
        row_b, col_b = torch.where(lo_owns, r2, r), torch.where(lo_owns, c2, c)
        sign = torch.where(lo_owns, 1, -1)
        owner = torch.where(lo_owns, id_lo, id_hi) - 1
        out.append((b, row_a, col_a, row_b, col_b, sign * sx, sign * sy, owner))
    return [torch.cat(parts) for parts in zip(*out, strict=True)]


def _pixel_homogeneous(
    p: torch.Tensor, row: torch.Tensor, col: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Clip ``p (..., 4)`` -> homogeneous pixel coords ``(X, Y, w)`` relative to pixel ``(row, col)``'s centre."""
    w = p[..., 3]
    x = (p[..., 0] + w) * (width / 2) - (col.to(p.dtype) + 0.5)[..., None] * w
    y = (p[..., 1] + w) * (height / 2) - (row.to(p.dtype) + 0.5)[..., None] * w
    return torch.stack([x, y, w], -1)


def _lines(v: torch.Tensor) -> torch.Tensor:
    """Edge lines ``(n, 3, 3)``: row ``k`` is ``cross(V[k+1], V[k+2])`` (the edge opposite vertex ``k``)."""
    return torch.cross(v[:, [1, 2, 0]], v[:, [2, 0, 1]], dim=-1)


MAX_WALK = 8  # internal edges followed along one pixel segment before giving up
NEAR = 2.0  # pixels around a silhouette edge's ends where the compiled classifier looks at pairs


def _silhouette_crossings(source, tri, topology, orientations, img, row_a, col_a, step_x, step_y, owner,
                          height, width):
    """Which candidate pairs a silhouette edge crosses: ``(pair indices, triangle, local edge)``.

    Starting from the owner's triangle, follow the segment ``A -> B`` across the mesh: leave each
    triangle through the edge whose edge function turns negative first; stop with a crossing at a
    silhouette edge, with none when ``B`` lies inside the triangle or after ``MAX_WALK`` steps.
    Following internal edges matters for meshes whose triangles are smaller than a pixel (the
    visible triangle at ``A`` is often not the one owning the silhouette edge).
    """
    n = img.numel()
    device = img.device
    found_tri = torch.full((n,), -1, dtype=torch.long, device=device)
    found_edge = torch.zeros(n, dtype=torch.long, device=device)
    active = torch.arange(n, device=device)
    current = owner.clone()
    for _ in range(MAX_WALK):
        if active.numel() == 0:
            break
        ia = img[active]
        cur = current[active]
        clip = source[tri[cur]] if source.ndim == 2 else source[ia[:, None], tri[cur]]
        verts = _pixel_homogeneous(clip, row_a[active], col_a[active], height, width)
        lines = _lines(verts)  # (m, 3 edges, 3)
        det = (lines[:, 0] * verts[:, 0]).sum(-1)  # det[V0, V1, V2]
        orient = torch.sign(det)[:, None]
        sx, sy = step_x[active][:, None], step_y[active][:, None]
        at_a = lines[..., 2] * orient  # edge functions at A (the shifted origin), inside >= 0
        at_b = (lines[..., 2] + lines[..., 0] * sx + lines[..., 1] * sy) * orient
        leaves = (at_b < 0) & (at_a - at_b > 0)
        t_edge = torch.where(leaves, at_a / (at_a - at_b).clamp_min(1e-300), torch.full_like(at_a, np.inf))
        t_exit, edge = t_edge.min(1)
        moving = torch.isfinite(t_exit) & (det != 0)
        line = lines[torch.arange(edge.numel(), device=device), edge]
        # mates across the exit edge; one whose opposite vertex lies on the other side continues the surface
        slot = (cur * 3 + edge).cpu()
        counts = topology.offsets[slot + 1] - topology.offsets[slot]
        which = torch.repeat_interleave(torch.arange(slot.numel()), counts)
        within = torch.arange(which.numel()) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        mate = topology.mates[torch.repeat_interleave(topology.offsets[slot], counts) + within].to(device)
        which = which.to(device)
        p = ia[which] if source.ndim == 3 else 0
        continues = _continues(orientations, tri, p, cur[which], edge[which], mate)
        next_tri = torch.full_like(cur, -1).index_put_((which[continues],), mate[continues] // 3)
        silhouette = moving & (next_tri < 0)
        horizontal = sx[:, 0] != 0
        facing_pair = torch.where(
            horizontal, line[:, 0].abs() >= line[:, 1].abs(), line[:, 0].abs() < line[:, 1].abs()
        )
        done = active[silhouette & facing_pair]
        found_tri[done] = cur[silhouette & facing_pair]
        found_edge[done] = edge[silhouette & facing_pair]
        walk = moving & (next_tri >= 0)
        current[active[walk]] = next_tri[walk]
        active = active[walk]
    keep = torch.nonzero(found_tri >= 0).squeeze(1)
    return keep, found_tri[keep], found_edge[keep]


def _continuing_neighbours(orient, tri, topology, n_triangles):
    """Sorted keys ``(image * F + t) * F + u`` of triangles ``t``, ``u`` that share an edge with their
    opposite vertices on either side of it (one surface continuing): pairs of pixels showing two
    such triangles need no walk, there is no silhouette between them."""
    counts = topology.offsets[1:] - topology.offsets[:-1]
    slot = torch.repeat_interleave(torch.arange(counts.numel()), counts).to(tri.device)
    mate = topology.mates.to(tri.device)
    if slot.numel() == 0:
        return slot
    t, k = slot // 3, slot % 3
    keys = []
    for b in range(orient.shape[0]):
        cont = _continues(orient, tri, b, t, k, mate)
        keys.append((b * n_triangles + t[cont]) * n_triangles + mate[cont] // 3)
    return torch.sort(torch.cat(keys)).values


def antialias(
    color: torch.Tensor,
    rast: torch.Tensor,
    pos: torch.Tensor,
    tri: torch.Tensor,
    topology_hash: Any = None,
    pos_gradient_boost: float = 1.0,
    impl: str = "auto",
) -> torch.Tensor:
    """nvdiffrast's ``antialias`` (see the module docstring); returns a tensor shaped like ``color``.

    Shapes: ``color (B, H, W, C)``, ``rast (B, H, W, 4)`` from ``rasterize``, ``pos (B, V, 4)`` or
    ``(V, 4)`` (range mode) clip space, ``tri (F, 3)``; ``topology_hash`` from
    :func:`construct_topology_hash` for ``tri`` (built on the fly when None). ``impl``: ``auto``
    (compiled for CPU float32/float64 tensors when numba imports, else torch), ``compiled`` or
    ``torch`` (the vectorised reference the compiled kernels are tested against).
    """
    if impl not in ("auto", "compiled", "torch"):
        raise ValueError(f"impl must be 'auto', 'compiled' or 'torch', got {impl!r}")
    _check_inputs(color, rast, pos, tri)
    if topology_hash is None:
        topology_hash = construct_topology_hash(tri)
    elif not isinstance(topology_hash, TopologyHash) or topology_hash.num_triangles != tri.shape[0]:
        raise ShapeError(
            "topology_hash was not built for this tri: pass antialias_construct_topology_hash(tri)"
        )
    floats = (torch.float32, torch.float64)
    compilable = (zbuffer.HAVE_NUMBA and color.dtype in floats and pos.dtype in floats
                  and all(t.device.type == "cpu" for t in (color, rast, pos, tri)))
    if impl == "compiled" and not compilable:
        raise ValueError("impl='compiled' needs numba and CPU float32/float64 tensors")
    if impl == "torch" or not compilable:
        return _antialias_torch(color, rast, pos, tri, topology_hash, pos_gradient_boost)
    pos3 = pos if pos.ndim == 3 else pos[None]
    return _Antialias.apply(color, pos3, rast, tri, topology_hash, float(pos_gradient_boost))


def _antialias_torch(color, rast, pos, tri, topology_hash, pos_gradient_boost):
    """The vectorised torch reference: candidate pairs, then the walk, then a differentiable blend."""
    n_images, height, width, n_channels = color.shape
    tri_l = tri.long().to(pos.device)
    img, row_a, col_a, row_b, col_b, step_x, step_y, owner = (
        x.to(pos.device) for x in _candidate_pairs(rast)
    )
    if img.numel() == 0:
        return color.clone()

    with torch.no_grad():
        ids_b = rast[..., 3].detach().long().to(pos.device)[img, row_b, col_b] - 1
        n_tri = tri.shape[0]
        orient = _orientations(pos.detach().double(), tri_l)
        smooth = _continuing_neighbours(orient, tri_l, topology_hash, n_tri)
        image_key = img if pos.ndim == 3 else torch.zeros_like(img)
        key = (image_key * n_tri + owner) * n_tri + ids_b
        found = torch.searchsorted(smooth, key).clamp_max(max(smooth.numel() - 1, 0))
        walk = (ids_b < 0) | (smooth.numel() == 0) | (smooth[found] != key) if smooth.numel() else ids_b > -2
        sel = torch.nonzero(walk).squeeze(1)
        img, row_a, col_a, row_b, col_b = img[sel], row_a[sel], col_a[sel], row_b[sel], col_b[sel]
        step_x, step_y, owner = step_x[sel], step_y[sel], owner[sel]
        keep, surface_tri, edge = _silhouette_crossings(
            pos.detach().double(),
            tri_l,
            topology_hash,
            orient,
            img,
            row_a,
            col_a,
            step_x,
            step_y,
            owner,
            height,
            width,
        )
    if keep.numel() == 0:
        return color.clone()
    img, row_a, col_a, row_b, col_b = img[keep], row_a[keep], col_a[keep], row_b[keep], col_b[keep]
    step_x, step_y = step_x[keep], step_y[keep]
    # differentiable crossing: only the edge's two vertices matter (t = -c / (a dx + b dy))
    ends = tri_l[surface_tri[:, None], torch.stack([(edge + 1) % 3, (edge + 2) % 3], 1)]  # (n, 2)
    ends_pos = pos[ends] if pos.ndim == 2 else pos[img[:, None], ends]
    v = _pixel_homogeneous(ends_pos, row_a, col_a, height, width)
    line = torch.cross(v[:, 0], v[:, 1], dim=-1)
    t = -line[:, 2] / (line[:, 0] * step_x.to(line.dtype) + line[:, 1] * step_y.to(line.dtype))
    if pos_gradient_boost != 1.0:
        t = t.detach() + pos_gradient_boost * (t - t.detach())
    t = t.clamp(0.0, 1.0).to(color.dtype)[:, None]
    flat = color.reshape(n_images * height * width, n_channels)
    index_a = (img * height + row_a) * width + col_a
    index_b = (img * height + row_b) * width + col_b
    color_a, color_b = flat[index_a], flat[index_b]
    delta_a = (0.5 - t).clamp_min(0) * (color_b - color_a)  # A's pixel is not fully covered
    delta_b = (t - 0.5).clamp_min(0) * (color_a - color_b)  # A's surface spills into B's pixel
    out = flat.index_add(0, torch.cat([index_a, index_b]).to(flat.device), torch.cat([delta_a, delta_b]))
    return out.view(color.shape)


class _Antialias(torch.autograd.Function):
    """Compiled antialias: ``color (B, H, W, C)``, ``pos3 (B|1, V, 4)``, ``rast``, ``tri``, topology, boost.

    The forward pass classifies every adjacent pixel pair once (int8 ``kind``: 0 no blend, 1 the lower
    pixel of the pair owns it, 2 the upper one does; pairs are indexed by their lower pixel, ``[..., 0]``
    horizontal, ``[..., 1]`` vertical), then blends each pixel from its (at most four) pairs, so no two
    threads write one pixel. Blended pairs are few; their crossing is recomputed where needed.
    """

    @staticmethod
    def forward(ctx: Any, color, pos3, rast, tri, topology, boost):
        mesh = _kernel_mesh(pos3, rast, tri, topology)
        c_np = np.ascontiguousarray(color.detach().numpy())
        n_images, height, width, _ = color.shape
        kind = np.empty((n_images, height, width, 2), np.int8)
        out = c_np.copy()
        with zbuffer.threads_for(n_images * height * width):
            _aa_classify_kernel(*mesh, kind)
            _aa_blend_kernel(*mesh, c_np, kind, out)
        ctx.save_for_backward(color, pos3, rast)
        ctx.mesh = mesh
        ctx.kind = kind
        ctx.boost = boost
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx: Any, grad_out):
        color, pos3, rast = ctx.saved_tensors
        need_color, need_pos = ctx.needs_input_grad[:2]
        c_np = np.ascontiguousarray(color.detach().numpy())
        n_images, height, width, _ = color.shape
        grad = np.ascontiguousarray(grad_out.detach().numpy().astype(c_np.dtype, copy=False))
        chunks = max(1, min(zbuffer.numba.get_num_threads(), n_images * height))
        grad_color = grad.copy() if need_color else np.zeros((1, 1, 1, 1), c_np.dtype)
        grad_pos = np.zeros((chunks,) + ctx.mesh[0].shape if need_pos else (1, 1, 1, 4), np.float64)
        with zbuffer.threads_for(n_images * height * width):
            _aa_backward_kernel(*ctx.mesh, c_np, ctx.kind, grad, ctx.boost, need_color, need_pos, chunks,
                                grad_color, grad_pos)
        gc = torch.from_numpy(grad_color) if need_color else None
        gp = torch.from_numpy(grad_pos.sum(0)).to(pos3.dtype) if need_pos else None
        return gc, gp, None, None, None, None


def _kernel_mesh(pos3, rast, tri, topology):
    """``(pos float64, tri int64, offsets, mates, single, orientations, near, rast)`` for the kernels."""
    pos = np.ascontiguousarray(pos3.detach().numpy(), dtype=np.float64)
    tri_np = np.ascontiguousarray(tri.numpy(), dtype=np.int64)
    offsets, mates, single = topology.offsets.numpy(), topology.mates.numpy(), topology.single.numpy()
    orient = np.empty((pos.shape[0], tri_np.shape[0]), np.float64)
    near = np.zeros((pos.shape[0],) + tuple(rast.shape[1:3]), np.uint8)
    with zbuffer.threads_for(orient.size):
        _aa_orientations_kernel(pos, tri_np, orient)
        _aa_near_silhouettes_kernel(pos, tri_np, offsets, mates, single, orient, near)
    return pos, tri_np, offsets, mates, single, orient, near, np.ascontiguousarray(rast.detach().numpy())


if zbuffer.HAVE_NUMBA:
    numba = zbuffer.numba

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _aa_orientations_kernel(pos, tri, orient):  # pragma: no cover - compiled
        """:func:`_orientations`, same arithmetic order."""
        n_pos, n_tri = orient.shape
        for job in numba.prange(n_pos * n_tri):
            p = job // n_tri
            t = job % n_tri
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            x1, y1, w1 = pos[p, i1, 0], pos[p, i1, 1], pos[p, i1, 3]
            x2, y2, w2 = pos[p, i2, 0], pos[p, i2, 1], pos[p, i2, 3]
            orient[p, t] = ((y1 * w2 - w1 * y2) * pos[p, i0, 0] + (w1 * x2 - x1 * w2) * pos[p, i0, 1]
                            + (x1 * y2 - y1 * x2) * pos[p, i0, 3])

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _aa_near_silhouettes_kernel(pos, tri, offsets, mates, single, orient,
                                    near):  # pragma: no cover - compiled
        """Mark ``near[p]`` around every silhouette edge (no continuing surface across it): the box of its
        two projected ends grown by ``NEAR`` pixels, or the whole image when an end is not in front of the
        camera. The walk can only find a crossing within one pixel of an endpoint of the pair, so pairs
        with neither pixel marked are skipped without changing any result (a speed-up only).

        One parallel loop over every (position set, triangle): a loop per position set launched the
        threads once per image of a batch, and each launch waits for a sleeping thread to wake (on a
        busy 2-core machine, 8 launches took 310 ms of wall time for 5 ms of work at 1024² batch 8)."""
        n_pos, height, width = near.shape
        n_tri = tri.shape[0]
        hw = 0.5 * width
        hh = 0.5 * height
        everywhere = np.zeros(n_pos, np.uint8)
        for job in numba.prange(n_pos * n_tri):
            p = job // n_tri
            t = job % n_tri
            for k in range(3):
                code = single[3 * t + k]
                if code >= 0:  # one mate (the usual case), tested inline
                    product = orient[p, t] * orient[p, (code >> 1) // 3]
                    if (product < 0) if code & 1 else (product > 0):
                        continue
                elif code == -2 and _aa_across(tri, offsets, mates, single, orient, p, t, k, -1) >= 0:
                    continue
                a = tri[t, (k + 1) % 3]
                b = tri[t, (k + 2) % 3]
                wa = pos[p, a, 3]
                wb = pos[p, b, 3]
                if not (wa > 0 and wb > 0):
                    everywhere[p] = 1  # racing threads all write the same value
                    continue
                xa = (pos[p, a, 0] / wa + 1.0) * hw
                xb = (pos[p, b, 0] / wb + 1.0) * hw
                ya = (pos[p, a, 1] / wa + 1.0) * hh
                yb = (pos[p, b, 1] / wb + 1.0) * hh
                c_lo = max(0.0, min(xa, xb) - 0.5 - NEAR)
                c_hi = min(width - 1.0, max(xa, xb) - 0.5 + NEAR)
                r_lo = max(0.0, min(ya, yb) - 0.5 - NEAR)
                r_hi = min(height - 1.0, max(ya, yb) - 0.5 + NEAR)
                if not (c_lo <= c_hi and r_lo <= r_hi):  # off screen (or NaN): nothing to mark
                    continue
                for r in range(int(math.ceil(r_lo)), int(r_hi) + 1):
                    for c in range(int(math.ceil(c_lo)), int(c_hi) + 1):
                        near[p, r, c] = 1  # racing threads all write the same value
        for p in range(n_pos):
            if everywhere[p]:
                near[p] = 1

    @numba.njit(cache=True, nogil=True)
    def _aa_vertex(pos, p, vi, row, col, hw, hh):  # pragma: no cover - compiled
        """Homogeneous pixel coordinates ``(X, Y, w)`` of vertex ``vi`` about ``(row, col)``'s centre"""
        w = pos[p, vi, 3]
        return (pos[p, vi, 0] + w) * hw - (col + 0.5) * w, (pos[p, vi, 1] + w) * hh - (row + 0.5) * w, w

    @numba.njit(cache=True, nogil=True)
    def _aa_across(tri, offsets, mates, single, orient, p, t, k, only):  # pragma: no cover - compiled
        """The triangle continuing the surface of ``t`` across its edge ``k`` (the last one when several do;
        only triangle ``only`` counts when ``only >= 0``), else -1: :func:`_continues`."""
        code = single[3 * t + k]
        if code == -1:
            return -1
        if code >= 0:
            u = (code >> 1) // 3
            if only >= 0 and u != only:
                return -1
            product = orient[p, t] * orient[p, u]
            return u if ((product < 0) if code & 1 else (product > 0)) else -1
        found = -1
        for i in range(offsets[3 * t + k], offsets[3 * t + k + 1]):
            mate = mates[i]
            u = mate // 3
            if only >= 0 and u != only:
                continue
            product = orient[p, t] * orient[p, u]
            if (product < 0) if tri[t, (k + 1) % 3] == tri[u, (mate % 3 + 1) % 3] else (product > 0):
                found = u
        return found

    @numba.njit(cache=True, nogil=True)
    def _aa_walk(pos, p, tri, offsets, mates, single, orient, owner, row, col, sx, sy, hw,
                 hh):  # pragma: no cover - compiled
        """``(triangle, local edge)`` of the silhouette edge the segment from pixel ``(row, col)`` one step
        along ``(sx, sy)`` crosses, following continuing surfaces (``MAX_WALK`` triangles), or ``(-1, 0)``."""
        cur = owner
        for _ in range(MAX_WALK):
            X0, Y0, W0 = _aa_vertex(pos, p, tri[cur, 0], row, col, hw, hh)
            X1, Y1, W1 = _aa_vertex(pos, p, tri[cur, 1], row, col, hw, hh)
            X2, Y2, W2 = _aa_vertex(pos, p, tri[cur, 2], row, col, hw, hh)
            # edge k's line: cross(V[k+1], V[k+2])
            lx = (Y1 * W2 - W1 * Y2, Y2 * W0 - W2 * Y0, Y0 * W1 - W0 * Y1)
            ly = (W1 * X2 - X1 * W2, W2 * X0 - X2 * W0, W0 * X1 - X0 * W1)
            lw = (X1 * Y2 - Y1 * X2, X2 * Y0 - Y2 * X0, X0 * Y1 - Y0 * X1)
            det = lx[0] * X0 + ly[0] * Y0 + lw[0] * W0
            orientation = 1.0 if det > 0 else (-1.0 if det < 0 else 0.0)
            best = np.inf
            edge = 0
            for k in range(3):
                at_a = lw[k] * orientation
                at_b = (lw[k] + lx[k] * sx + ly[k] * sy) * orientation
                if at_b < 0 and at_a - at_b > 0:
                    t_edge = at_a / max(at_a - at_b, 1e-300)
                    if t_edge < best:
                        best = t_edge
                        edge = k
            if not (math.isfinite(best) and det != 0):
                return -1, 0
            nxt = _aa_across(tri, offsets, mates, single, orient, p, cur, edge, -1)
            if nxt < 0:
                facing = abs(lx[edge]) >= abs(ly[edge]) if sx != 0 else abs(lx[edge]) < abs(ly[edge])
                return (cur, edge) if facing else (-1, 0)
            cur = nxt
        return -1, 0

    @numba.njit(cache=True, nogil=True)
    def _aa_crossing(pos, p, tri, found, edge, row, col, sx, sy, hw, hh):  # pragma: no cover - compiled
        """``t = -L_w / (L_x sx + L_y sy)`` of the edge's line ``L = V_a x V_b`` and its inputs."""
        ia = tri[found, (edge + 1) % 3]
        ib = tri[found, (edge + 2) % 3]
        Xa, Ya, Wa = _aa_vertex(pos, p, ia, row, col, hw, hh)
        Xb, Yb, Wb = _aa_vertex(pos, p, ib, row, col, hw, hh)
        lx = Ya * Wb - Wa * Yb
        ly = Wa * Xb - Xa * Wb
        lw = Xa * Yb - Ya * Xb
        d = lx * sx + ly * sy
        return -lw / d, ia, ib, Xa, Ya, Wa, Xb, Yb, Wb, lx, ly, lw, d

    @numba.njit(cache=True, nogil=True)
    def _aa_pair(pos, tri, offsets, mates, single, orient, rast, b, r, c,
                 vertical):  # pragma: no cover - compiled
        """The pair from pixel ``(r, c)`` to its right (``vertical`` 0) or upper neighbour: ``(kind, triangle,
        edge, t, row_a, col_a, row_b, col_b, sx, sy)``; ``kind`` 0 no blend, 1 ``(r, c)`` owns, 2 the
        other."""
        n_images, height, width, _ = rast.shape
        hw = 0.5 * width
        hh = 0.5 * height
        p = b if pos.shape[0] > 1 else 0
        r2 = r + vertical
        c2 = c + 1 - vertical
        id_lo = int(rast[b, r, c, 3])
        id_hi = int(rast[b, r2, c2, 3])
        if id_lo == id_hi:
            return 0, -1, 0, 0.0, r, c, r2, c2, 0, 0
        if id_lo > 0 and (id_hi == 0 or rast[b, r, c, 2] <= rast[b, r2, c2, 2]):
            kind, ra, ca, rb, cb, owner, other = 1, r, c, r2, c2, id_lo - 1, id_hi - 1
            sx, sy = 1 - vertical, vertical
        else:
            kind, ra, ca, rb, cb, owner, other = 2, r2, c2, r, c, id_hi - 1, id_lo - 1
            sx, sy = vertical - 1, -vertical
        if other >= 0:  # neighbours on one continuing surface: no silhouette between them
            for k in range(3):
                if _aa_across(tri, offsets, mates, single, orient, p, owner, k, other) >= 0:
                    return 0, -1, 0, 0.0, ra, ca, rb, cb, sx, sy
        found, edge = _aa_walk(pos, p, tri, offsets, mates, single, orient, owner, ra, ca, sx, sy, hw, hh)
        if found < 0:
            return 0, -1, 0, 0.0, ra, ca, rb, cb, sx, sy
        t = _aa_crossing(pos, p, tri, found, edge, ra, ca, sx, sy, hw, hh)[0]
        if not math.isfinite(t):
            return 0, -1, 0, 0.0, ra, ca, rb, cb, sx, sy
        return kind, found, edge, t, ra, ca, rb, cb, sx, sy

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _aa_classify_kernel(pos, tri, offsets, mates, single, orient, near, rast,
                            kind):  # pragma: no cover - compiled
        n_images, height, width, _ = rast.shape
        for job in numba.prange(n_images * height):
            b = job // height
            r = job % height
            p = b if pos.shape[0] > 1 else 0
            for c in range(width):
                kind[b, r, c, 0] = 0
                kind[b, r, c, 1] = 0
                if near[p, r, c] == 0 and (r + 1 == height or near[p, r + 1, c] == 0) and (
                        c + 1 == width or near[p, r, c + 1] == 0):
                    continue  # no silhouette edge within reach of this pixel's pairs
                here = rast[b, r, c, 3]  # most neighbours show the same triangle: test that first, inline
                if c + 1 < width and rast[b, r, c + 1, 3] != here:
                    kind[b, r, c, 0] = _aa_pair(pos, tri, offsets, mates, single, orient, rast, b, r, c, 0)[0]
                if r + 1 < height and rast[b, r + 1, c, 3] != here:
                    kind[b, r, c, 1] = _aa_pair(pos, tri, offsets, mates, single, orient, rast, b, r, c, 1)[0]

    @numba.njit(cache=True, nogil=True, inline="always")
    def _aa_touched(kind, b, r, c):  # pragma: no cover - compiled
        """Does any pair of pixel ``(r, c)`` blend? (``kind`` is 0 beyond the image's last column / row.)"""
        return (kind[b, r, c, 0] != 0 or kind[b, r, c, 1] != 0 or (c > 0 and kind[b, r, c - 1, 0] != 0)
                or (r > 0 and kind[b, r - 1, c, 1] != 0))

    @numba.njit(cache=True, nogil=True, inline="always")
    def _aa_incident(kind, b, r, c, height, width, slot):  # pragma: no cover - compiled
        """Slot 0..3 of pixel ``(r, c)``'s pairs (left, right, below, above): ``(lower pixel row, col,
        vertical, this pixel is the lower one)``, or row -1 when that pair does not blend."""
        if slot == 0:
            return (r, c - 1, 0, False) if c > 0 and kind[b, r, c - 1, 0] != 0 else (-1, 0, 0, False)
        if slot == 1:
            return (r, c, 0, True) if c + 1 < width and kind[b, r, c, 0] != 0 else (-1, 0, 0, False)
        if slot == 2:
            return (r - 1, c, 1, False) if r > 0 and kind[b, r - 1, c, 1] != 0 else (-1, 0, 0, False)
        return (r, c, 1, True) if r + 1 < height and kind[b, r, c, 1] != 0 else (-1, 0, 0, False)

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _aa_blend_kernel(pos, tri, offsets, mates, single, orient, near, rast, color, kind,
                         out):  # pragma: no cover - compiled
        """Adds each blended pair's share to ``out`` (a copy of ``color``), gathering per pixel."""
        n_images, height, width, n_channels = color.shape
        for job in numba.prange(n_images * height):
            b = job // height
            r = job % height
            for c in range(width):
                if not _aa_touched(kind, b, r, c):
                    continue
                for slot in range(4):
                    lr, lc, vertical, is_lo = _aa_incident(kind, b, r, c, height, width, slot)
                    if lr < 0:
                        continue
                    pair = _aa_pair(pos, tri, offsets, mates, single, orient, rast, b, lr, lc, vertical)
                    k, t, ra, ca, rb, cb = pair[0], pair[3], pair[4], pair[5], pair[6], pair[7]
                    tc = min(max(t, 0.0), 1.0)
                    if (k == 1) == is_lo:  # this pixel is A, the owner: covered up to t
                        f = max(0.5 - tc, 0.0)
                        if f > 0:
                            for ch in range(n_channels):
                                out[b, r, c, ch] += f * (color[b, rb, cb, ch] - color[b, ra, ca, ch])
                    else:  # this pixel is B: A's surface spills in beyond 1/2
                        f = max(tc - 0.5, 0.0)
                        if f > 0:
                            for ch in range(n_channels):
                                out[b, r, c, ch] += f * (color[b, ra, ca, ch] - color[b, rb, cb, ch])

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _aa_backward_kernel(pos, tri, offsets, mates, single, orient, near, rast, color, kind, grad, boost,
                            need_color, need_pos, n_chunks, grad_color,
                            grad_pos):  # pragma: no cover - compiled
        """``grad_color`` (a copy of ``grad``) gathers per pixel; ``pos`` gradients go to chunk buffers."""
        n_images, height, width, n_channels = color.shape
        hw = 0.5 * width
        hh = 0.5 * height
        n_jobs = n_images * height
        for chunk in numba.prange(n_chunks):
            for job in range(chunk * n_jobs // n_chunks, (chunk + 1) * n_jobs // n_chunks):
                b = job // height
                r = job % height
                p = b if pos.shape[0] > 1 else 0
                for c in range(width):
                    if not _aa_touched(kind, b, r, c):
                        continue
                    for slot in range(4):
                        lr, lc, vertical, is_lo = _aa_incident(kind, b, r, c, height, width, slot)
                        if lr < 0 or not (need_color or (need_pos and is_lo)):
                            continue
                        pair = _aa_pair(pos, tri, offsets, mates, single, orient, rast, b, lr, lc, vertical)
                        k, found, edge, t, ra, ca, rb, cb, sx, sy = pair
                        tc = min(max(t, 0.0), 1.0)
                        ka = max(0.5 - tc, 0.0)
                        kb = max(tc - 0.5, 0.0)
                        if need_color:
                            if (k == 1) == is_lo:  # this pixel is A
                                for ch in range(n_channels):
                                    g_a, g_b = grad[b, ra, ca, ch], grad[b, rb, cb, ch]
                                    grad_color[b, r, c, ch] += kb * g_b - ka * g_a
                            else:
                                for ch in range(n_channels):
                                    g_a, g_b = grad[b, ra, ca, ch], grad[b, rb, cb, ch]
                                    grad_color[b, r, c, ch] += ka * g_a - kb * g_b
                        if not (need_pos and is_lo) or not (t >= 0.0 and t <= 1.0):
                            continue  # each pair's pos gradient once (from its lower pixel); clamp stops it
                        g_t = 0.0
                        for ch in range(n_channels):
                            diff = np.float64(color[b, rb, cb, ch]) - np.float64(color[b, ra, ca, ch])
                            if 0.5 - tc >= 0:
                                g_t -= grad[b, ra, ca, ch] * diff
                            if tc - 0.5 >= 0:
                                g_t -= grad[b, rb, cb, ch] * diff
                        if g_t == 0:
                            continue
                        g_t *= boost
                        _, ia, ib, Xa, Ya, Wa, Xb, Yb, Wb, lx, ly, lw, d = _aa_crossing(
                            pos, p, tri, found, edge, ra, ca, sx, sy, hw, hh)
                        g_lw = -g_t / d
                        g_lx = g_t * lw * sx / (d * d)
                        g_ly = g_t * lw * sy / (d * d)
                        # L = (Ya Wb - Wa Yb, Wa Xb - Xa Wb, Xa Yb - Ya Xb)
                        gXa = -g_ly * Wb + g_lw * Yb
                        gYa = g_lx * Wb - g_lw * Xb
                        gWa = -g_lx * Yb + g_ly * Xb
                        gXb = g_ly * Wa - g_lw * Ya
                        gYb = -g_lx * Wa + g_lw * Xa
                        gWb = g_lx * Ya - g_ly * Xa
                        grad_pos[chunk, p, ia, 0] += gXa * hw
                        grad_pos[chunk, p, ia, 1] += gYa * hh
                        grad_pos[chunk, p, ia, 3] += gWa + gXa * (hw - (ca + 0.5)) + gYa * (hh - (ra + 0.5))
                        grad_pos[chunk, p, ib, 0] += gXb * hw
                        grad_pos[chunk, p, ib, 1] += gYb * hh
                        grad_pos[chunk, p, ib, 3] += gWb + gXb * (hw - (ca + 0.5)) + gYb * (hh - (ra + 0.5))
