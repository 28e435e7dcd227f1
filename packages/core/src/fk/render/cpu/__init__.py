"""fk's CPU render backend: nvdiffrast's ops on the CPU (``fk.render`` dispatches here).

``rasterize`` runs a numba z-buffer plus compiled barycentrics and back-propagates through a
vectorised torch replay; ``interpolate`` and ``texture`` are plain torch (any device);
``antialias`` is the identity (documented approximation: no silhouette blending, so no
visibility gradients).
"""

from __future__ import annotations

from typing import Any

import torch

from fk.render.context import RasterizeCpuContext
from fk.render.cpu.interpolate import interpolate
from fk.render.cpu.rasterize import rasterize
from fk.render.cpu.texture import texture

__all__ = ["make_context", "rasterize", "interpolate", "texture", "antialias", "texture_construct_mip",
           "antialias_construct_topology_hash"]


def make_context(device: Any = None) -> RasterizeCpuContext:
    return RasterizeCpuContext(device=device)


def antialias(color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor,
              topology_hash: Any = None, pos_gradient_boost: float = 1.0) -> torch.Tensor:
    """Identity on the CPU backend: returns a copy of ``color`` (gradients pass to ``color`` unchanged)."""
    return color.clone()


def texture_construct_mip(tex: torch.Tensor, max_mip_level: Any = None, cube_mode: bool = False) -> Any:
    raise NotImplementedError("fk's CPU texture() builds no mipmaps: use filter_mode='linear' or 'nearest'")


def antialias_construct_topology_hash(tri: torch.Tensor) -> None:
    """The identity ``antialias`` needs no topology; returns None (accepted back as ``topology_hash``)."""
    return None
