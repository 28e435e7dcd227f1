"""Occupancy grid and ray marching in torch, with nerfacc 0.3.1's semantics as CoRA uses them (cora.md §6.2).

Convention: everything here works in the avatar's unit cube ``[0, 1]³`` (x01). The grid has ``R³`` cells;
``update`` runs every ``n`` steps: during the first ``warmup_steps`` every cell is evaluated, later a
quarter of the cells drawn uniformly plus as many drawn among the occupied ones, each at a random point
inside its cell (all occupied cells when they are fewer than a quarter); ``occ = max(ema_decay·occ, σ·Δ)``;
a cell is occupied when its value exceeds
``min(mean(occ), threshold)``. Marching: steps of ``Δ`` from the ray's entry into the cube (a random
offset in [0, Δ) per ray when stratified), kept when the step's midpoint lies in an occupied cell and
the step ends inside the cube. Rendering weights: ``w_i = T_i·(1 - exp(-σ_i Δ_i))``, ``T_i`` the
transmittance before sample i along its ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


class OccupancyGrid(torch.nn.Module):
    def __init__(self, resolution: int = 128) -> None:
        super().__init__()
        self.resolution = int(resolution)
        n = self.resolution**3
        self.register_buffer("occs", torch.zeros(n))
        self.register_buffer("binary", torch.ones(n, dtype=torch.bool))

    def _cell_points(self, idx: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        r = self.resolution
        ijk = torch.stack([idx // (r * r), (idx // r) % r, idx % r], dim=-1).to(self.occs.dtype)
        jitter = torch.rand(ijk.shape, generator=generator, dtype=ijk.dtype, device=ijk.device)
        return (ijk + jitter) / r

    @torch.no_grad()
    def update(
        self,
        step: int,
        occ_eval_fn: Callable[[torch.Tensor], torch.Tensor],
        threshold: float = 0.01,
        ema_decay: float = 0.95,
        warmup_steps: int = 256,
        every_n: int = 16,
        generator: torch.Generator | None = None,
        chunk: int = 65536,
    ) -> bool:
        """Re-evaluate cells when ``step % every_n == 0``; returns whether it did."""
        if step % every_n:
            return False
        n = self.resolution**3
        dev = self.occs.device
        if step < warmup_steps:
            idx = torch.arange(n, device=dev)
        else:
            quarter = n // 4
            uniform = torch.randint(0, n, (quarter,), generator=generator, device=dev)
            occupied = torch.nonzero(self.binary).flatten()
            if quarter < len(occupied):  # nerfacc: a quarter drawn among the occupied, or all of them
                occupied = occupied[
                    torch.randint(0, len(occupied), (quarter,), generator=generator, device=dev)
                ]
            idx = torch.cat([uniform, occupied])
        pts = self._cell_points(idx, generator)
        occ = torch.cat([occ_eval_fn(pts[i : i + chunk]) for i in range(0, len(pts), chunk)])
        decayed = self.occs * ema_decay
        decayed = decayed.scatter_reduce(0, idx, occ.to(decayed.dtype), reduce="amax", include_self=True)
        self.occs.copy_(decayed)
        thre = torch.clamp(self.occs.mean(), max=threshold)
        self.binary.copy_(self.occs > thre)
        return True

    def occupied(self, x01: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        ijk = (x01 * r).long().clamp(0, r - 1)
        return self.binary[(ijk[..., 0] * r + ijk[..., 1]) * r + ijk[..., 2]]


@dataclass
class Samples:
    ray_index: torch.Tensor  # (S,) int64, sorted
    t_starts: torch.Tensor  # (S,)
    t_ends: torch.Tensor  # (S,)
    n_rays: int


def ray_cube(origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(t_near, t_far) of each ray in the unit cube [0, 1]³ (t_far < t_near: a miss); t_near >= 0."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0, t1 = (0 - origins) * inv, (1 - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far


def march(
    origins: torch.Tensor,
    dirs: torch.Tensor,
    grid: OccupancyGrid,
    step: float,
    stratified: bool,
    generator: torch.Generator | None = None,
) -> Samples:
    """Samples of the rays (x01 origins, unit directions) in the occupied cells, ``step`` apart."""
    near, far = ray_cube(origins, dirs)
    if stratified:
        near = near + torch.rand(near.shape, generator=generator, dtype=near.dtype, device=near.device) * step
    span = (far - near).clamp_min(0.0)
    k_max = int(torch.ceil(span.max() / step).item()) if len(span) else 0
    if k_max == 0:
        empty = origins.new_zeros(0)
        return Samples(empty.long(), empty, empty, len(origins))
    k = torch.arange(k_max, device=origins.device, dtype=origins.dtype)
    t_start = near[:, None] + k[None] * step  # (R, K)
    t_end = t_start + step
    valid = t_end <= far[:, None]
    mid = origins[:, None, :] + dirs[:, None, :] * ((t_start + t_end) / 2)[..., None]
    valid &= grid.occupied(mid.clamp(0.0, 1.0))
    ray, kk = torch.nonzero(valid, as_tuple=True)
    return Samples(ray, t_start[ray, kk], t_end[ray, kk], len(origins))


def transmittance(sigma_delta: torch.Tensor, ray_index: torch.Tensor) -> torch.Tensor:
    """(S,) transmittance before each sample: ``exp(-Σ_{j<i, same ray} σ_j Δ_j)`` (samples sorted by ray)."""
    if len(sigma_delta) == 0:
        return sigma_delta
    total = torch.cumsum(sigma_delta, 0)
    exclusive = total - sigma_delta
    first = torch.ones_like(ray_index, dtype=torch.bool)
    first[1:] = ray_index[1:] != ray_index[:-1]
    start_of_ray = exclusive[first]  # exclusive sum at each ray's first sample
    seg = torch.cumsum(first.long(), 0) - 1
    return torch.exp(-(exclusive - start_of_ray[seg]))


def accumulate(
    values: torch.Tensor, weights: torch.Tensor, ray_index: torch.Tensor, n_rays: int
) -> torch.Tensor:
    """Per-ray ``Σ w_i v_i``: values (S, C) or (S,)."""
    v = values if values.dim() == 2 else values[:, None]
    out = v.new_zeros(n_rays, v.shape[1]).index_add(0, ray_index, weights[:, None] * v)
    return out if values.dim() == 2 else out[:, 0]
