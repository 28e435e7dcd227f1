"""``texture`` in plain torch: nearest and bilinear lookups with wrap, clamp and zero boundaries.

Convention (nvdiffrast's): ``uv = (0, 0)`` is the outer corner of texel ``tex[:, 0, 0]``, ``(1, 1)``
the opposite corner; texel ``(row i, col j)`` has its centre at ``((j + 0.5) / tw, (i + 0.5) / th)``.
So ``u`` runs along texture columns and ``v`` along rows, row 0 first (the bottom, in nvdiffrast's
bottom-up image convention). Differentiable in ``tex`` and, for ``linear``, in ``uv``.
"""

from __future__ import annotations

from typing import Any

import torch

from fk.errors import FkError
from fk.render.checks import check_texture_inputs

FILTER_MODES = ("auto", "nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear")
BOUNDARY_MODES = ("wrap", "clamp", "zero", "cube")


def _resolve(index: torch.Tensor, size: int, boundary_mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Texel index inside ``[0, size)`` and, for ``zero``, a validity mask."""
    if boundary_mode == "wrap":
        return torch.remainder(index, size), None
    if boundary_mode == "clamp":
        return index.clamp(0, size - 1), None
    valid = (index >= 0) & (index < size)
    return index.clamp(0, size - 1), valid


def texture(tex: torch.Tensor, uv: torch.Tensor, uv_da: Any = None, mip_level_bias: Any = None, mip: Any = None,
            filter_mode: str = "auto", boundary_mode: str = "wrap", max_mip_level: Any = None) -> torch.Tensor:
    """Sample ``tex (B|1, th, tw, C)`` at ``uv (B, H, W, 2)``; returns ``(B, H, W, C)`` in ``tex``'s dtype.

    ``auto`` means ``linear`` here (no mipmaps are built, so ``uv_da`` and ``mip_level_bias`` are ignored);
    mipmap filter modes and ``cube`` raise ``NotImplementedError``.
    """
    if filter_mode not in FILTER_MODES:
        raise FkError(f"texture: unknown filter_mode {filter_mode!r}", hint="one of " + ", ".join(FILTER_MODES))
    if boundary_mode not in BOUNDARY_MODES:
        raise FkError(f"texture: unknown boundary_mode {boundary_mode!r}", hint="one of " + ", ".join(BOUNDARY_MODES))
    if filter_mode.startswith("linear-mipmap") or mip is not None:
        raise NotImplementedError("fk's CPU texture() builds no mipmaps: use filter_mode='linear' or 'nearest' "
                                  "(or the nvdiffrast backend on CUDA)")
    if boundary_mode == "cube":
        raise NotImplementedError("fk's CPU texture() has no cube maps (use the nvdiffrast backend on CUDA)")
    check_texture_inputs(tex, uv)
    n_tex, th, tw, n_ch = tex.shape
    n_images, height, width, _ = uv.shape
    flat_tex = tex.reshape(n_tex, th * tw, n_ch)
    image = torch.arange(n_images, device=uv.device)[:, None] if n_tex > 1 else \
        torch.zeros((n_images, 1), dtype=torch.int64, device=uv.device)
    uvf = uv.reshape(n_images, height * width, 2).to(tex.dtype if tex.is_floating_point() else uv.dtype)
    x = uvf[..., 0] * tw
    y = uvf[..., 1] * th

    def tap(ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
        jx, vx = _resolve(ix, tw, boundary_mode)
        jy, vy = _resolve(iy, th, boundary_mode)
        texels = flat_tex[image, jy * tw + jx]  # (B, HW, C)
        if vx is not None:
            texels = texels * (vx & vy).unsqueeze(-1).to(texels.dtype)
        return texels

    if filter_mode == "nearest":
        out = tap(torch.floor(x).long(), torch.floor(y).long())
    else:
        x = x - 0.5
        y = y - 0.5
        x0 = torch.floor(x)
        y0 = torch.floor(y)
        fx = (x - x0).unsqueeze(-1)
        fy = (y - y0).unsqueeze(-1)
        ix, iy = x0.long(), y0.long()
        top = tap(ix, iy) * (1 - fx) + tap(ix + 1, iy) * fx
        bottom = tap(ix, iy + 1) * (1 - fx) + tap(ix + 1, iy + 1) * fx
        out = top * (1 - fy) + bottom * fy
    return out.reshape(n_images, height, width, n_ch)
