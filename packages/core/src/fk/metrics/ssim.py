"""Structural similarity (Wang et al. 2004) with kornia's conventions (``kornia.metrics.ssim``).

For images ``a``, ``b`` ``(B, C, H, W)`` and a ``window_size``² Gaussian window ``g`` (σ = 1.5, normalised
to sum 1), per channel and pixel::

    μ_a = g * a,  σ_a² = g * a² − μ_a²,  σ_ab = g * (a b) − μ_a μ_b
    SSIM = (2 μ_a μ_b + C1)(2 σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2) + eps)

with ``C1 = (0.01 max_val)²``, ``C2 = (0.03 max_val)²``, ``eps = 1e-12``; ``*`` is a 'same'-size
correlation with reflect padding (kornia's ``filter2d`` default). The result is the per-pixel map; CoRA
logs its mean with ``window_size = 3``. ``bench/conformance_ssim.py`` compares it with kornia's own
function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fk.errors import ShapeError

SIGMA = 1.5


def gaussian_window(window_size: int, sigma: float = SIGMA, dtype=torch.float64, device=None) -> torch.Tensor:
    """(window_size,) Gaussian taps centred on the middle one, summing to 1 (odd sizes only, as kornia)."""
    if window_size < 1 or window_size % 2 == 0:
        raise ShapeError(f"ssim: window_size must be an odd whole number, got {window_size}")
    x = torch.arange(window_size, dtype=dtype, device=device) - window_size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    k = len(g)
    c = x.shape[1]
    x = F.pad(x, (k // 2,) * 4, mode="reflect")
    kernel = (g[:, None] * g[None, :]).to(x)
    return F.conv2d(x, kernel.expand(c, 1, k, k), groups=c)


def ssim_map(a: torch.Tensor, b: torch.Tensor, window_size: int = 11, max_val: float = 1.0,
             eps: float = 1e-12) -> torch.Tensor:  # fmt: skip
    """Per-pixel SSIM ``(B, C, H, W)`` of two images of the same shape; differentiable."""
    if a.shape != b.shape or a.ndim != 4:
        raise ShapeError(f"ssim: expected two (B, C, H, W) images of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")  # fmt: skip
    dtype = a.dtype if a.is_floating_point() else torch.float32
    g = gaussian_window(window_size, dtype=dtype, device=a.device)
    if min(a.shape[-2:]) <= window_size // 2:  # reflect padding needs more pixels than the half-window
        raise ShapeError(f"ssim: window_size {window_size} does not fit images of {tuple(a.shape[-2:])}")
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_a, mu_b = _blur(a, g), _blur(b, g)
    var_a = _blur(a * a, g) - mu_a**2
    var_b = _blur(b * b, g) - mu_b**2
    cov = _blur(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return num / (den + eps)


def ssim(a: torch.Tensor, b: torch.Tensor, window_size: int = 11, max_val: float = 1.0) -> torch.Tensor:
    """Mean SSIM (a scalar tensor), as CoRA reports ``kornia.metrics.ssim(a, b, window_size).mean()``."""
    return ssim_map(a, b, window_size, max_val).mean()


__all__ = ["gaussian_window", "ssim", "ssim_map"]
