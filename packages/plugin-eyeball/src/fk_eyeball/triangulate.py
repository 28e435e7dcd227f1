"""3D eyeball landmarks from 2D landmarks in several views (cora.md §12.3), and eyeball sphere fits.

Upstream (``compute_3d_eyeball_landmark.py``) minimises ``sum_v ||P - o_v||² - ((P - o_v)·d_v)²`` (squared
distance from P to each ray) with Adam (lr 0.1, 1000 steps, from P = 0) and ignores the scores. fk solves
the same least-squares problem in closed form, weighted by the landmark scores,

    P = (sum_v w_v (I - d_v d_vᵀ))⁻¹ sum_v w_v (I - d_v d_vᵀ) o_v,

then drops views whose reprojection error is far above the others (outliers) and solves again.
:func:`adam_reference` is upstream's optimiser, kept for the benchmark and the conformance check.

Rays follow CoRA: ``d_cam = ((x - cx + 0.5)/fx, (y - cy + 0.5)/fy, 1)`` with transforms.json's cx, cy,
i.e. ``(x - cx_fk)/fx`` with fk's intrinsics (pixel centres at integers), rotated by the OpenCV cam2world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pixel_rays(pixels: np.ndarray, K: np.ndarray, cam2world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, 2) pixels (fk convention) in V views -> (origins (V, 3), unit directions (V, 3)) in world."""
    px = np.asarray(pixels, np.float64)
    d = np.stack([(px[:, 0] - K[0, 2]) / K[0, 0], (px[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(px))], axis=1)
    dw = np.einsum("vij,vj->vi", cam2world[:, :3, :3], d)
    return cam2world[:, :3, 3].copy(), dw / np.linalg.norm(dw, axis=1, keepdims=True)


def intersect_rays(
    origins: np.ndarray, directions: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """(3,) weighted least-squares point closest to the rays (closed form)."""
    d = np.asarray(directions, np.float64)
    w = np.ones(len(d)) if weights is None else np.asarray(weights, np.float64)
    proj = np.eye(3)[None] - d[:, :, None] * d[:, None, :]  # (V, 3, 3)
    a = (w[:, None, None] * proj).sum(0)
    b = (w[:, None, None] * proj @ np.asarray(origins, np.float64)[:, :, None]).sum(0)[:, 0]
    return np.linalg.solve(a, b)


def reprojection_errors(
    point: np.ndarray, pixels: np.ndarray, K: np.ndarray, cam2world: np.ndarray
) -> np.ndarray:
    """(V,) pixel distance between ``point`` projected into each view and the observed pixels."""
    rot = cam2world[:, :3, :3]
    cam = np.einsum("vji,vj->vi", rot, point[None] - cam2world[:, :3, 3])  # Rᵀ (P - C)
    uv = np.stack(
        [K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2], K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]], axis=1
    )
    return np.linalg.norm(uv - pixels, axis=1)


@dataclass
class Triangulated:
    points: np.ndarray  # (L, 3)
    rms_px: np.ndarray  # (L,) reprojection RMS over the inlier views
    inliers: np.ndarray  # (L, V) bool


def triangulate(
    pixels: np.ndarray,
    K: np.ndarray,
    cam2world: np.ndarray,
    scores: np.ndarray | None = None,
    outlier_px: float = 4.0,
    outlier_factor: float = 3.0,
) -> Triangulated:
    """Triangulate L landmarks seen in V views.

    Args:
        pixels: (V, L, 2) landmark pixels (fk convention: pixel centres at integers); NaN = not seen.
        K: (3, 3) fk intrinsics; cam2world: (V, 4, 4) OpenCV.
        scores: (V, L) weights (landmark confidences); default 1.
        outlier_px, outlier_factor: a view is dropped for a landmark when its reprojection error exceeds
            both ``outlier_px`` and ``outlier_factor`` x the median error (repeated up to 3 times, >= 2 views kept).
    """
    px = np.asarray(pixels, np.float64)
    n_views, n_lm = px.shape[:2]
    w_all = np.ones((n_views, n_lm)) if scores is None else np.asarray(scores, np.float64)
    points = np.zeros((n_lm, 3))
    rms = np.zeros(n_lm)
    inliers = np.zeros((n_views, n_lm), bool)
    for j in range(n_lm):
        keep = np.isfinite(px[:, j]).all(axis=1) & (w_all[:, j] > 0)
        if keep.sum() < 2:
            points[j] = np.nan
            rms[j] = np.nan
            continue
        for _ in range(4):
            o, d = pixel_rays(px[keep, j], K, cam2world[keep])
            p = intersect_rays(o, d, w_all[keep, j])
            err = reprojection_errors(p, px[keep, j], K, cam2world[keep])
            bad = (err > outlier_px) & (err > outlier_factor * np.median(err))
            if not bad.any() or keep.sum() - bad.sum() < 2:
                break
            idx = np.flatnonzero(keep)
            keep[idx[bad]] = False
        points[j] = p
        rms[j] = float(np.sqrt(np.mean(err**2)))
        inliers[:, j] = keep
    return Triangulated(points, rms, inliers)


def adam_reference(
    origins: np.ndarray, directions: np.ndarray, steps: int = 1000, lr: float = 0.1
) -> np.ndarray:
    """Upstream's optimiser: Adam on the summed squared ray distances from P = 0 (float32, CPU)."""
    import torch

    o = torch.as_tensor(origins, dtype=torch.float32)
    d = torch.as_tensor(directions, dtype=torch.float32)
    point = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([point], lr=lr)
    for _ in range(steps):
        op = point - o
        loss = ((op**2).sum(-1) - ((d * op).sum(-1)) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return point.detach().numpy().astype(np.float64)


def fit_spheres(
    points: dict[str, np.ndarray],
    radius: float | None = None,
    radius_bounds: tuple[float, float] | None = None,
    toward: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], float, dict[str, np.ndarray]]:
    """One centre per eye and one shared radius (CoRA's eyeball model) from points on the eyeballs.

    Minimises the geometric residuals ``||p - c_eye|| - r`` (CoRA's landmark loss, squared) with scipy's
    least squares, started from per-eye algebraic fits (``||p||² = 2 p·c + r² - ||c||²``) or, when those are
    degenerate (4 nearly coplanar points), from the centroid pushed back by 0.8 r away from ``toward`` (a
    direction from the eyes to the cameras). ``radius`` fixes the radius; ``radius_bounds`` bounds it
    (CoRA's ``eyeball_min_size``/``eyeball_max_size``). Returns (centres, radius, residuals per eye).
    """
    from scipy.optimize import least_squares

    eyes = list(points)
    pts = {e: np.asarray(points[e], np.float64) for e in eyes}
    inits, radii = [], []
    for e in eyes:
        p = pts[e]
        a = np.concatenate([2 * p, np.ones((len(p), 1))], axis=1)
        sol, *_ = np.linalg.lstsq(a, (p**2).sum(1), rcond=None)
        c = sol[:3]
        r2 = sol[3] + c @ c
        ok = len(p) >= 4 and np.linalg.matrix_rank(a, tol=1e-9 * max(1.0, np.abs(a).max())) == 4 and r2 > 0
        r = float(np.sqrt(r2)) if ok else np.nan
        lo, hi = radius_bounds or (0.0, np.inf)
        if not ok or not lo <= r <= hi or (radius is not None and abs(r - radius) > radius):
            r = radius if radius is not None else (np.mean(radius_bounds) if radius_bounds else np.nan)
            if not np.isfinite(r):
                r = float(np.linalg.norm(p - p.mean(0), axis=1).max())
            t = np.asarray(toward if toward is not None else [0.0, 0.0, 1.0], np.float64)
            c = p.mean(0) - 0.8 * r * t / np.linalg.norm(t)
        inits.append(c)
        radii.append(r)
    r0 = float(radius if radius is not None else np.median(radii))

    def residual(x):
        r = radius if radius is not None else x[-1]
        return np.concatenate(
            [np.linalg.norm(pts[e] - x[3 * k : 3 * k + 3], axis=1) - r for k, e in enumerate(eyes)]
        )

    x0 = np.concatenate([*inits] + ([] if radius is not None else [[r0]]))
    lower = np.full(x0.shape, -np.inf)
    upper = np.full(x0.shape, np.inf)
    if radius is None and radius_bounds is not None:
        lower[-1], upper[-1] = radius_bounds
        x0[-1] = np.clip(x0[-1], *radius_bounds)
    res = least_squares(residual, x0, bounds=(lower, upper), method="trf", x_scale="jac")
    x = res.x
    r = float(radius if radius is not None else x[-1])
    centres = {e: x[3 * k : 3 * k + 3] for k, e in enumerate(eyes)}
    resid = {e: np.linalg.norm(pts[e] - centres[e], axis=1) - r for e in eyes}
    return centres, r, resid
