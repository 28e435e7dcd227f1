"""Least-squares similarity between point sets (Umeyama), and a robust 2D similarity fit.

Convention:
- dst ~ s R src + t with column vectors: points are rows, so dst_i ~ s R src_i + t;
- R is a proper rotation (det +1); reflections are never returned;
- numpy and torch both work (dtype and device follow ``src``); batches broadcast.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fk.geometry.shapes import check_shape


def umeyama(src: Any, dst: Any, weights: Any = None, with_scale: bool = True) -> tuple[Any, Any, Any]:
    """Similarity (s, R, t) minimising sum_i w_i |dst_i - (s R src_i + t)|^2 (Umeyama 1991).

    Args:
        src, dst: (*batch, N, D) corresponding points, D = 2 or 3.
        weights: (*batch, N) non-negative, or None for equal weights.
        with_scale: False fixes s = 1 (a rigid fit).
    Returns:
        scale (*batch), rotation (*batch, D, D), translation (*batch, D).

    Convention: degenerate inputs (all src points equal) give s = 0 when
    ``with_scale``; collinear points in 3D leave the rotation about their line arbitrary.
    """
    dims = check_shape(src, "*batch N D", name="src")
    check_shape(dst, "*batch N D", name="dst", dims=dims)
    is_np = isinstance(src, np.ndarray)
    if is_np:
        import torch

        src_t, dst_t = torch.from_numpy(np.asarray(src, np.float64)), torch.from_numpy(np.asarray(dst, np.float64))
        w_t = None if weights is None else torch.from_numpy(np.asarray(weights, np.float64))
        s, r, t = umeyama(src_t, dst_t, w_t, with_scale)
        return s.numpy(), r.numpy(), t.numpy()
    import torch

    if weights is None:
        weights = torch.ones_like(src[..., 0])
    w = weights / weights.sum(-1, keepdim=True)
    mu_s = (w[..., None] * src).sum(-2)
    mu_d = (w[..., None] * dst).sum(-2)
    xs = src - mu_s[..., None, :]
    yd = dst - mu_d[..., None, :]
    cov = (yd * w[..., None]).transpose(-1, -2) @ xs  # (*batch, D, D) = sum w y x^T
    u, sing, vh = torch.linalg.svd(cov)
    d = torch.det(u) * torch.det(vh)
    fix = torch.ones_like(sing)
    fix[..., -1] = torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d))
    rot = u @ (fix[..., None] * vh)
    if with_scale:
        var_s = (w * (xs * xs).sum(-1)).sum(-1)
        scale = (sing * fix).sum(-1) / torch.clamp(var_s, min=torch.finfo(var_s.dtype).tiny)
        scale = torch.where(var_s > 0, scale, torch.zeros_like(scale))
    else:
        scale = torch.ones_like(sing[..., 0])
    trans = mu_d - scale[..., None] * (rot @ mu_s[..., None])[..., 0]
    return scale, rot, trans


def fit_similarity_2d(
    src: np.ndarray, dst: np.ndarray, robust: bool = False, iterations: int = 20, threshold: float | None = None
) -> np.ndarray:
    """(2, 3) similarity matrix A with dst ~ A[:, :2] @ src + A[:, 2].

    Args:
        src, dst: (N, 2) point sets (e.g. landmarks and a template), N >= 2.
        robust: iteratively reweighted least squares with Tukey's biweight, so a few
            wrong correspondences (a misplaced landmark) do not pull the fit.
        threshold: residual (in dst units) beyond which a point gets zero weight;
            default 4.685 x 1.4826 x the median residual of the previous fit.
    Returns:
        (2, 3) float64 [[s cos a, -s sin a, tx], [s sin a, s cos a, ty]].
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    dims = check_shape(s, "N 2", name="src")
    check_shape(d, "N 2", name="dst", dims=dims)
    if dims["N"] < 2:
        raise ValueError("fit_similarity_2d: need at least 2 points")
    weights = np.ones(len(s))
    for _ in range(iterations if robust else 1):
        scale, rot, trans = umeyama(s, d, weights)
        if not robust:
            break
        residual = np.linalg.norm(d - (scale * s @ rot.T + trans), axis=1)
        c = threshold if threshold is not None else 4.685 * 1.4826 * np.median(residual)
        if c <= 1e-12:
            break
        new = np.clip(1.0 - (residual / c) ** 2, 0.0, None) ** 2
        if new.sum() < 2 or np.allclose(new, weights, atol=1e-10):
            break
        weights = new
    return np.concatenate([scale * rot, trans[:, None]], axis=1)
