"""The no-grad visibility pass: which triangle covers each pixel centre, and its ``z/w``.

Two implementations with identical results: a numba-compiled z-buffer (``cache=True``,
parallel over images and horizontal bands) and a pure-torch one used when numba is
missing. Both work on *homogeneous pixel coordinates* ``(X, Y, w)`` with
``X = (x + w) * width / 2``, ``Y = (y + w) * height / 2``, so a pixel centre
``(px, py) = (col + 0.5, row + 0.5)`` lies on the triangle where the edge functions
``e_k = cross(V_i, V_j) . (px, py, 1)`` (edge ``k`` opposite vertex ``k``) share the sign of
``det = cross(V_1, V_2) . V_0``. This handles vertices behind the camera without clipping:
a point with all ``s * e_k >= 0`` (``s = sign(det)``) has positive clip ``w``.

Convention:
- Edge rule: a pixel centre exactly on an edge belongs to the triangle whose normalised edge
  function ``f = s * e`` increases along +X, or along +Y when the edge is horizontal. Two triangles
  sharing an edge compute exactly negated ``f`` (the cross products swap operands), so exactly one
  claims the pixel: closed meshes show no cracks and no double cover.
- Depth test: smallest ``z/w`` (rounded to float32) wins; ties go to the lower triangle index.
  Pixels with ``z/w`` outside ``[-1, 1]`` are clipped. Degenerate triangles (``det == 0``) are skipped.
- ids are ``triangle index + 1`` (int32), 0 where empty; depth is ``+inf`` where empty.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np
import torch

try:  # numba is a core dependency, but the renderer must still work where it fails to import
    import numba

    HAVE_NUMBA = not os.environ.get("FK_RENDER_NO_NUMBA")
except Exception:  # noqa: BLE001
    numba = None
    HAVE_NUMBA = False


BOX_MARGIN = 1e-6  # pixels added around each bounding box


def _edge_setup(X0, Y0, w0, X1, Y1, w1, X2, Y2, w2):  # pragma: no cover - compiled by numba
    """Normalised edge coefficients ``f_k = a_k px + b_k py + c_k`` and ``|det|`` (0 if degenerate)."""
    a0 = Y1 * w2 - w1 * Y2
    b0 = w1 * X2 - X1 * w2
    c0 = X1 * Y2 - Y1 * X2
    a1 = Y2 * w0 - w2 * Y0
    b1 = w2 * X0 - X2 * w0
    c1 = X2 * Y0 - Y2 * X0
    a2 = Y0 * w1 - w0 * Y1
    b2 = w0 * X1 - X0 * w1
    c2 = X0 * Y1 - Y0 * X1
    det = a0 * X0 + b0 * Y0 + c0 * w0
    if det < 0:
        a0, b0, c0, a1, b1, c1, a2, b2, c2 = -a0, -b0, -c0, -a1, -b1, -c1, -a2, -b2, -c2
        det = -det
    return a0, b0, c0, a1, b1, c1, a2, b2, c2, det


if HAVE_NUMBA:
    _edge_setup_nb = numba.njit(cache=True, inline="always")(_edge_setup)

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _visibility_kernel(pos, tri, pos_of_image, tri_start, tri_count, height, width, n_bands,
                           out_id, out_depth):  # pragma: no cover - compiled
        n_images = out_id.shape[0]
        band_h = (height + n_bands - 1) // n_bands
        hw = 0.5 * width
        hh = 0.5 * height
        for job in numba.prange(n_images * n_bands):
            b = job // n_bands
            r_lo = (job % n_bands) * band_h
            r_hi = min(height, r_lo + band_h) - 1
            if r_lo > r_hi:
                continue
            p = pos_of_image[b]
            for t in range(tri_start[b], tri_start[b] + tri_count[b]):
                i0 = tri[t, 0]
                i1 = tri[t, 1]
                i2 = tri[t, 2]
                w0 = pos[p, i0, 3]
                w1 = pos[p, i1, 3]
                w2 = pos[p, i2, 3]
                if not (w0 > 0 or w1 > 0 or w2 > 0):
                    continue
                X0 = (pos[p, i0, 0] + w0) * hw
                Y0 = (pos[p, i0, 1] + w0) * hh
                X1 = (pos[p, i1, 0] + w1) * hw
                Y1 = (pos[p, i1, 1] + w1) * hh
                X2 = (pos[p, i2, 0] + w2) * hw
                Y2 = (pos[p, i2, 1] + w2) * hh
                if n_bands > 1 and w0 > 0 and w1 > 0 and w2 > 0:
                    # the row range below, first: most triangles miss a band (skipping them writes nothing)
                    y0 = Y0 / w0
                    y1 = Y1 / w1
                    y2 = Y2 / w2
                    if (math.ceil(min(y0, y1, y2) - 0.5 - BOX_MARGIN) > r_hi
                            or math.floor(max(y0, y1, y2) - 0.5 + BOX_MARGIN) < r_lo):
                        continue  # compared as floats: NaN never skips (the checks below decide)
                a0, b0, c0, a1, b1, c1, a2, b2, c2, det = _edge_setup_nb(X0, Y0, w0, X1, Y1, w1, X2, Y2, w2)
                if not (det > 0) or not math.isfinite(det):
                    continue
                inv_det = 1.0 / det
                z0 = pos[p, i0, 2]
                z1 = pos[p, i1, 2]
                z2 = pos[p, i2, 2]
                tl0 = a0 > 0 or (a0 == 0 and b0 > 0)
                tl1 = a1 > 0 or (a1 == 0 and b1 > 0)
                tl2 = a2 > 0 or (a2 == 0 and b2 > 0)
                c_lo = 0
                c_hi = width - 1
                rr_lo = r_lo
                rr_hi = r_hi
                if w0 > 0 and w1 > 0 and w2 > 0:
                    x0 = X0 / w0
                    x1 = X1 / w1
                    x2 = X2 / w2
                    y0 = Y0 / w0
                    y1 = Y1 / w1
                    y2 = Y2 / w2
                    # BOX_MARGIN: X / w rounds differently from the edge functions; let those decide
                    c_lo = max(c_lo, int(math.ceil(min(x0, x1, x2) - 0.5 - BOX_MARGIN)))
                    c_hi = min(c_hi, int(math.floor(max(x0, x1, x2) - 0.5 + BOX_MARGIN)))
                    rr_lo = max(rr_lo, int(math.ceil(min(y0, y1, y2) - 0.5 - BOX_MARGIN)))
                    rr_hi = min(rr_hi, int(math.floor(max(y0, y1, y2) - 0.5 + BOX_MARGIN)))
                for r in range(rr_lo, rr_hi + 1):
                    py = r + 0.5
                    e0 = b0 * py + c0
                    e1 = b1 * py + c1
                    e2 = b2 * py + c2
                    for c in range(c_lo, c_hi + 1):
                        px = c + 0.5
                        f0 = a0 * px + e0
                        if not (f0 > 0 or (f0 == 0 and tl0)):
                            continue
                        f1 = a1 * px + e1
                        if not (f1 > 0 or (f1 == 0 and tl1)):
                            continue
                        f2 = a2 * px + e2
                        if not (f2 > 0 or (f2 == 0 and tl2)):
                            continue
                        zw = (f0 * z0 + f1 * z1 + f2 * z2) * inv_det
                        if not (zw >= -1.0 and zw <= 1.0):
                            continue
                        z32 = np.float32(zw)
                        if z32 < out_depth[b, r, c]:
                            out_depth[b, r, c] = z32
                            out_id[b, r, c] = t + 1

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _barycentric_kernel(pos, tri, pos_of_image, ids, rast, db, want_db):  # pragma: no cover - compiled
        n_images, height, width = ids.shape
        hw = 0.5 * width
        hh = 0.5 * height
        for job in numba.prange(n_images * height):
            b = job // height
            r = job % height
            p = pos_of_image[b]
            py = r + 0.5
            for c in range(width):
                tid = ids[b, r, c]
                if tid == 0:
                    continue
                t = tid - 1
                i0 = tri[t, 0]
                i1 = tri[t, 1]
                i2 = tri[t, 2]
                w0 = pos[p, i0, 3]
                w1 = pos[p, i1, 3]
                w2 = pos[p, i2, 3]
                a0, b0, c0, a1, b1, c1, a2, b2, c2, det = _edge_setup_nb(
                    (pos[p, i0, 0] + w0) * hw, (pos[p, i0, 1] + w0) * hh, w0,
                    (pos[p, i1, 0] + w1) * hw, (pos[p, i1, 1] + w1) * hh, w1,
                    (pos[p, i2, 0] + w2) * hw, (pos[p, i2, 1] + w2) * hh, w2)
                px = c + 0.5
                f0 = a0 * px + (b0 * py + c0)
                f1 = a1 * px + (b1 * py + c1)
                f2 = a2 * px + (b2 * py + c2)
                s = f0 + f1 + f2
                rast[b, r, c, 0] = f0 / s
                rast[b, r, c, 1] = f1 / s
                rast[b, r, c, 2] = (f0 * pos[p, i0, 2] + f1 * pos[p, i1, 2] + f2 * pos[p, i2, 2]) / det
                rast[b, r, c, 3] = tid
                if want_db:
                    sa = a0 + a1 + a2
                    sb = b0 + b1 + b2
                    s2 = s * s
                    db[b, r, c, 0] = (a0 * s - f0 * sa) / s2
                    db[b, r, c, 1] = (b0 * s - f0 * sb) / s2
                    db[b, r, c, 2] = (a1 * s - f1 * sa) / s2
                    db[b, r, c, 3] = (b1 * s - f1 * sb) / s2

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _barycentric_backward_kernel(pos, tri, pos_of_image, ids, grad_rast, grad_db, use_db, n_chunks,
                                     grad_pos):  # pragma: no cover - compiled
        """Gradient of ``(u, v)`` (and ``rast_db`` with ``use_db``) to ``pos``, one float64 buffer per chunk.

        Same formula as :func:`fk.render.cpu.barycentrics.pixel_barycentrics` (coordinates shifted to
        the pixel centre), differentiated by hand: ``e_k = X'_i Y'_j - Y'_i X'_j``, ``u = e_0 / s``,
        ``v = e_1 / s``, ``s = e_0 + e_1 + e_2``, ``X' = (x + w) W/2 - px w``, ``Y' = (y + w) H/2 - py w``.
        """
        n_images, height, width = ids.shape
        hw = 0.5 * width
        hh = 0.5 * height
        n_jobs = n_images * height
        xs = np.empty((n_chunks, 3))
        ys = np.empty((n_chunks, 3))
        ws = np.empty((n_chunks, 3))
        gx = np.empty((n_chunks, 3))
        gy = np.empty((n_chunks, 3))
        gw = np.empty((n_chunks, 3))
        ge = np.empty((n_chunks, 3))
        gdx = np.empty((n_chunks, 3))
        gdy = np.empty((n_chunks, 3))
        for chunk in numba.prange(n_chunks):
            X = xs[chunk]
            Y = ys[chunk]
            w = ws[chunk]
            gX = gx[chunk]
            gY = gy[chunk]
            gW = gw[chunk]
            gE = ge[chunk]
            gDX = gdx[chunk]
            gDY = gdy[chunk]
            for job in range(chunk * n_jobs // n_chunks, (chunk + 1) * n_jobs // n_chunks):
                b = job // height
                r = job % height
                p = pos_of_image[b]
                py = r + 0.5
                for c in range(width):
                    tid = ids[b, r, c]
                    if tid == 0:
                        continue
                    gu = np.float64(grad_rast[b, r, c, 0])
                    gv = np.float64(grad_rast[b, r, c, 1])
                    G0 = G1 = G2 = G3 = 0.0
                    if use_db:
                        G0 = np.float64(grad_db[b, r, c, 0])
                        G1 = np.float64(grad_db[b, r, c, 1])
                        G2 = np.float64(grad_db[b, r, c, 2])
                        G3 = np.float64(grad_db[b, r, c, 3])
                    if gu == 0 and gv == 0 and G0 == 0 and G1 == 0 and G2 == 0 and G3 == 0:
                        continue
                    t = tid - 1
                    px = c + 0.5
                    for k in range(3):
                        vi = tri[t, k]
                        wk = pos[p, vi, 3]
                        w[k] = wk
                        X[k] = (pos[p, vi, 0] + wk) * hw - px * wk
                        Y[k] = (pos[p, vi, 1] + wk) * hh - py * wk
                        gX[k] = 0.0
                        gY[k] = 0.0
                        gW[k] = 0.0
                    e0 = X[1] * Y[2] - Y[1] * X[2]
                    e1 = X[2] * Y[0] - Y[2] * X[0]
                    e2 = X[0] * Y[1] - Y[0] * X[1]
                    s = e0 + e1 + e2
                    g = (gu * e0 + gv * e1) / s
                    gE[0] = (gu - g) / s
                    gE[1] = (gv - g) / s
                    gE[2] = -g / s
                    if use_db:
                        for k in range(3):
                            i = (k + 1) % 3
                            j = (k + 2) % 3
                            gDX[k] = Y[i] * w[j] - w[i] * Y[j]  # de_k/dpx, then its gradient below
                            gDY[k] = w[i] * X[j] - X[i] * w[j]
                        dx0, dy0, dx1, dy1 = gDX[0], gDY[0], gDX[1], gDY[1]
                        sx = gDX[0] + gDX[1] + gDX[2]
                        sy = gDY[0] + gDY[1] + gDY[2]
                        s2 = s * s
                        g_sx = -(G0 * e0 + G2 * e1) / s2
                        g_sy = -(G1 * e0 + G3 * e1) / s2
                        g_s = (-(G0 * dx0 + G1 * dy0 + G2 * dx1 + G3 * dy1) / s2
                               + 2.0 * (e0 * (G0 * sx + G1 * sy) + e1 * (G2 * sx + G3 * sy)) / (s2 * s))
                        gE[0] += -(G0 * sx + G1 * sy) / s2 + g_s
                        gE[1] += -(G2 * sx + G3 * sy) / s2 + g_s
                        gE[2] += g_s
                        gDX[0] = G0 / s + g_sx
                        gDY[0] = G1 / s + g_sy
                        gDX[1] = G2 / s + g_sx
                        gDY[1] = G3 / s + g_sy
                        gDX[2] = g_sx
                        gDY[2] = g_sy
                        for k in range(3):
                            i = (k + 1) % 3
                            j = (k + 2) % 3
                            # dx_k = Y_i w_j - w_i Y_j; dy_k = w_i X_j - X_i w_j
                            gY[i] += gDX[k] * w[j]
                            gW[j] += gDX[k] * Y[i] - gDY[k] * X[i]
                            gW[i] += gDY[k] * X[j] - gDX[k] * Y[j]
                            gY[j] -= gDX[k] * w[i]
                            gX[j] += gDY[k] * w[i]
                            gX[i] -= gDY[k] * w[j]
                    for k in range(3):
                        i = (k + 1) % 3
                        j = (k + 2) % 3
                        gX[i] += gE[k] * Y[j]
                        gY[j] += gE[k] * X[i]
                        gY[i] -= gE[k] * X[j]
                        gX[j] -= gE[k] * Y[i]
                    for k in range(3):
                        vi = tri[t, k]
                        grad_pos[chunk, p, vi, 0] += gX[k] * hw
                        grad_pos[chunk, p, vi, 1] += gY[k] * hh
                        grad_pos[chunk, p, vi, 3] += gW[k] + gX[k] * (hw - px) + gY[k] * (hh - py)


def _bands(n_images: int, height: int) -> int:
    """Split each image into horizontal bands so that a single image still uses every core."""
    threads = numba.get_num_threads() if HAVE_NUMBA else 1
    if n_images >= threads:
        return 1
    return max(1, min(height // 8, -(-2 * threads // n_images)))


def visibility_numba(pos: np.ndarray, tri: np.ndarray, pos_of_image: np.ndarray, tri_start: np.ndarray,
                     tri_count: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Compiled z-buffer. ``pos`` float64 ``(P, V, 4)``, ``tri`` int64 ``(F, 3)``, per-image
    ``pos_of_image``, ``tri_start``, ``tri_count`` int64 ``(B,)``. Returns ids int32 and depth float32 ``(B, H, W)``."""
    n_images = pos_of_image.shape[0]
    ids = np.zeros((n_images, height, width), np.int32)
    depth = np.full((n_images, height, width), np.inf, np.float32)
    _visibility_kernel(pos, tri, pos_of_image, tri_start, tri_count, height, width,
                       _bands(n_images, height), ids, depth)
    return ids, depth


def barycentrics_numba(pos: np.ndarray, tri: np.ndarray, pos_of_image: np.ndarray, ids: np.ndarray,
                       out_dtype: np.dtype, want_db: bool) -> tuple[np.ndarray, np.ndarray]:
    """``rast`` and ``rast_db`` for the pixels ``ids`` covers, computed in float64, stored as ``out_dtype``."""
    shape = ids.shape + (4,)
    rast = np.zeros(shape, out_dtype)
    db = np.zeros(shape if want_db else (1, 1, 1, 4), out_dtype)
    _barycentric_kernel(pos, tri, pos_of_image, ids, rast, db, want_db)
    if not want_db:
        db = np.zeros(shape, out_dtype)
    return rast, db


def barycentrics_backward_numba(pos: np.ndarray, tri: np.ndarray, pos_of_image: np.ndarray, ids: np.ndarray,
                                grad_rast: np.ndarray, grad_db: np.ndarray | None) -> np.ndarray:
    """Gradient ``(P, V, 4)`` float64 of ``sum(grad_rast[..., :2] * (u, v)) (+ sum(grad_db * rast_db))``
    with respect to ``pos (P, V, 4)`` float64, over the pixels ``ids (B, H, W)`` covers."""
    n_jobs = ids.shape[0] * ids.shape[1]
    chunks = max(1, min(numba.get_num_threads(), n_jobs))
    grad = np.zeros((chunks,) + pos.shape, np.float64)
    use_db = grad_db is not None
    db = grad_db if use_db else np.zeros((1, 1, 1, 4), grad_rast.dtype)
    with threads_for(ids.size):
        _barycentric_backward_kernel(pos, tri, pos_of_image, ids, grad_rast, db, use_db, chunks, grad)
    return grad.sum(0) if chunks > 1 else grad[0]


SERIAL_BELOW = 1 << 14  # pixels: below this a parallel launch costs more than it saves (more so under load)


@contextlib.contextmanager
def threads_for(n_pixels: int):
    """Run the kernels in this block on one thread when the work is too small to share."""
    if not HAVE_NUMBA or n_pixels >= SERIAL_BELOW:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)

def _sortable(z32: torch.Tensor) -> torch.Tensor:
    """float32 -> int64 with the same order (for a packed (depth, triangle) amin)."""
    bits = (z32 + 0.0).view(torch.int32).long()  # + 0.0 turns -0.0 into +0.0, as the compiled test sees them
    return torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)


def visibility_torch(pos: torch.Tensor, tri: torch.Tensor, pos_of_image: torch.Tensor, tri_start: torch.Tensor,
                     tri_count: torch.Tensor, height: int, width: int,
                     max_pairs: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch z-buffer with the numba kernel's exact arithmetic (float64, same formula order).

    Enumerates (triangle, pixel) pairs inside each triangle's bounding box in chunks of at most
    ``max_pairs`` and keeps, per pixel, the smallest packed ``(float32 depth, triangle index)``.
    """
    pos = pos.double()
    tri = tri.long()
    n_images = int(pos_of_image.shape[0])
    big = torch.iinfo(torch.int64).max
    keys = torch.full((n_images, height * width), big, dtype=torch.int64)
    hw, hh = 0.5 * width, 0.5 * height
    for b in range(n_images):
        start, count = int(tri_start[b]), int(tri_count[b])
        if count == 0:
            continue
        t_index = torch.arange(start, start + count)
        v = pos[int(pos_of_image[b])][tri[t_index]]  # (T, 3, 4)
        w = v[..., 3]
        X = (v[..., 0] + w) * hw
        Y = (v[..., 1] + w) * hh
        cols = [X[:, k] for k in range(3)]
        rows_ = [Y[:, k] for k in range(3)]
        ws = [w[:, k] for k in range(3)]
        a, bb, c, det = _edge_setup_torch(cols, rows_, ws)
        any_front = (w > 0).any(1)
        ok = any_front & (det > 0) & torch.isfinite(det)
        all_front = (w > 0).all(1)
        xs, ys = X / w, Y / w
        c_lo = torch.where(all_front, torch.ceil(xs.amin(1) - 0.5 - BOX_MARGIN).clamp(min=0), torch.zeros_like(det))
        c_hi = torch.where(all_front, torch.floor(xs.amax(1) - 0.5 + BOX_MARGIN).clamp(max=width - 1),
                           torch.full_like(det, width - 1))
        r_lo = torch.where(all_front, torch.ceil(ys.amin(1) - 0.5 - BOX_MARGIN).clamp(min=0), torch.zeros_like(det))
        r_hi = torch.where(all_front, torch.floor(ys.amax(1) - 0.5 + BOX_MARGIN).clamp(max=height - 1),
                           torch.full_like(det, height - 1))
        ok &= torch.isfinite(c_lo) & torch.isfinite(c_hi) & torch.isfinite(r_lo) & torch.isfinite(r_hi)
        n_cols = torch.where(ok, (c_hi - c_lo + 1).clamp(min=0), torch.zeros_like(det)).long()
        n_rows = torch.where(ok, (r_hi - r_lo + 1).clamp(min=0), torch.zeros_like(det)).long()
        n_pairs = n_cols * n_rows
        sel = torch.nonzero(n_pairs > 0).squeeze(1)
        z = v[..., 2]
        tl = (a > 0) | ((a == 0) & (bb > 0))
        inv_det = 1.0 / det
        cum = torch.cumsum(n_pairs[sel], 0)
        lo = 0
        while lo < sel.numel():
            base = int(cum[lo - 1]) if lo > 0 else 0
            hi = int(torch.searchsorted(cum, base + max_pairs, right=True))
            hi = max(hi, lo + 1)
            chunk = sel[lo:hi]
            counts = n_pairs[chunk]
            rep = torch.repeat_interleave(torch.arange(chunk.numel()), counts)
            offsets = torch.cumsum(counts, 0) - counts
            local = torch.arange(int(counts.sum())) - offsets[rep]
            t = chunk[rep]
            col = c_lo[t].long() + local % n_cols[t]
            row = r_lo[t].long() + local // n_cols[t]
            px = col.double() + 0.5
            py = row.double() + 0.5
            inside = torch.ones_like(px, dtype=torch.bool)
            f = []
            for k in range(3):
                fk = a[t, k] * px + (bb[t, k] * py + c[t, k])
                inside &= (fk > 0) | ((fk == 0) & tl[t, k])
                f.append(fk)
            zw = (f[0] * z[t, 0] + f[1] * z[t, 1] + f[2] * z[t, 2]) * inv_det[t]
            inside &= (zw >= -1.0) & (zw <= 1.0)
            key = (_sortable(zw[inside].float()) << 32) | (t[inside] + start)
            keys[b].scatter_reduce_(0, (row * width + col)[inside], key, reduce="amin")
            lo = hi
    empty = keys == big
    ids = torch.where(empty, 0, (keys & 0xFFFFFFFF) + 1).to(torch.int32).view(n_images, height, width)
    depth_bits = keys >> 32
    depth_bits = torch.where(depth_bits >= 0, depth_bits, depth_bits ^ 0x7FFFFFFF).to(torch.int32)
    depth = torch.where(empty.view(n_images, height, width), torch.tensor(float("inf")),
                        depth_bits.view(torch.float32).view(n_images, height, width))
    return ids, depth


def _edge_setup_torch(X: list, Y: list, w: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vectorised ``_edge_setup``: coefficients ``(T, 3)`` each and ``|det|`` ``(T,)``, same operation order."""
    a, b, c = [], [], []
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3
        a.append(Y[i] * w[j] - w[i] * Y[j])
        b.append(w[i] * X[j] - X[i] * w[j])
        c.append(X[i] * Y[j] - Y[i] * X[j])
    det = a[0] * X[0] + b[0] * Y[0] + c[0] * w[0]
    sign = torch.where(det < 0, -1.0, 1.0).to(det.dtype)
    a = torch.stack(a, 1) * sign[:, None]
    b = torch.stack(b, 1) * sign[:, None]
    c = torch.stack(c, 1) * sign[:, None]
    return a, b, c, det * sign
