"""Sampling a UV texture at per-pixel UV coordinates the way FFHQ-UV's renderer does, and a bilinear option.

FFHQ-UV (ffhquv.md §1.2, stages 2-3) interpolates each vertex's ``vtx_vt`` (in 512-px units) over the
rasterised pixels, rescales it by ``uv_size / 512``, clamps it to ``[0, uv_size]``, truncates it to
integers and reads ``texture_flat[c0 * uv_size + c1]``: the **first** component indexes the row, there
is no filtering and no gradient with respect to the coordinates (only to the texture).

- ``mode="nearest"`` (default) reproduces that exactly for every coordinate below ``uv_size``; upstream's
  upper clamp of ``uv_size`` (not ``uv_size - 1``) would index past the map for a coordinate of exactly
  512 px; fk clamps that row/column to ``uv_size - 1`` instead (the only difference).
- ``mode="bilinear"`` (fk's named option) samples between texel centres, with the same (row, col) order
  and texel ``(r, c)`` centred at ``(r + 0.5, c + 0.5)`` in ``uv_size`` units; it is differentiable in the
  coordinates too.

Shapes: ``texture (B|1, S, S, C)`` (row 0 first, as FFHQ-UV's ``(B, S, S, 3)`` maps), ``coords (B, H, W, 2)``
in 512-px units, returns ``(B, H, W, C)``.
"""

from __future__ import annotations

import torch

from fk.errors import ShapeError

UPSTREAM_UV_UNITS = 512.0


def sample_uv_texture(
    texture: torch.Tensor, coords: torch.Tensor, mode: str = "nearest", units: float = UPSTREAM_UV_UNITS
) -> torch.Tensor:
    """Texture values at ``coords`` (see the module docstring); ``mode`` is ``nearest`` or ``bilinear``."""
    if texture.ndim != 4 or texture.shape[1] != texture.shape[2]:
        raise ShapeError(f"texture: expected (B, S, S, C), got {tuple(texture.shape)}")
    if coords.ndim != 4 or coords.shape[-1] != 2:
        raise ShapeError(f"coords: expected (B, H, W, 2), got {tuple(coords.shape)}")
    size = texture.shape[1]
    n, h, w, _ = coords.shape
    tex = texture.expand(n, -1, -1, -1) if texture.shape[0] == 1 else texture
    scaled = coords * (size / units)
    if mode == "nearest":
        idx = scaled.detach().clamp(0, size).long().clamp_max(size - 1)  # int() truncation of non-negatives
        flat = (idx[..., 0] * size + idx[..., 1]).reshape(n, -1)
        out = torch.gather(tex.reshape(n, size * size, -1), 1, flat[..., None].expand(-1, -1, tex.shape[-1]))
        return out.reshape(n, h, w, -1)
    if mode == "bilinear":
        # grid_sample wants (x = column, y = row) in [-1, 1] with align_corners=False texel centres
        grid = torch.stack([scaled[..., 1], scaled[..., 0]], -1) / size * 2 - 1
        out = torch.nn.functional.grid_sample(
            tex.permute(0, 3, 1, 2),
            grid.to(tex.dtype),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
        return out.permute(0, 2, 3, 1)
    raise ShapeError(f"mode: expected 'nearest' or 'bilinear', got {mode!r}")


__all__ = ["UPSTREAM_UV_UNITS", "sample_uv_texture"]
