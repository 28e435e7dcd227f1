"""CoRA's shading model (cora.md §8), shared by training and the relit preview of the export.

Image formation, all in **linear** RGB: ``I = point-light term + ambient SH term``, shown as
``clamp(I, 1e-6) ** (1 / gamma)``.

- Point light (:func:`point_light`): Disney-Burley diffuse + GGX-Smith specular (WildLight's form, as
  CoRA's ``disney_brdf.py``) times ``max(0, n.l)``, zeroed where the normal faces away from the viewer,
  times ``E / d²`` (``E = light.color * light.intensity`` RGB; ``d`` the light-to-point distance). In
  training the light sits at the camera centre (``light_pos = view_pos``): CoRA's flashlight.
- Ambient (:func:`sh_ambient`): ``sh_scale * softplus_beta(sum_k L_k Y_k(n)) * sigmoid(sum_k O_k Y_k(n))
  * albedo`` with 3 SH bands in world axes; ``O`` is CoRA's per-view occlusion code (``None``: no
  occlusion factor, for relighting).

Convention: every direction and position in one frame (world); normals unit length; ``albedo (..., 3)``
linear in [0, 1]; ``specular (..., 1)`` is Disney's ``s`` (``F0 = 0.08 s``); ``roughness (..., 1)`` is
Disney's (``alpha = 1e-4 + r² (1 - 2e-4)``). Cosines in the BRDF are clamped to >= 1e-6 as upstream.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EYE_SPECULAR = 0.2  # CoRA's fixed eyeball material (cora.md §7)
EYE_ROUGHNESS = 0.05
COS_EPS = 1e-6
SH_BANDS = 3  # l = 0, 1, 2: 9 coefficients


def burley_ggx(
    normal: torch.Tensor,
    to_light: torch.Tensor,
    to_view: torch.Tensor,
    albedo: torch.Tensor,
    specular: torch.Tensor,
    roughness: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BRDF values (no cosine): Disney-Burley diffuse ``(..., 3)`` and monochrome GGX specular ``(..., 1)``.

    ``normal``, ``to_light`` (surface -> light) and ``to_view`` (surface -> camera) are unit ``(..., 3)``.
    """
    half = F.normalize(to_light + to_view, dim=-1)

    def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(-1, keepdim=True).clamp_min(COS_EPS)

    n_h, n_v, n_l, l_h = cos(normal, half), cos(normal, to_view), cos(normal, to_light), cos(to_light, half)
    alpha = 1e-4 + roughness**2 * (1 - 2e-4)
    a2 = alpha**2
    ndf = a2 / math.pi / (n_h**2 * (a2 - 1) + 1 + 1e-10) ** 2  # GGX (1e-10 as upstream)

    def smith_g1(c: torch.Tensor) -> torch.Tensor:
        return 2 / (1 + torch.sqrt(1 + a2 * (1 / c**2 - 1)))

    f0 = 0.08 * specular
    fresnel = f0 + (1 - f0) * (1 - l_h) ** 5
    spec = ndf * smith_g1(n_v) * smith_g1(n_l) * fresnel / (4 * n_v * n_l)
    fd90 = 0.5 + 2 * roughness * l_h**2
    diff = albedo * (1 + (fd90 - 1) * (1 - n_l) ** 5) * (1 + (fd90 - 1) * (1 - n_v) ** 5) / math.pi
    return diff, spec


def point_light(
    points: torch.Tensor,
    normal: torch.Tensor,
    view_pos: torch.Tensor,
    albedo: torch.Tensor,
    specular: torch.Tensor,
    roughness: torch.Tensor,
    light_rgb: torch.Tensor,
    light_pos: torch.Tensor | None = None,
    dist2: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Radiance ``(diffuse (..., 3), specular (..., 3))`` of a point light; ``light_pos=None``: at the camera.

    ``dist2 (..., 1)``: the squared light distance to divide by instead of the exact one (CoRA's mesh stage
    divides by the rasteriser's interpolation of the vertices' ``d²``).

    ``points``/``normal`` ``(..., 3)``; ``view_pos``/``light_pos`` ``(3,)`` or ``(..., 3)``; ``light_rgb``
    ``(3,)`` is ``color * intensity``. Both terms carry ``max(0, n.l)``, ``light_rgb / d²`` and are 0 where
    the normal faces away from the viewer or the light.
    """
    light_pos = view_pos if light_pos is None else light_pos
    normal = F.normalize(normal, dim=-1)
    to_view = F.normalize(view_pos - points, dim=-1)
    to_light_vec = light_pos - points
    to_light = F.normalize(to_light_vec, dim=-1)
    cosine = (normal * to_light).sum(-1, keepdim=True)
    visible = (cosine > 0) & ((normal * to_view).sum(-1, keepdim=True) > 0)
    falloff = torch.where(visible, cosine, torch.zeros_like(cosine))
    diff, spec = burley_ggx(normal, to_light, to_view, albedo, specular, roughness)
    if dist2 is None:
        dist2 = (to_light_vec**2).sum(-1, keepdim=True).clamp_min(1e-12)
    scale = falloff * light_rgb / dist2
    return diff * scale, spec * scale


def sh_basis(normal: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` unit normals -> ``(..., 9)`` real SH ``Y_l^m``, l-major, m = -l..l (CoRA's ``SH_xyz``):
    core's basis (:func:`fk.models.lighting.sh_basis`) without Deep3D's irradiance band factors."""
    from fk.models.lighting import sh_basis as real_sh

    return real_sh(normal, band_scale=(1.0, 1.0, 1.0))


def sh_ambient(
    normal: torch.Tensor,
    albedo: torch.Tensor,
    light_sh: torch.Tensor,
    occlusion_sh: torch.Tensor | None = None,
    sh_scale: float = 0.1,
    beta: float = 10.0,
) -> torch.Tensor:
    """CoRA's ambient term ``(..., 3)``: ``sh_scale * softplus_beta(L . Y(n)) * sigmoid(O . Y(n)) * albedo``.

    ``light_sh (3, 9)`` the environment (RGB rows); ``occlusion_sh (9,)`` or ``(..., 9)`` the view's
    occlusion code, ``None`` for no occlusion factor (relighting); ``sh_scale``/``beta`` are CoRA's
    ``data.sh_scale`` (0.1) and ``data.beta`` (10).
    """
    basis = sh_basis(normal)
    irradiance = F.softplus(basis @ light_sh.transpose(0, 1).to(basis), beta=beta)
    if occlusion_sh is not None:
        irradiance = irradiance * torch.sigmoid((basis * occlusion_sh.to(basis)).sum(-1, keepdim=True))
    return sh_scale * irradiance * albedo


def to_display(linear: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    """CoRA's display transform ``clamp(x, 1e-6) ** (1 / gamma)`` (not clipped above)."""
    return linear.clamp_min(1e-6) ** (1 / gamma)


__all__ = [
    "EYE_ROUGHNESS", "EYE_SPECULAR", "burley_ggx", "point_light", "sh_ambient", "sh_basis", "to_display",
]  # fmt: skip
