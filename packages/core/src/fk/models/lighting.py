"""Deep3D's second-order spherical-harmonics lighting (27 coefficients, 0.8 ambient prior).

Convention:
- ``gamma`` (B, 27) is three blocks of 9 (R, then G, then B); 0.8 is added to band 0 of every
  channel, so zero gamma gives a uniformly lit face (shading 0.8 * 0.886227).
- Normals are in the world frame (already rotated by the pose), unit length, y up, z to the viewer.
- Basis Y_k(n) with a = (pi, 2pi/sqrt3, 2pi/sqrt8), c = (1/sqrt(4pi), sqrt3/sqrt(4pi), 3sqrt5/sqrt(12pi)):
  a0c0, -a1c1 ny, a1c1 nz, -a1c1 nx, a2c2 nx ny, -a2c2 ny nz, a2c2/(2sqrt3) (3nz^2-1), -a2c2 nx nz,
  a2c2/2 (nx^2 - ny^2). Colour = (Y . gamma_c) * albedo_c, not clipped.
"""

from __future__ import annotations

import math

import torch

AMBIENT_PRIOR = 0.8
A = (math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0))
C = (1 / math.sqrt(4 * math.pi), math.sqrt(3.0) / math.sqrt(4 * math.pi), 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi))


def sh_basis(normals: torch.Tensor, band_scale: tuple[float, float, float] = A) -> torch.Tensor:
    """(*batch, N, 3) unit normals -> (*batch, N, 9) real SH values, l-major, m = -l..l, Deep3D's signs.

    ``band_scale`` multiplies band l: Deep3D's irradiance factors ``A`` by default (its lighting model);
    ``(1, 1, 1)`` gives the orthonormal real SH with the Condon-Shortley phase (CoRA's ``SH_xyz``).
    """
    nx, ny, nz = normals.unbind(-1)
    a0c0, a1c1, a2c2 = band_scale[0] * C[0], band_scale[1] * C[1], band_scale[2] * C[2]
    return torch.stack([
        torch.full_like(nx, a0c0),
        -a1c1 * ny,
        a1c1 * nz,
        -a1c1 * nx,
        a2c2 * nx * ny,
        -a2c2 * ny * nz,
        a2c2 / (2 * math.sqrt(3.0)) * (3 * nz * nz - 1),
        -a2c2 * nx * nz,
        a2c2 / 2 * (nx * nx - ny * ny),
    ], dim=-1)


def gamma_loss(gamma: torch.Tensor) -> torch.Tensor:
    """Mean over (B, 3, 9) of (γ − its mean over RGB)²: pushes the SH light toward white (Deep3D, FFHQ-UV)."""
    g = gamma.reshape(-1, 3, 9)
    return ((g - g.mean(dim=1, keepdim=True)) ** 2).mean()


def illuminate(albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Lit vertex colours.

    Args:
        albedo: (B, N, 3) in [0, 1]; normals: (B, N, 3) world-frame unit normals; gamma: (B, 27).
    Returns:
        (B, N, 3) colours = shading * albedo (unclipped).
    """
    lit = gamma.reshape(*gamma.shape[:-1], 3, 9)
    prior = torch.zeros(9, dtype=gamma.dtype, device=gamma.device)
    prior[0] = AMBIENT_PRIOR
    lit = lit + prior
    shading = sh_basis(normals) @ lit.transpose(-1, -2).contiguous()  # (B, N, 3)
    return shading * albedo
