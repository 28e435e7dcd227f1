"""``antialias`` in torch: analytic blending across silhouette edges, differentiable in ``pos``.

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

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fk.errors import ShapeError


@dataclass(frozen=True)
class TopologyHash:
    """Edge -> triangles map for ``antialias``, built by :func:`construct_topology_hash`.

    Half-edge slot ``s = 3 f + k`` is the edge of triangle ``f`` opposite its vertex ``k``;
    ``mates[offsets[s]:offsets[s + 1]]`` are the other slots on the same (undirected) edge.
    """

    num_triangles: int
    offsets: torch.Tensor  # (3F + 1,) int64
    mates: torch.Tensor  # (M,) int64


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
    return TopologyHash(int(t.shape[0]), torch.from_numpy(offsets), torch.from_numpy(mate[by_slot]))


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


def _silhouette_crossings(source, tri, topology, img, row_a, col_a, step_x, step_y, owner, height, width):
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
        # mates across the exit edge; a mate whose opposite vertex lies on the other side continues the surface
        slot = (cur * 3 + edge).cpu()
        counts = topology.offsets[slot + 1] - topology.offsets[slot]
        which = torch.repeat_interleave(torch.arange(slot.numel()), counts)
        within = torch.arange(which.numel()) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        mate = topology.mates[torch.repeat_interleave(topology.offsets[slot], counts) + within].to(device)
        which = which.to(device)
        opposite = tri[mate // 3, mate % 3]
        q_clip = source[opposite] if source.ndim == 2 else source[ia[which], opposite]
        q = _pixel_homogeneous(q_clip[:, None], row_a[active][which], col_a[active][which], height, width)[
            :, 0
        ]
        continues = (line[which] * q).sum(-1) * det[which] < 0
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


def _continuing_neighbours(source, tri, topology, n_images, n_triangles):
    """Sorted keys ``(image * F + t) * F + u`` of triangles ``t``, ``u`` that share an edge with their
    opposite vertices on either side of it (one surface continuing): pairs of pixels showing two
    such triangles need no walk, there is no silhouette between them."""
    counts = topology.offsets[1:] - topology.offsets[:-1]
    slot = torch.repeat_interleave(torch.arange(counts.numel()), counts).to(tri.device)
    mate = topology.mates.to(tri.device)
    if slot.numel() == 0:
        return slot
    t, k = slot // 3, slot % 3
    u, k2 = mate // 3, mate % 3
    images = range(n_images) if source.ndim == 3 else [None]
    keys = []
    for b in images:
        p = source[b] if b is not None else source
        # homogeneous (x, y, w) orientation of (edge a, edge b, point): the NDC scale does not change signs
        hom = p[:, [0, 1, 3]]
        ea, eb = hom[tri[t, (k + 1) % 3]], hom[tri[t, (k + 2) % 3]]
        line = torch.cross(ea, eb, dim=-1)
        own = (line * hom[tri[t, k]]).sum(-1)
        other = (line * hom[tri[u, k2]]).sum(-1)
        cont = own * other < 0
        base = 0 if b is None else b
        keys.append((base * n_triangles + t[cont]) * n_triangles + u[cont])
    return torch.sort(torch.cat(keys)).values


def antialias(
    color: torch.Tensor,
    rast: torch.Tensor,
    pos: torch.Tensor,
    tri: torch.Tensor,
    topology_hash: Any = None,
    pos_gradient_boost: float = 1.0,
) -> torch.Tensor:
    """nvdiffrast's ``antialias`` (see the module docstring); returns a tensor shaped like ``color``.

    Shapes: ``color (B, H, W, C)``, ``rast (B, H, W, 4)`` from ``rasterize``, ``pos (B, V, 4)`` or
    ``(V, 4)`` (range mode) clip space, ``tri (F, 3)``; ``topology_hash`` from
    :func:`construct_topology_hash` for ``tri`` (built on the fly when None).
    """
    _check_inputs(color, rast, pos, tri)
    if topology_hash is None:
        topology_hash = construct_topology_hash(tri)
    elif not isinstance(topology_hash, TopologyHash) or topology_hash.num_triangles != tri.shape[0]:
        raise ShapeError(
            "topology_hash was not built for this tri: pass antialias_construct_topology_hash(tri)"
        )
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
        smooth = _continuing_neighbours(pos.detach().double(), tri_l, topology_hash, n_images, n_tri)
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
