"""Compiled kernels of the photo -> UV projection (:mod:`fk.render.uv_projection`, ``impl="compiled"``).

One fused, single-threaded numba kernel (``cache=True``, ``nogil=True``; one thread on purpose: the
projection runs once per face inside a batch that already fills the cores), :func:`project`, runs:

- the texel samples (steps 1-3, :func:`texel_samples`): per covered texel, the posed point, the normal
  and the unposed point from the triangle's corners, the facing ramp, the projection into the photo, the
  z-buffer test, the optional photo-space mask and the bilinear photo sample;
- the mirrored fill's search (step 4): donors and mirrored queries pruned on a grid of cells as wide as
  the search radius (a pair closer than the radius is in neighbouring cells), then each query's nearest
  donor within the radius from a k-d tree (:func:`nearest_within`, cKDTree's answers);
- the blend and the fill (steps 4-5): the mirrored share of each colour, the scatter into the ``S x S``
  map, the pull-push fill (:func:`pull_push`), the confidence-weighted composite and the rounding.

The arithmetic follows the numpy reference operation by operation (the same products and sums in the
same order; scipy's order-1 spline weights ``1 - f, 1 - (1 - f)`` with ``v * w_y * w_x`` summed row-major
and rounded to float32), so weights, colours, the mirror's sources and the confidence equal the
reference's bit for bit. The pull-push's coarse-to-fine upsampling is torch's bilinear
(``align_corners=False``) in the reference, whose compiled summation order fk does not reproduce:
filled values differ by a few ulps, which moves a texel that lands on a rounding boundary by one level
(none of the demo's 3.1M values; tested to stay below 1e-5 of them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fk.render.cpu import zbuffer

HAVE_NUMBA = zbuffer.HAVE_NUMBA


def texel_samples(per_vertex: np.ndarray, has_sym: bool, faces: np.ndarray, triangle: np.ndarray,
                  bary: np.ndarray, K: np.ndarray, depth: np.ndarray, tolerance: float, photo: np.ndarray,
                  mask: np.ndarray | None, min_facing: float, facing_ramp: float):
    """Steps 1-3 for every covered texel: ``weight (M,)``, ``colour (M, 3)`` in [0, 1] and ``canon (M, 3)``
    (the unposed points; (0, 3) without ``has_sym``).

    ``per_vertex (N, 6|9)``: posed points, unit normals (and unposed points when ``has_sym``);
    ``faces (F, 3)``; ``triangle (M,)`` and ``bary (M, 3)``: the texels' triangles and barycentrics;
    ``K`` the photo's intrinsics; ``depth (dh, dw)`` the z-buffer (0 where empty) of the photo shrunk
    to ``(dh, dw)``; ``tolerance`` the absolute depth slack; ``mask`` an (H, W) float64 weight or None.
    """
    m = len(bary)
    weight, colour, canon = np.empty(m), np.empty((m, 3)), np.empty((m if has_sym else 0, 3))
    _texel_kernel(*_texel_args(per_vertex, has_sym, faces, triangle, bary, K, depth, tolerance, photo, mask,
                               min_facing, facing_ramp), weight, colour, canon)
    return weight, colour, canon


def project(per_vertex: np.ndarray, has_sym: bool, faces: np.ndarray, triangle: np.ndarray,
            bary: np.ndarray, K: np.ndarray, depth: np.ndarray, tolerance: float, photo: np.ndarray,
            mask: np.ndarray | None, min_facing: float, facing_ramp: float, mirror_radius: float,
            flat_index: np.ndarray, size: int, fill: bool):
    """Steps 1-5 in one kernel call: ``(texture (S, S, 3) uint8, confidence map (S, S), weight (M,),
    mirror share (M,), confidence (M,))`` (see :func:`fk.render.uv_projection.project_photo_to_uv`).

    The arguments are :func:`texel_samples`'s, the mirror search's radius (0: no mirrored fill; it needs
    ``has_sym``), the covered texels' row-major indices ``flat_index (M,)`` in the ``S x S`` map and
    whether to fill the rest.
    """
    m = len(bary)
    texture, conf_map = np.empty((size, size, 3), np.uint8), np.empty((size, size))
    weight, share, confidence = np.empty(m), np.empty(m), np.empty(m)
    _project_kernel(*_texel_args(per_vertex, has_sym, faces, triangle, bary, K, depth, tolerance, photo, mask,
                                 min_facing, facing_ramp),
                    float(mirror_radius) if has_sym else 0.0, _read_only(flat_index, np.int64),
                    bool(fill), texture, conf_map, weight, share, confidence)
    return texture, conf_map, weight, share, confidence


def warm() -> None:
    """Load the fused kernel from numba's cache (compile it on the very first run) with a one-triangle
    call: :func:`_texel_args` gives every call the same argument types, so the first photo then finds it
    loaded (~0.1 s otherwise; a warm server keeps it for every run it forks)."""
    if not HAVE_NUMBA:
        return
    per_vertex = np.zeros((3, 9))
    per_vertex[:, 0:3] = per_vertex[:, 6:9] = [[-1.0, -1.0, 5.0], [1.0, -1.0, 5.0], [0.0, 1.0, 5.0]]
    per_vertex[:, 5] = -1.0  # normals facing the camera
    project(per_vertex, True, np.array([[0, 1, 2]]), np.zeros(1, np.int64), np.full((1, 3), 1.0 / 3.0),
            np.array([[2.0, 0, 2], [0, 2.0, 2], [0, 0, 1]]), np.full((4, 4), 5.0), 0.1,
            np.zeros((4, 4, 3), np.uint8), None, 0.1, 0.25, 0.05, np.array([0]), 2, True)


def nearest_within(points: np.ndarray, queries: np.ndarray, radius: float) -> np.ndarray:
    """Index of each query's nearest point closer than ``radius`` (``-1`` where none is): the kernels'
    k-d tree, the same answers as ``scipy.spatial.cKDTree.query(..., distance_upper_bound=radius)``."""
    points = np.ascontiguousarray(points, np.float64).reshape(-1, 3)
    return _nearest_within(points, np.ascontiguousarray(queries, np.float64).reshape(-1, 3), float(radius))


def _read_only(array: np.ndarray, dtype: Any = None) -> np.ndarray:
    """A C-contiguous read-only view (a copy only when the dtype or layout differs): numba compiles one
    version of a kernel per argument type, read-only included, so every caller's inputs get the same one."""
    view = np.ascontiguousarray(array, dtype).view()
    view.setflags(write=False)
    return view


def _texel_args(per_vertex, has_sym, faces, triangle, bary, K, depth, tolerance, photo, mask, min_facing,
                facing_ramp) -> tuple:
    use_mask = mask is not None
    return (_read_only(per_vertex, np.float64), bool(has_sym), _read_only(faces, np.int64),
            _read_only(triangle, np.int64), _read_only(bary, np.float64), _read_only(np.ravel(K), np.float64),
            _read_only(depth, np.float64), float(tolerance), _read_only(photo, np.uint8), use_mask,
            _read_only(mask if use_mask else np.zeros((1, 1)), np.float64), float(min_facing),
            float(facing_ramp))


def pull_push(image: np.ndarray, weight: np.ndarray, levels: int) -> np.ndarray:
    """The compiled pull-push of :func:`fk.render.uv_projection.pull_push_fill`: ``(H, W, C)`` float64.

    ``image (H, W, C)`` float64 (not yet multiplied by the weight), ``weight (H, W)`` clipped to [0, 1].
    """
    img = np.ascontiguousarray(image, np.float64)
    out = np.empty_like(img)
    _pull_push_kernel(img, np.ascontiguousarray(weight, np.float64), int(levels), out)
    return out


if HAVE_NUMBA:
    numba = zbuffer.numba

    @numba.njit(cache=True, nogil=True)
    def _texel_kernel(per_vertex, has_sym, faces, triangle, bary, K, depth, tolerance, photo, use_mask, mask,
                      min_facing, facing_ramp, weight, colour, canon):  # pragma: no cover - compiled
        h, w = photo.shape[0], photo.shape[1]
        dh, dw = depth.shape[0], depth.shape[1]
        ox = 0.5 * dw / w  # the reference's px * dw / w + 0.5 * dw / w - 0.5, in that order
        oy = 0.5 * dh / h
        ramp = max((min_facing + facing_ramp) - min_facing, 1e-12)
        n_cols = 9 if has_sym else 6
        acc = np.empty(9)
        for i in range(bary.shape[0]):
            tri = triangle[i]
            c0 = faces[tri, 0]
            c1 = faces[tri, 1]
            c2 = faces[tri, 2]
            b0 = bary[i, 0]
            b1 = bary[i, 1]
            b2 = bary[i, 2]
            for k in range(n_cols):  # 1. the texel's point, normal (and unposed point)
                acc[k] = (b0 * per_vertex[c0, k] + b1 * per_vertex[c1, k]) + b2 * per_vertex[c2, k]
            x, y, z = acc[0], acc[1], acc[2]
            nn = max(np.sqrt((acc[3] * acc[3] + acc[4] * acc[4]) + acc[5] * acc[5]), 1e-12)
            pn = max(np.sqrt((x * x + y * y) + z * z), 1e-12)
            facing = -(((acc[3] / nn) * (x / pn) + (acc[4] / nn) * (y / pn)) + (acc[5] / nn) * (z / pn))
            if has_sym:
                canon[i, 0] = acc[6]
                canon[i, 1] = acc[7]
                canon[i, 2] = acc[8]
            # 2. visibility: in front of the z-buffer, facing the camera, inside the photo
            zc = max(z, 1e-9)
            px = (K[0] * x + K[1] * y) / zc + K[2]
            py = K[4] * y / zc + K[5]
            dxf = np.rint(px * dw / w + ox - 0.5)
            dyf = np.rint(py * dh / h + oy - 0.5)
            inside = z > 0 and dxf >= 0 and dxf < dw and dyf >= 0 and dyf < dh
            visible = False
            if inside:
                zb = depth[int(dyf), int(dxf)]
                visible = zb > 0 and z <= zb + tolerance
            t = min(max((facing - min_facing) / ramp, 0.0), 1.0)
            wgt = t * t * (3 - 2 * t) * (1.0 if visible else 0.0)
            if use_mask:
                if inside:
                    mx = min(max(np.rint(px), 0.0), w - 1.0)
                    my = min(max(np.rint(py), 0.0), h - 1.0)
                    wgt = wgt * mask[int(my), int(mx)]
                else:
                    wgt = wgt * 0.0
            weight[i] = wgt
            # 3. bilinear photo sample (scipy's order-1 map_coordinates, mode "nearest", into float32)
            cy = min(max(py, 0.0), h - 1.0)
            cx = min(max(px, 0.0), w - 1.0)
            y0 = np.floor(cy)
            x0 = np.floor(cx)
            wy0 = 1.0 - (cy - y0)
            wy1 = 1.0 - wy0
            wx0 = 1.0 - (cx - x0)
            wx1 = 1.0 - wx0
            r0 = int(y0)
            q0 = int(x0)
            r1 = min(r0 + 1, h - 1)  # the clamped neighbour has weight 0 there
            q1 = min(q0 + 1, w - 1)
            for ch in range(3):
                s = 0.0
                s += float(photo[r0, q0, ch]) * wy0 * wx0
                s += float(photo[r0, q1, ch]) * wy0 * wx1
                s += float(photo[r1, q0, ch]) * wy1 * wx0
                s += float(photo[r1, q1, ch]) * wy1 * wx1
                colour[i, ch] = float(np.float32(s)) / 255.0

    @numba.njit(cache=True, nogil=True)
    def _dilated(marks):  # pragma: no cover - compiled
        """Cells with a marked cell in the 3x3x3 block around them."""
        na, nb, nc = marks.shape
        out = np.zeros_like(marks)
        for a in range(na):
            for b in range(nb):
                for c in range(nc):
                    if marks[a, b, c]:
                        out[max(a - 1, 0):a + 2, max(b - 1, 0):b + 2, max(c - 1, 0):c + 2] = True
        return out

    @numba.njit(cache=True, nogil=True)
    def _mirror_candidates(weight, canon, radius):  # pragma: no cover - compiled
        """Donors and mirrored queries with a partner in a neighbouring cell (see :func:`texel_samples`)."""
        m = weight.shape[0]
        n_donors = 0
        n_needs = 0
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        if radius > 0:
            for i in range(m):
                if weight[i] >= 0.5:
                    n_donors += 1
                    for k in range(3):
                        lo[k] = min(lo[k], canon[i, k])
                        hi[k] = max(hi[k], canon[i, k])
                if weight[i] < 1.0:
                    n_needs += 1
        if n_donors == 0 or n_needs == 0:
            return (np.empty(0, np.int64), np.empty((0, 3)), np.empty(0, np.int64), np.empty((0, 3)))
        # Cells at least the radius wide (a hair more, against rounding), at most ~2M of them: a donor
        # closer than the radius to a query lies in the query's cell or a neighbouring one.
        extent = np.maximum(hi - lo, 1e-12)
        cell = max(radius * (1.0 + 1e-6), (extent[0] * extent[1] * extent[2] / 2.0e6) ** (1.0 / 3.0))
        dims = np.empty(3, np.int64)
        for k in range(3):
            dims[k] = int(extent[k] / cell) + 1
        has_donor = np.zeros((dims[0], dims[1], dims[2]), np.bool_)
        for i in range(m):
            if weight[i] >= 0.5:
                ca = min(int((canon[i, 0] - lo[0]) / cell), dims[0] - 1)
                cb = min(int((canon[i, 1] - lo[1]) / cell), dims[1] - 1)
                cc = min(int((canon[i, 2] - lo[2]) / cell), dims[2] - 1)
                has_donor[ca, cb, cc] = True
        near_donor = _dilated(has_donor)
        has_query = np.zeros((dims[0], dims[1], dims[2]), np.bool_)
        queries = np.empty(n_needs, np.int64)
        n_queries = 0
        for i in range(m):
            if weight[i] < 1.0:
                fa = np.floor((-canon[i, 0] - lo[0]) / cell)
                fb = np.floor((canon[i, 1] - lo[1]) / cell)
                fc = np.floor((canon[i, 2] - lo[2]) / cell)
                if fa < -1 or fa > dims[0] or fb < -1 or fb > dims[1] or fc < -1 or fc > dims[2]:
                    continue  # more than a cell outside the donors' grid (or not a number)
                # clamped into the grid: the block around the clamped cell still holds every partner
                ca = min(max(int(fa), 0), dims[0] - 1)
                cb = min(max(int(fb), 0), dims[1] - 1)
                cc = min(max(int(fc), 0), dims[2] - 1)
                if near_donor[ca, cb, cc]:
                    queries[n_queries] = i
                    n_queries += 1
                    has_query[ca, cb, cc] = True
        queries = queries[:n_queries].copy()
        query_points = np.empty((n_queries, 3))
        for j in range(n_queries):
            i = queries[j]
            query_points[j, 0] = canon[i, 0] * -1.0
            query_points[j, 1] = canon[i, 1]
            query_points[j, 2] = canon[i, 2]
        near_query = _dilated(has_query)
        donors = np.empty(n_donors, np.int64)
        n_kept = 0
        for i in range(m):
            if weight[i] >= 0.5:
                ca = min(int((canon[i, 0] - lo[0]) / cell), dims[0] - 1)
                cb = min(int((canon[i, 1] - lo[1]) / cell), dims[1] - 1)
                cc = min(int((canon[i, 2] - lo[2]) / cell), dims[2] - 1)
                if near_query[ca, cb, cc]:
                    donors[n_kept] = i
                    n_kept += 1
        donors = donors[:n_kept].copy()
        donor_points = np.empty((n_kept, 3))
        for j in range(n_kept):
            for k in range(3):
                donor_points[j, k] = canon[donors[j], k]
        return donors, donor_points, queries, query_points

    # The mirror search's k-d tree: leaves of at most 32 points (16 and 8 were slower on the demo), split
    # at the midpoint of the widest side of the node's tight box, searched depth-first nearest side first.
    _LEAF = 32

    @numba.njit(cache=True, nogil=True)
    def _kd_build(points, leaf_size):  # pragma: no cover - compiled
        """(order, start, end, left, right, lo, hi): node ``k`` holds ``order[start[k]:end[k]]`` in the box
        ``[lo[k], hi[k]]``; its children are ``left[k]`` and ``right[k]`` (-1 for a leaf)."""
        n = points.shape[0]
        order = np.arange(n)
        cap = 2 * (n // max(leaf_size // 2, 1)) + 16
        start = np.empty(cap, np.int64)
        end = np.empty(cap, np.int64)
        left = np.full(cap, -1, np.int64)
        right = np.full(cap, -1, np.int64)
        lo = np.empty((cap, 3))
        hi = np.empty((cap, 3))
        todo = [0]
        start[0] = 0
        end[0] = n
        n_nodes = 1
        while len(todo) > 0:
            nd = todo.pop()
            s, e = start[nd], end[nd]
            for k in range(3):
                lo[nd, k] = np.inf
                hi[nd, k] = -np.inf
            for i in range(s, e):
                for k in range(3):
                    v = points[order[i], k]
                    lo[nd, k] = min(lo[nd, k], v)
                    hi[nd, k] = max(hi[nd, k], v)
            if e - s <= leaf_size:
                continue
            dim = 0
            for k in range(1, 3):
                if hi[nd, k] - lo[nd, k] > hi[nd, dim] - lo[nd, dim]:
                    dim = k
            extent = hi[nd, dim] - lo[nd, dim]
            if not extent > 0:
                continue  # all points equal (or not numbers): a leaf
            split = lo[nd, dim] + 0.5 * extent
            i, j = s, e - 1
            while i <= j:
                if points[order[i], dim] < split:
                    i += 1
                else:
                    order[i], order[j] = order[j], order[i]
                    j -= 1
            if i == s or i == e:
                continue
            if n_nodes + 2 > cap:  # thin slivers split off: grow
                more = cap
                start = np.concatenate((start, np.empty(more, np.int64)))
                end = np.concatenate((end, np.empty(more, np.int64)))
                left = np.concatenate((left, np.full(more, -1, np.int64)))
                right = np.concatenate((right, np.full(more, -1, np.int64)))
                lo = np.concatenate((lo, np.empty((more, 3))))
                hi = np.concatenate((hi, np.empty((more, 3))))
                cap += more
            a, b = n_nodes, n_nodes + 1
            n_nodes += 2
            start[a], end[a], start[b], end[b] = s, i, i, e
            left[nd], right[nd] = a, b
            todo.append(a)
            todo.append(b)
        return order, start, end, left, right, lo, hi

    @numba.njit(cache=True, nogil=True, inline="always")
    def _box_d2(lo, hi, nd, q0, q1, q2):  # pragma: no cover - compiled
        t0 = max(lo[nd, 0] - q0, 0.0, q0 - hi[nd, 0])
        t1 = max(lo[nd, 1] - q1, 0.0, q1 - hi[nd, 1])
        t2 = max(lo[nd, 2] - q2, 0.0, q2 - hi[nd, 2])
        return (t0 * t0 + t1 * t1) + t2 * t2

    @numba.njit(cache=True, nogil=True)
    def _nearest_within(points, queries, radius):  # pragma: no cover - compiled
        """Each query's nearest point with squared distance below ``radius**2`` (strictly, as cKDTree's
        ``distance_upper_bound``), -1 where none is."""
        order, start, end, left, right, lo, hi = _kd_build(points, _LEAF)
        out = np.full(queries.shape[0], -1, np.int64)
        if points.shape[0] == 0:
            return out
        stack = np.empty(left.shape[0] + 1, np.int64)
        prev = -1
        for j in range(queries.shape[0]):
            q0, q1, q2 = queries[j, 0], queries[j, 1], queries[j, 2]
            best = radius * radius
            found = -1
            if prev >= 0:  # the last answer bounds the search: queries come in texel order, close together
                d0, d1, d2 = points[prev, 0] - q0, points[prev, 1] - q1, points[prev, 2] - q2
                dd = (d0 * d0 + d1 * d1) + d2 * d2
                if dd < best:
                    best, found = dd, prev
            stack[0] = 0
            top = 1
            while top > 0:
                top -= 1
                nd = stack[top]
                if _box_d2(lo, hi, nd, q0, q1, q2) >= best:
                    continue
                a = left[nd]
                if a < 0:
                    for i in range(start[nd], end[nd]):
                        p = order[i]
                        d0, d1, d2 = points[p, 0] - q0, points[p, 1] - q1, points[p, 2] - q2
                        dd = (d0 * d0 + d1 * d1) + d2 * d2
                        if dd < best:
                            best, found = dd, p
                    continue
                b = right[nd]
                da = _box_d2(lo, hi, a, q0, q1, q2)
                db = _box_d2(lo, hi, b, q0, q1, q2)
                near, far, dnear, dfar = (a, b, da, db) if da <= db else (b, a, db, da)
                if dfar < best:
                    stack[top] = far
                    top += 1
                if dnear < best:
                    stack[top] = near
                    top += 1
            out[j] = found
            prev = found
        return out

    @numba.njit(cache=True, nogil=True)
    def _project_kernel(per_vertex, has_sym, faces, triangle, bary, K, depth, tolerance, photo, use_mask,
                        mask, min_facing, facing_ramp, radius, flat_index, fill, texture, conf_map, weight,
                        share, confidence):  # pragma: no cover - compiled
        m = bary.shape[0]
        colour = np.empty((m, 3))
        canon = np.empty((m if has_sym else 0, 3))
        _texel_kernel(per_vertex, has_sym, faces, triangle, bary, K, depth, tolerance, photo, use_mask, mask,
                      min_facing, facing_ramp, weight, colour, canon)
        donors, donor_points, queries, query_points = _mirror_candidates(weight, canon, radius)
        nn = _nearest_within(donor_points, query_points, radius)
        sources = np.full(queries.shape[0], -1, np.int64)
        for j in range(queries.shape[0]):
            if nn[j] >= 0:
                sources[j] = donors[nn[j]]
        _fill_kernel(flat_index, colour, weight, queries, sources, fill, texture, conf_map, confidence, share)

    @numba.njit(cache=True, nogil=True, inline="always")
    def _linear_source(scale, i, n_in):  # pragma: no cover - compiled
        """Bilinear upsampling's source pixels and weights for output pixel ``i`` (``align_corners=False``,
        the source index clamped at 0, as torch computes them)."""
        src = max(scale * (i + 0.5) - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        l1 = min(max(src - i0, 0.0), 1.0)
        return i0, i0 + 1 if i0 < n_in - 1 else i0, 1.0 - l1, l1

    @numba.njit(cache=True, nogil=True)
    def _pull_push_levels(img, wgt, levels, out, texture, composite):  # pragma: no cover - compiled
        """Pull-push of ``img`` weighted by ``clip(wgt, 0, 1)``: into ``out`` (float64), or with
        ``composite`` straight into ``texture`` as ``rint(255 (w img + (1 - w) filled))`` (uint8)."""
        h, w, nc = img.shape
        # pull: level 0 is colour x weight (computed where read); each next level sums 2x2 blocks,
        # heavy blocks scaled to weight 1
        cws = [np.empty((0, 0, nc))]
        wws = [np.empty((0, 0))]
        ph, pwid = h, w
        for lev in range(levels):
            if min(ph, pwid) <= 1:
                break
            h2 = (ph + 1) // 2
            w2 = (pwid + 1) // 2
            nc_ = np.empty((h2, w2, nc))
            nw_ = np.empty((h2, w2))
            pc = cws[-1]
            pw = wws[-1]
            for r in range(h2):
                for q in range(w2):
                    ra, qa = 2 * r, 2 * q
                    rb_ok = ra + 1 < ph
                    qb_ok = qa + 1 < pwid
                    if lev == 0:
                        w00 = min(max(wgt[ra, qa], 0.0), 1.0)
                        w01 = min(max(wgt[ra, qa + 1], 0.0), 1.0) if qb_ok else 0.0
                        w10 = min(max(wgt[ra + 1, qa], 0.0), 1.0) if rb_ok else 0.0
                        w11 = min(max(wgt[ra + 1, qa + 1], 0.0), 1.0) if (rb_ok and qb_ok) else 0.0
                    else:
                        w00 = pw[ra, qa]
                        w01 = pw[ra, qa + 1] if qb_ok else 0.0
                        w10 = pw[ra + 1, qa] if rb_ok else 0.0
                        w11 = pw[ra + 1, qa + 1] if (rb_ok and qb_ok) else 0.0
                    ws = (w00 + w01) + (w10 + w11)  # numpy's order for the (h2, 2, w2, 2) weight sum
                    scale = min(1.0, ws) / max(ws, 1e-12)
                    nw_[r, q] = ws * scale
                    for c in range(nc):
                        if lev == 0:
                            v00 = img[ra, qa, c] * w00
                            v01 = img[ra, qa + 1, c] * w01 if qb_ok else 0.0
                            v10 = img[ra + 1, qa, c] * w10 if rb_ok else 0.0
                            v11 = img[ra + 1, qa + 1, c] * w11 if (rb_ok and qb_ok) else 0.0
                        else:
                            v00 = pc[ra, qa, c]
                            v01 = pc[ra, qa + 1, c] if qb_ok else 0.0
                            v10 = pc[ra + 1, qa, c] if rb_ok else 0.0
                            v11 = pc[ra + 1, qa + 1, c] if (rb_ok and qb_ok) else 0.0
                        nc_[r, q, c] = (((v00 + v01) + v10) + v11) * scale  # and for the colour sum
            cws.append(nc_)
            wws.append(nw_)
            ph, pwid = h2, w2
        n_levels = len(cws)
        if n_levels == 1:  # nothing to pull: each pixel is its own weighted average
            colour = np.empty((h, w, nc))
            for r in range(h):
                for q in range(w):
                    ww = min(max(wgt[r, q], 0.0), 1.0)
                    for c in range(nc):
                        colour[r, q, c] = (img[r, q, c] * ww) / max(ww, 1e-12)
        else:
            top_c = cws[-1]
            top_w = wws[-1]
            colour = np.empty(top_c.shape)
            for r in range(top_c.shape[0]):
                for q in range(top_c.shape[1]):
                    d = max(top_w[r, q], 1e-12)
                    for c in range(nc):
                        colour[r, q, c] = top_c[r, q, c] / d
        # push: each finer level takes its missing share 1 - w from the bilinearly upsampled coarser one
        for lev in range(n_levels - 2, -1, -1):
            oh = h if lev == 0 else wws[lev].shape[0]
            ow = w if lev == 0 else wws[lev].shape[1]
            ih, iw = colour.shape[0], colour.shape[1]
            dst = np.empty((oh, ow, nc)) if lev > 0 else out
            sh = ih / oh
            sw = iw / ow
            for r in range(oh):
                y0, y1, ly0, ly1 = _linear_source(sh, r, ih)
                for q in range(ow):
                    x0, x1, lx0, lx1 = _linear_source(sw, q, iw)
                    a00 = ly0 * lx0
                    a01 = ly0 * lx1
                    a10 = ly1 * lx0
                    a11 = ly1 * lx1
                    ww = min(max(wgt[r, q], 0.0), 1.0) if lev == 0 else wws[lev][r, q]
                    miss = 1.0 - ww
                    for c in range(nc):
                        up = ((colour[y0, x0, c] * a00 + colour[y0, x1, c] * a01)
                              + colour[y1, x0, c] * a10) + colour[y1, x1, c] * a11
                        cw = img[r, q, c] * ww if lev == 0 else cws[lev][r, q, c]
                        filled = cw + miss * up
                        if lev > 0 or not composite:
                            dst[r, q, c] = filled
                        else:  # the final level: composite and round, as the reference's last two steps
                            cf = wgt[r, q]
                            v = np.rint((cf * img[r, q, c] + (1.0 - cf) * filled) * 255.0)
                            texture[r, q, c] = np.uint8(min(max(v, 0.0), 255.0))
            colour = dst
        if n_levels == 1:
            for r in range(h):
                for q in range(w):
                    for c in range(nc):
                        if composite:
                            cf = wgt[r, q]
                            v = np.rint((cf * img[r, q, c] + (1.0 - cf) * colour[r, q, c]) * 255.0)
                            texture[r, q, c] = np.uint8(min(max(v, 0.0), 255.0))
                        else:
                            out[r, q, c] = colour[r, q, c]

    @numba.njit(cache=True, nogil=True)
    def _pull_push_kernel(img, wgt, levels, out):  # pragma: no cover - compiled
        _pull_push_levels(img, wgt, levels, out, np.empty((0, 0, 0), np.uint8), False)

    @numba.njit(cache=True, nogil=True)
    def _fill_kernel(flat_index, colour, weight, queries, sources, fill, texture, conf_map, confidence,
                     share):  # pragma: no cover - compiled
        size = conf_map.shape[0]
        m = weight.shape[0]
        # 4. the mirrored share of each query's colour (blended from the photo colours)
        share[:] = 0.0
        for j in range(queries.shape[0]):
            if sources[j] >= 0:
                dst = queries[j]
                share[dst] = (1.0 - weight[dst]) * weight[sources[j]]
        # 5. scatter into the map, fill, composite and round
        tex = np.zeros((size, size, 3))
        conf_map[:] = 0.0
        for i in range(m):
            r = flat_index[i] // size
            q = flat_index[i] % size
            confidence[i] = min(max(weight[i] + share[i], 0.0), 1.0)
            conf_map[r, q] = confidence[i]
            for c in range(3):
                tex[r, q, c] = colour[i, c]
        for j in range(queries.shape[0]):
            src = sources[j]
            if src < 0:
                continue
            dst = queries[j]
            r = flat_index[dst] // size
            q = flat_index[dst] % size
            wd = weight[dst]
            sh = share[dst]
            den = max(wd + sh, 1e-12)
            for c in range(3):  # colour holds the photo colours: a source that is also a query is unblended
                tex[r, q, c] = (wd * colour[dst, c] + sh * colour[src, c]) / den
        if fill:
            levels = int(np.ceil(np.log2(size))) + 1
            _pull_push_levels(tex, conf_map, levels, np.empty((0, 0, 3)), texture, True)
        else:
            for r in range(size):
                for q in range(size):
                    for c in range(3):
                        v = np.rint(tex[r, q, c] * 255.0)
                        texture[r, q, c] = np.uint8(min(max(v, 0.0), 255.0))
