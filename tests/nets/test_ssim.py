"""fk.metrics.ssim: kornia's SSIM (Gaussian window, σ 1.5, reflect padding) checked against its formula."""

from __future__ import annotations

import math

import pytest
import torch
from fk.errors import ShapeError
from fk.metrics.ssim import gaussian_window, ssim, ssim_map


def test_identical_images_give_one_and_the_map_keeps_the_shape():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 17, 13, dtype=torch.float64)
    m = ssim_map(a, a, window_size=3)
    assert m.shape == a.shape
    torch.testing.assert_close(m, torch.ones_like(m), atol=1e-9, rtol=0)


def test_constant_images_have_the_closed_form_luminance_term():
    # flat images: σ = 0 everywhere, so SSIM = (2 μa μb + C1) / (μa² + μb² + C1) at every pixel
    a = torch.full((1, 1, 9, 9), 0.2, dtype=torch.float64)
    b = torch.full((1, 1, 9, 9), 0.7, dtype=torch.float64)
    c1 = 0.01**2
    expect = (2 * 0.2 * 0.7 + c1) / (0.2**2 + 0.7**2 + c1)
    torch.testing.assert_close(ssim(a, b, window_size=3), torch.tensor(expect, dtype=torch.float64))
    assert float(ssim(a, b, window_size=11)) == pytest.approx(expect)


def test_centre_pixel_matches_the_formula_by_hand():
    torch.manual_seed(1)
    a = torch.rand(1, 1, 7, 7, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(1, 1, 7, 7, dtype=torch.float64)).clamp(0, 1)
    g = gaussian_window(3)
    assert float(g.sum()) == pytest.approx(1.0)
    w = torch.exp(-torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) / (2 * 1.5**2))
    torch.testing.assert_close(g, w / w.sum())
    win = g[:, None] * g[None, :]
    pa, pb = a[0, 0, 2:5, 2:5], b[0, 0, 2:5, 2:5]  # the 3x3 neighbourhood of pixel (3, 3): no padding
    mu_a, mu_b = (win * pa).sum(), (win * pb).sum()
    va = (win * pa * pa).sum() - mu_a**2
    vb = (win * pb * pb).sum() - mu_b**2
    cov = (win * pa * pb).sum() - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    expect = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    torch.testing.assert_close(ssim_map(a, b, window_size=3)[0, 0, 3, 3], expect)
    assert float(ssim(a, b, 3)) < 1


def test_even_windows_and_bad_shapes_are_refused():
    g = gaussian_window(5)
    assert math.isclose(float(g[0]), float(g[4]))
    with pytest.raises(ShapeError, match="odd"):
        gaussian_window(4)  # kornia refuses even windows too
    with pytest.raises(ShapeError, match="one shape"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ShapeError, match="window_size 11"):
        ssim(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), window_size=11)


def test_gradients_flow():
    torch.manual_seed(2)
    a = torch.rand(1, 3, 8, 8, requires_grad=True)
    b = torch.rand(1, 3, 8, 8)
    (1 - ssim(a, b, 3)).backward()
    assert a.grad.abs().sum() > 0
