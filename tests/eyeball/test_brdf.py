"""CoRA's shading model (fk_eyeball.brdf): closed-form values, symmetries and the SH basis's definition."""

from __future__ import annotations

import math

import numpy as np
import torch
from fk_eyeball.brdf import burley_ggx, point_light, sh_ambient, sh_basis, to_display


def _unit(v):
    v = torch.as_tensor(v, dtype=torch.float64)
    return v / v.norm(dim=-1, keepdim=True)


def _fibonacci(n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = torch.sqrt(1 - z * z)
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def test_normal_incidence_closed_form():
    # l = v = n: F = F0 = 0.08 s, G = 1, D = 1 / (pi alpha^2); Burley's FD90 = 0.5 + 2 r
    n = _unit([[0.0, 0.0, 1.0]])
    s, r = torch.tensor([[0.5]], dtype=torch.float64), torch.tensor([[0.6]], dtype=torch.float64)
    albedo = torch.tensor([[0.2, 0.4, 0.8]], dtype=torch.float64)
    diff, spec = burley_ggx(n, n, n, albedo, s, r)
    alpha = 1e-4 + 0.36 * (1 - 2e-4)
    d = 1 / (math.pi * (alpha**2 + 1e-10) ** 2) * alpha**2
    assert torch.allclose(spec, torch.tensor([[d * 0.04 / 4]], dtype=torch.float64), rtol=1e-9)
    assert torch.allclose(diff, albedo / math.pi, rtol=1e-12)  # (1 - n.l)^5 = 0: retro-reflection drops out


def test_brdf_is_reciprocal_and_ggx_normalised():
    g = torch.Generator().manual_seed(0)
    n = _unit(torch.randn(64, 3, generator=g, dtype=torch.float64))
    a = _unit(n + 0.6 * torch.randn(64, 3, generator=g, dtype=torch.float64))
    b = _unit(n + 0.6 * torch.randn(64, 3, generator=g, dtype=torch.float64))
    albedo = torch.rand(64, 3, generator=g, dtype=torch.float64)
    s, r = (
        torch.rand(64, 1, generator=g, dtype=torch.float64),
        torch.rand(64, 1, generator=g, dtype=torch.float64),
    )
    d1, s1 = burley_ggx(n, a, b, albedo, s, r)
    d2, s2 = burley_ggx(n, b, a, albedo, s, r)
    assert torch.allclose(d1, d2)
    assert torch.allclose(s1, s2)
    # GGX D integrates to 1 over the projected hemisphere: int D(h) (n.h) dw = 1 (r = 0.5)
    h = _fibonacci(200_000)
    h = h[h[:, 2] > 0]
    alpha = 1e-4 + 0.25 * (1 - 2e-4)
    nh = h[:, 2]
    ndf = alpha**2 / math.pi / (nh**2 * (alpha**2 - 1) + 1) ** 2
    assert abs(float((ndf * nh).sum() * 4 * math.pi / 200_000) - 1) < 2e-3


def test_point_light_falloff_and_facing():
    p = torch.zeros(3, 3, dtype=torch.float64)
    n = _unit([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    albedo = torch.full((3, 3), 0.5, dtype=torch.float64)
    s = r = torch.full((3, 1), 0.5, dtype=torch.float64)
    rgb = torch.tensor([8.0, 10.0, 5.6], dtype=torch.float64)
    cam1 = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    d1, s1 = point_light(p, n, cam1, albedo, s, r, rgb)
    d2, s2 = point_light(p, n, 2 * cam1, albedo, s, r, rgb)
    assert torch.allclose(d2[0], d1[0] / 4)
    assert torch.allclose(s2[0], s1[0] / 4)
    assert (d1[0] > 0).all()
    assert torch.allclose(d1[0] / rgb, d1[0, :1] / rgb[0])
    assert (d1[2] == 0).all()
    assert (s1[2] == 0).all()
    # a light behind the surface while the camera sees it: no contribution
    d3, _ = point_light(p, n, cam1, albedo, s, r, rgb, light_pos=-cam1)
    assert (d3 == 0).all()


def test_sh_basis_matches_the_definition_and_is_orthonormal():
    from scipy import special

    n = _fibonacci(4000)
    y = sh_basis(n).numpy()
    theta, phi = np.arccos(n[:, 2].numpy()), np.arctan2(n[:, 1].numpy(), n[:, 0].numpy())
    cols = []
    for lv in range(3):
        for m in range(-lv, lv + 1):
            if hasattr(special, "sph_harm_y"):
                c = special.sph_harm_y(lv, abs(m), theta, phi)
            else:
                c = special.sph_harm(abs(m), lv, phi, theta)
            # complex SH with the Condon-Shortley phase -> CoRA's real form
            cols.append(c.real if m == 0 else math.sqrt(2) * (c.real if m > 0 else c.imag))
    assert np.allclose(y, np.stack(cols, 1), atol=1e-12)
    gram = y.T @ y * 4 * math.pi / len(y)
    assert np.allclose(gram, np.eye(9), atol=2e-3)


def test_sh_ambient_zero_codes_and_display():
    n = _unit([[0.3, -0.2, 0.9]])
    albedo = torch.tensor([[0.5, 0.25, 1.0]], dtype=torch.float64)
    zero = torch.zeros(3, 9, dtype=torch.float64)
    no_occ = sh_ambient(n, albedo, zero)
    assert torch.allclose(no_occ, 0.1 * math.log(2) / 10 * albedo)
    occ = sh_ambient(n, albedo, zero, torch.zeros(9, dtype=torch.float64))
    assert torch.allclose(occ, no_occ / 2)
    assert torch.allclose(
        to_display(torch.tensor([0.0, 1.0, 4.0])), torch.tensor([1e-6 ** (1 / 2.2), 1.0, 4 ** (1 / 2.2)])
    )
