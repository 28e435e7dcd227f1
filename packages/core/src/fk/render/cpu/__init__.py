"""fk's CPU render backend: nvdiffrast's ops on the CPU (``fk.render`` dispatches here).

``rasterize`` (numba z-buffer, compiled barycentrics and their compiled backward), ``interpolate``
and ``antialias`` (analytic silhouette blending with gradients to ``pos``, see
:mod:`fk.render.cpu.antialias`) run numba kernels with hand-written backward passes; each keeps its
torch implementation (``impl="torch"``) as the reference and as the fallback without numba or off
the CPU. ``texture`` is plain torch.
"""

from __future__ import annotations

from typing import Any

import torch

from fk.render.context import RasterizeCpuContext
from fk.render.cpu.antialias import antialias, construct_topology_hash
from fk.render.cpu.interpolate import interpolate
from fk.render.cpu.rasterize import rasterize
from fk.render.cpu.texture import texture

__all__ = ["make_context", "rasterize", "interpolate", "texture", "antialias", "texture_construct_mip",
           "antialias_construct_topology_hash"]


def make_context(device: Any = None) -> RasterizeCpuContext:
    return RasterizeCpuContext(device=device)


def texture_construct_mip(tex: torch.Tensor, max_mip_level: Any = None, cube_mode: bool = False) -> Any:
    raise NotImplementedError("fk's CPU texture() builds no mipmaps: use filter_mode='linear' or 'nearest'")


def antialias_construct_topology_hash(tri: torch.Tensor):
    """The edge -> triangles map ``antialias`` uses (a :class:`fk.render.cpu.antialias.TopologyHash`)."""
    return construct_topology_hash(tri)
