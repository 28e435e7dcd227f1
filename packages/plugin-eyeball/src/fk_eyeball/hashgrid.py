"""Multiresolution hash encoding (Instant-NGP) in plain torch, as CoRA configures tiny-cuda-nn's HashGrid.

CoRA (cora.md §6.1): ``L`` levels of ``F`` features, ``log2 T = 14`` entries per level, coarsest resolution
16, per-level scale ``b = (1024/16)^(1/(L-1))`` (finest about 1024); the geometry grid interpolates with
**smoothstep** weights (so its second derivative, which the eikonal loss needs, is not zero everywhere),
the material grid linearly. Levels at or above ``active_levels`` are multiplied by 0 (NeuS2's coarse-to-fine;
CoRA applies it to the geometry grid only).

Convention (tiny-cuda-nn's, written from its documented maths):
- input ``x`` in [0, 1]³; level ``l`` has ``scale_l = N_min·b^l - 1`` and resolution ``ceil(scale_l) + 1``;
  the continuous grid position is ``x·scale_l + 0.5``;
- a level whose ``resolution³ <= T`` is indexed densely (``i + j·R + k·R²``), the others through the
  spatial hash ``(i·1) xor (j·2654435761) xor (k·805459861) mod T``;
- parameters start uniform in ±1e-4.
tiny-cuda-nn itself is not used (it is not installable on fk's CPU machines, so no test could pin it).
"""

from __future__ import annotations

import math

import torch

_PRIMES = (1, 2654435761, 805459861)
_CORNERS = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=torch.int64)


class HashGrid(torch.nn.Module):
    """``(N, 3)`` points in [0, 1]³ -> ``(N, L·F)`` features (level-major)."""

    def __init__(
        self,
        n_levels: int = 16,
        level_dim: int = 2,
        log2_hashmap_size: int = 14,
        base_resolution: int = 16,
        finest_resolution: int = 1024,
        smoothstep: bool = False,
    ) -> None:
        super().__init__()
        self.n_levels, self.level_dim = int(n_levels), int(level_dim)
        self.table_size = 1 << int(log2_hashmap_size)
        self.smoothstep = smoothstep
        growth = math.exp(math.log(finest_resolution / base_resolution) / max(self.n_levels - 1, 1))
        scales = [base_resolution * growth**lvl - 1.0 for lvl in range(self.n_levels)]
        res = [math.ceil(s) + 1 for s in scales]
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float32), persistent=False)
        self.register_buffer("resolutions", torch.tensor(res, dtype=torch.int64), persistent=False)
        self.register_buffer("dense", torch.tensor([r**3 <= self.table_size for r in res]), persistent=False)
        self.params = torch.nn.Parameter(
            torch.empty(self.n_levels, self.table_size, self.level_dim).uniform_(-1e-4, 1e-4)
        )
        self.active_levels = self.n_levels

    @property
    def out_dim(self) -> int:
        return self.n_levels * self.level_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        pos = (
            x[None].to(self.params.dtype) * self.scales.to(self.params.dtype)[:, None, None] + 0.5
        )  # (L, N, 3)
        base = torch.floor(pos)
        frac = pos - base
        if self.smoothstep:
            frac = frac * frac * (3.0 - 2.0 * frac)
        corner = base.long()[:, :, None, :] + _CORNERS.to(x.device)  # (L, N, 8, 3)
        res = self.resolutions[:, None, None]
        dense_index = corner[..., 0] + corner[..., 1] * res + corner[..., 2] * res * res
        hashed = (corner[..., 0] * _PRIMES[0]) ^ (corner[..., 1] * _PRIMES[1]) ^ (corner[..., 2] * _PRIMES[2])
        index = torch.where(self.dense[:, None, None], dense_index, hashed) % self.table_size
        index = index + torch.arange(self.n_levels, device=x.device)[:, None, None] * self.table_size
        table = self.params.reshape(-1, self.level_dim)
        feats = table.index_select(0, index.reshape(-1)).reshape(self.n_levels, n, 8, self.level_dim)
        fx, fy, fz = frac.unbind(-1)  # corner weights as an outer product, ordered like _CORNERS
        wx = torch.stack([1 - fx, fx], -1)[..., :, None, None]
        wy = torch.stack([1 - fy, fy], -1)[..., None, :, None]
        wz = torch.stack([1 - fz, fz], -1)[..., None, None, :]
        w = (wx * wy * wz).reshape(self.n_levels, n, 8)
        out = (w[..., None] * feats).sum(2)  # (L, N, F)
        if self.active_levels < self.n_levels:
            keep = (torch.arange(self.n_levels, device=x.device) < self.active_levels).to(out.dtype)
            out = out * keep[:, None, None]
        return out.permute(1, 0, 2).reshape(n, self.out_dim)
