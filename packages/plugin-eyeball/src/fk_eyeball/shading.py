"""CoRA's image formation (cora.md §8): flashlight Disney-Burley diffuse + GGX specular, ambient SH.

Convention: everything is **linear** radiance; ``specular`` is CoRA's parameter s (F0 = 0.08·s),
``roughness`` the Disney roughness (α = roughness², kept above 1e-4); cosines are clamped to >= 1e-6; a
point whose normal faces away from the light gets no flashlight. SH: 3 bands (9 real functions), l-major,
m from -l to l, Condon-Shortley phase in the Legendre functions, angles in **world** axes
(θ = acos n_z, φ = atan2(n_y, n_x)).
"""

from __future__ import annotations

import math

import torch

_C0 = 0.5 * math.sqrt(1 / math.pi)
_C1 = math.sqrt(3 / (4 * math.pi))
_C2 = math.sqrt(15 / (4 * math.pi))  # xz, yz, xy
_C20 = math.sqrt(5 / (16 * math.pi))
_C22 = math.sqrt(15 / (16 * math.pi))


def sh9(n: torch.Tensor) -> torch.Tensor:
    """(N, 3) unit normals -> (N, 9) real SH values ``Y_00, Y_1-1, Y_10, Y_11, Y_2-2 ... Y_22``.

    With the Condon-Shortley phase the odd-m functions change sign:
    ``Y_1±1 = -c·(y|x)``, ``Y_2±1 = -c·z(y|x)``.
    """
    x, y, z = n.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, _C0),
            -_C1 * y,
            _C1 * z,
            -_C1 * x,
            _C2 * x * y,
            -_C2 * y * z,
            _C20 * (3 * z * z - 1),
            -_C2 * x * z,
            _C22 * (x * x - y * y),
        ],
        dim=-1,
    )


def sh16(d: torch.Tensor) -> torch.Tensor:
    """(N, 3) unit directions -> (N, 16) real SH up to l = 3 (the radiance head's direction encoding)."""
    x, y, z = d.unbind(-1)
    l3 = [
        0.5900435899 * y * (3 * x * x - y * y),
        2.8906114426 * x * y * z,
        0.4570457995 * y * (5 * z * z - 1),
        0.3731763326 * z * (5 * z * z - 3),
        0.4570457995 * x * (5 * z * z - 1),
        1.4453057213 * z * (x * x - y * y),
        0.5900435899 * x * (x * x - 3 * y * y),
    ]
    return torch.cat([sh9(d), torch.stack(l3, dim=-1)], dim=-1)


def burley_ggx(
    albedo: torch.Tensor,
    specular: torch.Tensor,
    roughness: torch.Tensor,
    normal: torch.Tensor,
    light_dir: torch.Tensor,
    view_dir: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BRDF times ``max(0, n·l)``: (diffuse (N, 3), specular (N, 1)); all directions unit, pointing away.

    ``f_diff = albedo/π·(1 + (F_D90 - 1)(1 - n·l)^5)(1 + (F_D90 - 1)(1 - n·v)^5)``,
    ``F_D90 = 0.5 + 2 r (l·h)²``;
    ``f_spec = D G F / (4 n·v n·l)`` with GGX ``D``, Smith ``G1(c) = 2/(1 + sqrt(1 + α²(1/c² - 1)))``,
    Schlick ``F`` from ``F0 = 0.08 s``.
    """
    eps = 1e-6
    h = torch.nn.functional.normalize(light_dir + view_dir, dim=-1)
    n_dot_l_raw = (normal * light_dir).sum(-1, keepdim=True)
    n_dot_l = n_dot_l_raw.clamp_min(eps)
    n_dot_v = (normal * view_dir).sum(-1, keepdim=True).clamp_min(eps)
    n_dot_h = (normal * h).sum(-1, keepdim=True).clamp_min(eps)
    l_dot_h = (light_dir * h).sum(-1, keepdim=True).clamp_min(eps)
    alpha = 1e-4 + roughness * roughness * (1 - 2e-4)
    a2 = alpha * alpha
    d = a2 / (math.pi * (n_dot_h * n_dot_h * (a2 - 1) + 1) ** 2)

    def g1(c: torch.Tensor) -> torch.Tensor:
        return 2 / (1 + torch.sqrt(1 + a2 * (1 / (c * c) - 1)))

    f0 = 0.08 * specular
    fresnel = f0 + (1 - f0) * (1 - l_dot_h) ** 5
    f_spec = d * g1(n_dot_v) * g1(n_dot_l) * fresnel / (4 * n_dot_v * n_dot_l)
    fd90 = 0.5 + 2 * roughness * l_dot_h * l_dot_h
    f_diff = albedo / math.pi * (1 + (fd90 - 1) * (1 - n_dot_l) ** 5) * (1 + (fd90 - 1) * (1 - n_dot_v) ** 5)
    lit = (n_dot_l_raw > 0).to(albedo.dtype) * n_dot_l
    return f_diff * lit, f_spec * lit


def flashlight(
    albedo: torch.Tensor,
    specular: torch.Tensor,
    roughness: torch.Tensor,
    normal: torch.Tensor,
    points: torch.Tensor,
    light_pos: torch.Tensor,
    light_rgb: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Radiance from a point light at ``light_pos`` seen from there (CoRA's co-located flashlight).

    Returns (diffuse (N, 3), specular (N, 3)): BRDF·cos·``light_rgb``/d², d the light-to-point distance.
    """
    to_light = light_pos - points
    d2 = (to_light * to_light).sum(-1, keepdim=True).clamp_min(1e-12)
    l = to_light / d2.sqrt()  # noqa: E741 - the usual symbol
    diff, spec = burley_ggx(albedo, specular, roughness, normal, l, l)
    return diff * light_rgb / d2, spec * light_rgb / d2


def ambient(
    albedo: torch.Tensor,
    normal: torch.Tensor,
    env: torch.Tensor,
    occlusion: torch.Tensor,
    sh_scale: float = 0.1,
    beta: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CoRA's ambient term: ``sh_scale·softplus_β(env·Y(n))·sigmoid(occ·Y(n))·albedo``.

    ``env`` (3, 9) is the environment, ``occlusion`` (N, 9) each point's view's occlusion code; the normal
    is detached as in CoRA. Returns (radiance (N, 3), occlusion factor (N, 1)).
    """
    y = sh9(normal.detach())
    irradiance = torch.nn.functional.softplus(y @ env.T, beta=beta)
    occ = torch.sigmoid((y * occlusion).sum(-1, keepdim=True))
    return sh_scale * irradiance * occ * albedo, occ
